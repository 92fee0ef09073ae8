"""The hub's domain: signals, filters, publishing, delivery and the services every front calls.

Nothing here knows about Discord, Telegram or HTTP.
"""

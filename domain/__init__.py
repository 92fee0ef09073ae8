"""The pure domain: signals, filters, outcome arithmetic and user-facing errors.

No database, no network, no I/O, and no import from any other package of the hub,
so every rule here can be tested on its own and ``storage`` may use it.
Layers: hub -> bots/api -> core -> storage -> domain.
"""

"""Tests of the Telegram front against a fake Bot API server."""

"""Errors a user or client can cause. Each carries a message that says what to do.

Fronts (chat bots, HTTP API) show ``str(error)`` to the user as is, so messages
never contain secrets or stack traces.
"""

from __future__ import annotations


class HubError(Exception):
    """Base class for errors whose message is safe to show to a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(HubError):
    """Input failed validation. ``field`` names the offending field when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(HubError):
    """The thing asked for does not exist (unknown signal id, no subscription...)."""


class PermissionDenied(HubError):
    """The caller may not do this."""


class ConfigError(HubError):
    """A configuration value is missing or invalid; the message names the key."""

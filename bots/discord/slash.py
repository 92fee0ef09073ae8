"""The base of every top-level slash command: one class per command.

A command class holds what its command needs (the hub, the replier, settings) and
builds its :class:`discord.app_commands.Command` from a bound method, so one
command can be constructed, added to a tree and tested on its own.

Every command hands its work to :class:`~bots.discord.replies.Replier`, so
replies are ephemeral, slow work is deferred, and errors (a
:class:`~domain.errors.HubError` says what is allowed) are answered by the tree's
error handler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from discord import app_commands

from bots.discord.replies import Replier
from core.context import HubContext


class SlashCommand:
    """One top-level slash command and the state it needs.

    A subclass sets :attr:`name` and :attr:`description` and defines
    ``async def callback(self, interaction, <options>...)``: the options are its
    annotated parameters, described with ``@app_commands.describe``. :attr:`command`
    is built from the bound method, so discord.py calls it with this instance as
    ``self``. Add ``instance.command`` to a tree.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    callback: Callable[..., Coroutine[Any, Any, None]]

    def __init__(self, hub: HubContext, replier: Replier) -> None:
        self.hub = hub
        self.replier = replier
        self.command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name=self.name, description=self.description, callback=self.callback
        )

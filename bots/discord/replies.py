"""Answering interactions: ephemeral replies, deferring slow work, turning errors into text.

Every command runs its work through :meth:`Replier.run`. If the work takes longer
than ``defer_after`` seconds the interaction is deferred (Discord wants an answer
within 3 s), and the answer goes out as a follow-up instead. Whatever goes wrong
ends as an ephemeral message, never as "The application did not respond".
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from domain.errors import HubError

log = logging.getLogger(__name__)

CONTENT_MAX = 2000
DESCRIPTION_MAX = 4096
DEFER_AFTER = 2.0
FALLBACK = "Something went wrong on our side. Please try again in a minute."


def clip_content(text: str) -> str:
    return text if len(text) <= CONTENT_MAX else text[: CONTENT_MAX - 1] + "…"


@dataclass(frozen=True, slots=True)
class Picture:
    """A reply with an image (a chart): ``text`` in an embed with the PNG under it,
    uploaded with the reply (``attachment://``), so it needs no image host."""

    text: str
    png: bytes
    filename: str = "chart.png"

    def embed(self) -> discord.Embed:
        embed = discord.Embed(description=self.text[:DESCRIPTION_MAX])
        embed.set_image(url=f"attachment://{self.filename}")
        return embed

    def file(self) -> discord.File:
        return discord.File(io.BytesIO(self.png), filename=self.filename)


async def send_ephemeral(interaction: discord.Interaction[Any], reply: str | Picture) -> None:
    """Reply, or follow up when the interaction was already answered or deferred."""
    done = interaction.response.is_done()
    if isinstance(reply, Picture):
        if done:
            await interaction.followup.send(embed=reply.embed(), file=reply.file(), ephemeral=True)
        else:
            await interaction.response.send_message(
                embed=reply.embed(), file=reply.file(), ephemeral=True
            )
        return
    text = clip_content(reply)
    if done:
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


class Replier:
    def __init__(self, defer_after: float = DEFER_AFTER) -> None:
        self.defer_after = defer_after

    async def run(
        self, interaction: discord.Interaction[Any], work: Coroutine[Any, Any, str | Picture]
    ) -> None:
        """Await ``work`` and send its text ephemerally, deferring if it is slow.

        Exceptions propagate to the tree's error handler, which answers for them.
        """
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.defer_after)
        if not done:
            await interaction.response.defer(ephemeral=True, thinking=True)
        text = await task
        await send_ephemeral(interaction, text)


def describe_error(error: BaseException) -> str | None:
    """The user-facing text for an app-command error; None when it is our bug."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, HubError):
        return str(error)
    if isinstance(error, app_commands.TransformerError):
        return f"That {error.type.name} option is not valid here: {error.value!r}."
    if isinstance(error, app_commands.CommandNotFound):
        return "That command is out of date. Discord will refresh the list shortly; try /help."
    if isinstance(error, app_commands.CommandSignatureMismatch):
        return "That command changed since Discord last saw it. Try again in a minute."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You cannot use this command here."
    return None


class HubCommandTree(app_commands.CommandTree[Any]):
    """A CommandTree whose error handler always answers the user."""

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        text = describe_error(error)
        if text is None:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("/%s failed", command, exc_info=error)
            text = FALLBACK
        if interaction.type is discord.InteractionType.autocomplete:
            return
        try:
            await send_ephemeral(interaction, text)
        except discord.HTTPException as exc:
            log.warning("could not report an error to the user: %s", exc.status)

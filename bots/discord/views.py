"""Win / Loss / Skip buttons under each alert, persistent across restarts.

The buttons are :class:`discord.ui.DynamicItem` s: the custom id carries the
outcome and the signal (``csh:o:w:<signal id>``), so any client that registered
:class:`OutcomeButton` handles a press, including one started after the alert
was sent. A custom id holds at most 100 characters; a signal id too long for
that is carried as its hub sequence number (``csh:o:w:#123``) instead.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from core.context import HubContext
from domain.errors import HubError, NotFound
from domain.signals import Signal

log = logging.getLogger(__name__)

CUSTOM_ID_MAX = 100
PREFIX = "csh:o:"
#: button code -> (outcome recorded, label, style)
BUTTONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "w": ("win", "Win", discord.ButtonStyle.success),
    "l": ("loss", "Loss", discord.ButtonStyle.danger),
    "s": ("skipped", "Skip", discord.ButtonStyle.secondary),
}
CONFIRMATIONS = {
    "win": "Recorded a **win** on {ticker} for you.",
    "loss": "Recorded a **loss** on {ticker} for you.",
    "skipped": "Marked {ticker} as **skipped** for you.",
}


def hub_of(client: discord.Client) -> HubContext:
    """The HubContext the running bot carries (see ``bots.discord.bot.HubClient``)."""
    hub = getattr(client, "hub", None)
    if not isinstance(hub, HubContext):
        raise RuntimeError("this discord client carries no HubContext")
    return hub


def signal_ref(signal: Signal) -> str:
    """How a custom id names ``signal``: its id, or ``#seq`` when the id is too long."""
    if len(PREFIX) + 2 + len(signal.signal_id) <= CUSTOM_ID_MAX or signal.seq is None:
        return signal.signal_id
    return f"#{signal.seq}"


async def resolve_ref(hub: HubContext, ref: str) -> Signal:
    if ref.startswith("#"):
        signal = await hub.services.signals.by_seq(int(ref[1:]))
        if signal is None:
            raise NotFound("that signal is no longer stored")
        return signal
    return await hub.services.signals.get(ref)


class OutcomeButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"csh:o:(?P<code>[wls]):(?P<ref>#[0-9]{1,18}|[A-Za-z0-9][A-Za-z0-9._:\-]{0,127})",
):
    """One outcome button; a press records that outcome for the user who pressed it."""

    def __init__(self, code: str, ref: str) -> None:
        outcome, label, style = BUTTONS[code]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"{PREFIX}{code}:{ref}")
        )
        self.code = code
        self.outcome = outcome
        self.ref = ref

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> OutcomeButton:
        return cls(match["code"], match["ref"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            text = await self._record(interaction)
        except HubError as exc:
            text = str(exc)
        except Exception:
            log.exception("recording a button outcome failed")
            text = "Something went wrong recording that. Try again, or use /feedback."
        await interaction.response.send_message(text, ephemeral=True)

    async def _record(self, interaction: discord.Interaction[Any]) -> str:
        hub = hub_of(interaction.client)
        signal = await resolve_ref(hub, self.ref)
        user = await hub.services.accounts.resolve("discord", interaction.user.id)
        info = await hub.services.feedback.record(user.id, signal.signal_id, self.outcome)
        text = CONFIRMATIONS[info.outcome].format(ticker=signal.ticker)
        if info.updated:
            text += " (changed from your earlier answer)"
        if info.outcome != "skipped":
            text += f"\nAdd your return with `/feedback signal_id:{signal.signal_id} outcome:{info.outcome} return_pct:`"
        return text


def outcome_view(signal: Signal) -> discord.ui.View:
    """The three outcome buttons for an alert (never stored: the dynamic items handle presses)."""
    view = discord.ui.View(timeout=None)
    ref = signal_ref(signal)
    for code in BUTTONS:
        view.add_item(OutcomeButton(code, ref))
    return view

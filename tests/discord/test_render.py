"""The alert embed: content, colour by type, and Discord's size limits."""

from __future__ import annotations

import pytest

from bots.discord.render import (
    COLOURS,
    DESCRIPTION_MAX,
    EMBED_MAX,
    FIELD_VALUE_MAX,
    TITLE_MAX,
    fit,
    signal_embed,
)
from bots.discord.views import outcome_view
from domain.signals import Signal, SignalType
from tests.discord.helpers import signal_data


def make(**overrides: object) -> Signal:
    return Signal.parse(signal_data(**overrides))


def test_embed_fields_link_timestamp_footer() -> None:
    signal = make(signal_id="r-1", headline="Approval [fast] *track*", sector="Healthcare")
    data = signal_embed(signal).to_dict()
    assert data["title"] == "AAPL · BUY"
    assert data["color"] == COLOURS[SignalType.BUY]
    assert data["description"].startswith("[Approval \\[fast\\] \\*track\\*](https://example.com/")
    fields = {f["name"]: f["value"] for f in data["fields"]}
    assert fields == {
        "Confidence": "82%",
        "Catalyst": "FDA",
        "Price": "$3.42",
        "RVOL": "4.1x",
        "Sector": "Healthcare",
    }
    assert data["footer"]["text"] == "signal r-1 · test"
    assert data["timestamp"].startswith(str(signal.timestamp.date()))


@pytest.mark.parametrize("kind", list(SignalType))
def test_colour_by_type(kind: SignalType) -> None:
    assert signal_embed(make(signal_type=kind.value)).colour.value == COLOURS[kind]  # type: ignore[union-attr]


def test_missing_values_and_no_url() -> None:
    data = signal_embed(
        make(price=None, rvol=None, sector=None, url=None, headline="Plain")
    ).to_dict()
    fields = {f["name"]: f["value"] for f in data["fields"]}
    assert fields["Price"] == fields["RVOL"] == fields["Sector"] == "—"
    assert data["description"] == "Plain"
    assert signal_embed(make(headline=None, url=None)).description is None
    assert signal_embed(make(price=0.0123)).fields[2].value == "$0.0123"


def test_long_inputs_stay_within_discord_limits() -> None:
    signal = make(
        signal_id="x" * 128,
        headline="h" * 500,
        url="https://example.com/" + "p" * 2000,
        sector="s" * 64,
        catalyst_type="C" * 32,
        source="q" * 64,
    )
    embed = signal_embed(signal)
    assert len(embed) <= EMBED_MAX
    assert len(embed.title or "") <= TITLE_MAX
    assert len(embed.description or "") <= DESCRIPTION_MAX
    assert all(len(f.value or "") <= FIELD_VALUE_MAX for f in embed.fields)


def test_fit_trims_the_description_to_the_total_limit() -> None:
    embed = signal_embed(make())
    embed.description = "d" * DESCRIPTION_MAX
    for i in range(4):
        embed.add_field(name=f"extra {i}", value="v" * FIELD_VALUE_MAX)
    assert len(embed) > EMBED_MAX
    assert len(fit(embed)) <= EMBED_MAX


def test_view_has_three_persistent_buttons() -> None:
    view = outcome_view(make(signal_id="v-1"))
    assert view.timeout is None and view.is_persistent()
    labels = [c["label"] for row in view.to_components() for c in row["components"]]
    assert labels == ["Win", "Loss", "Skip"]


def test_the_outcome_hint_is_a_full_width_field() -> None:
    embed = signal_embed(make(), "FDA, 80–90%: 14 W / 6 L reported, avg +4.20%")
    field = embed.fields[-1]
    assert (field.name, field.inline) == ("Reported outcomes", False)
    assert field.value == "📊 FDA, 80–90%: 14 W / 6 L reported, avg +4.20%"
    assert all(f.name != "Reported outcomes" for f in signal_embed(make()).fields)

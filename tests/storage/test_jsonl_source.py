"""The jsonl source tails Catalyst-Bot's accepted items across restarts."""

from __future__ import annotations

import json
from pathlib import Path

from core.context import HubContext
from core.scheduler import CatalystJob
from core.sources.jsonl import JsonlSource, map_item


def item(n: int, **kw: object) -> dict[str, object]:
    data: dict[str, object] = {
        "ts": f"2026-11-25T14:{n:02d}:00Z",
        "ticker": "ABCD",
        "title": f"ABCD receives FDA approval #{n}",
        "source": "businesswire",
        "link": f"https://example.com/{n}",
        "price": 3.5,
        "cls": {"score": 0.82, "sentiment": 0.4, "keywords": ["fda", "approval"]},
    }
    data.update(kw)
    return data


def write(path: Path, *items: dict[str, object], mode: str = "a", partial: str = "") -> None:
    with open(path, mode, encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps(it) + "\n")
        fh.write(partial)


def test_mapping_of_catalyst_bot_fields() -> None:
    mapped = map_item(item(1))
    assert mapped["ticker"] == "ABCD"
    assert mapped["headline"] == "ABCD receives FDA approval #1"
    assert mapped["url"] == "https://example.com/1"
    assert mapped["confidence"] == 0.82
    assert mapped["signal_type"] == "BUY"
    assert mapped["catalyst_type"] == "FDA"
    assert mapped["timestamp"] == "2026-11-25T14:01:00+00:00"
    assert mapped["signal_id"] == map_item(item(1))["signal_id"]  # stable
    assert (
        map_item(item(1, cls={"score": 0.3, "sentiment": -0.5, "keywords": ["offering"]}))[
            "catalyst_type"
        ]
        == "OFFERING"
    )


async def _run(ctx: HubContext, path: Path) -> list[str]:
    source = JsonlSource(path, ctx.db)  # a new instance is a restart: state is in the DB
    report = await CatalystJob(source, ctx.publisher).run_once()
    assert not report.rejected, report.rejected
    return [s.headline or "" for s in await ctx.services.signals.recent(100)]


async def test_offset_survives_restarts_and_partial_lines_wait(
    any_ctx: HubContext, tmp_path: Path
) -> None:
    path = tmp_path / "accepted_items.jsonl"
    write(path, item(1), item(2), partial='{"ts": "2026-11-25T14:03:00Z", "tick')
    assert len(await _run(any_ctx, path)) == 2
    # Finish the partial line and add one more; a fresh source resumes at the offset.
    with open(path, "a", encoding="utf-8") as fh:
        rest = json.dumps(item(3))[len('{"ts": "2026-11-25T14:03:00Z", "tick') :]
        fh.write(rest + "\n")
    write(path, item(4))
    headlines = await _run(any_ctx, path)
    assert len(headlines) == 4
    assert sorted(h[-2:] for h in headlines) == ["#1", "#2", "#3", "#4"]
    source = JsonlSource(path, any_ctx.db)
    assert await source() == []  # nothing new


async def test_truncation_restarts_from_the_beginning(any_ctx: HubContext, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    write(path, item(1), item(2), item(3))
    assert len(await _run(any_ctx, path)) == 3
    write(path, item(9), mode="w")  # rotated: smaller than the stored offset
    headlines = await _run(any_ctx, path)
    assert "ABCD receives FDA approval #9" in headlines


async def test_malformed_lines_are_skipped(any_ctx: HubContext, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("not json\n[1, 2]\n\n" + json.dumps(item(5)) + "\n")
    assert len(await _run(any_ctx, path)) == 1


async def test_missing_file_yields_nothing(any_ctx: HubContext, tmp_path: Path) -> None:
    assert await JsonlSource(tmp_path / "none.jsonl", any_ctx.db)() == []


def test_confidence_comes_from_cls_confidence_when_present() -> None:
    """Newer Catalyst-Bot lines carry ``cls.confidence`` (0..1) beside the unbounded
    ``score``; the old reader took only ``score`` and stored confidence 0."""
    newer = item(1, cls={"score": 0.0, "confidence": 0.74, "sentiment": 0.2, "keywords": []})
    assert map_item(newer)["confidence"] == 0.74
    assert map_item(item(1, cls={"score": 3.5, "keywords": []}))["confidence"] == 1.0
    assert map_item(item(1, cls={"score": -2, "keywords": []}))["confidence"] == 0.0
    bad = item(1, cls={"confidence": "high", "keywords": []})
    assert map_item(bad)["confidence"] == "high"  # left for validation to name


def test_keywords_match_whole_words() -> None:
    def catalyst(*keywords: str) -> str:
        return str(
            map_item(item(1, cls={"score": 0.5, "keywords": list(keywords)}))["catalyst_type"]
        )

    assert catalyst("treatment") == "NEWS"  # not "atm"
    assert catalyst("second quarter") == "NEWS"  # not "sec"
    assert catalyst("steps") == "NEWS"  # not "eps"
    assert catalyst("atm offering") == "OFFERING"
    assert catalyst("Acquires") == "M&A"
    assert catalyst("8-K") == "SEC_FILING"
    assert catalyst("EPS beat") == "EARNINGS"
    assert catalyst("phase 2 trial") == "CLINICAL_TRIAL"


async def test_a_real_mixture_of_lines(any_ctx: HubContext, tmp_path: Path) -> None:
    """Real-shaped lines with and without tickers, the old shape without
    ``id``/``source``/``title``, and duplicated lines: each valid line is published
    once, a line without a ticker is rejected with a reason, nothing stops the run."""
    newer = item(1, cls={"score": 7.0, "confidence": 0.66, "sentiment": 0.3, "keywords": ["fda"]})
    no_ticker = item(2, ticker=None)
    empty_ticker = item(3, ticker="")
    old = {"ts": "2026-11-25T14:04:00Z", "ticker": "WXYZ", "link": "https://e.com/4", "price": 1.2}
    old["cls"] = {"score": 0.4, "sentiment": -0.3, "keywords": ["treatment"]}
    path = tmp_path / "accepted_items.jsonl"
    write(path, newer, no_ticker, old, newer, empty_ticker, old, item(5))
    report = await CatalystJob(JsonlSource(path, any_ctx.db), any_ctx.publisher).run_once()
    assert report.published == 3
    assert len(report.rejected) == 2 and all("ticker" in r for r in report.rejected)
    stored = {s.ticker: s for s in await any_ctx.services.signals.recent(100)}
    assert len(await any_ctx.services.signals.recent(100)) == 3
    assert stored["WXYZ"].source == "catalyst-bot"
    assert stored["WXYZ"].headline is None
    assert stored["WXYZ"].catalyst_type == "NEWS"
    assert stored["WXYZ"].signal_type == "SELL"
    by_conf = sorted(s.confidence for s in await any_ctx.services.signals.recent(100))
    assert 0.66 in by_conf and 0.4 in by_conf


async def test_a_later_line_retracts_or_corrects_an_item(
    any_ctx: HubContext, tmp_path: Path
) -> None:
    """The same item again with ``"status": "retracted"`` withdraws its signal; an item
    carrying its own ``signal_id`` is corrected by a later line (the whole item again,
    with the fields fixed)."""
    path = tmp_path / "accepted_items.jsonl"
    write(path, item(1), item(2, signal_id="cb-own-2"))
    source = JsonlSource(path, any_ctx.db)
    for mapped in await source():
        await any_ctx.publisher.publish(mapped)
    await source.commit()
    first_id = map_item(item(1))["signal_id"]
    write(path, item(1, status="retracted"), item(2, signal_id="cb-own-2", title="Fixed"))
    results = [await any_ctx.publisher.publish(mapped) for mapped in await source()]
    assert [r.revised for r in results] == [True, True]
    retracted = await any_ctx.publisher.get(first_id)
    assert retracted is not None and retracted.retracted
    corrected = await any_ctx.publisher.get("cb-own-2")
    assert corrected is not None and corrected.headline == "Fixed" and corrected.revision == 1

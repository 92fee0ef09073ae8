"""What the stream does with each client message (the design document's protocol).

Client -> server: ``subscribe`` (this connection's filter, stored as the user's
default unless ``"persist": false``), ``feedback``, ``resume`` (and ``auth``, only
first: :mod:`api.routes_ws`); ``pong`` is taken by the reader
(:mod:`api.ws_session`). Answers: ``subscribed``, ``feedback_recorded``,
``resumed``, ``error``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api.streams import set_user_filter
from api.ws import ConnectionManager
from api.ws_frames import parse_seq
from api.ws_messages import error
from domain.filters import SignalFilter

if TYPE_CHECKING:
    from api.ws_session import Session

MESSAGE_TYPES = ("auth", "subscribe", "pong", "feedback", "resume")


def resume_refused(manager: ConnectionManager, user_id: int) -> str | None:
    """Count a resume against the user's budget (all connections together); the error
    message when it is spent."""
    limiter = manager.resume_limiter
    wait = limiter.hit(user_id)
    if wait <= 0:
        return None
    return (
        f"resume rate limit: at most {limiter.max_events} resumes per minute per user "
        f"(all your connections); retry in {wait:.0f} s (the stream goes on)"
    )


async def handle(session: Session, data: dict[str, Any]) -> None:
    """Answer one client message (any type but ``pong``, which the reader takes)."""
    kind = data.get("type")
    if kind == "subscribe":
        await subscribe(session, data.get("filters"), data.get("persist", True))
    elif kind == "feedback":
        await feedback(session, data)
    elif kind == "resume":
        seq = parse_seq(data.get("after_seq"))
        if seq is None:
            session.send(error("resume needs after_seq: the last seq you received"))
        else:
            await resume(session, seq, counted=False)
    elif kind == "auth":
        session.send(error("already authenticated"))
    else:
        shown = kind if isinstance(kind, str) and len(kind) <= 32 else "?"
        session.send(
            error(f"unknown message type {shown!r}; use one of {', '.join(MESSAGE_TYPES)}")
        )


async def subscribe(session: Session, filters: Any, persist: Any = True) -> None:
    """This connection's filter, at once (the user's other connections keep theirs).
    Unless ``"persist": false`` it is also stored as the user's default: what new
    connections and REST reads start with."""
    if not isinstance(persist, bool):
        session.send(error("persist must be true or false"))
        return
    flt = SignalFilter.from_mapping(filters if filters is not None else {})
    user_id = session.client.user_id
    if persist:
        writes = session.manager.filter_write_limiter
        if writes.hit(user_id) > 0:
            # Per user, all connections together: reconnecting must not dodge it.
            session.send(
                error(
                    f"subscribe rate limit: at most {writes.max_events} stored filter "
                    "changes per second per user; this one was ignored (send "
                    '"persist": false to change only this connection)'
                )
            )
            return
        async with session.manager.filter_lock(user_id):
            if session.stopped:
                return  # the client left while this waited: never overwrite a later one
            flt = await set_user_filter(session.ctx, user_id, flt)
    if session.stopped:
        return
    session.client.set_filter(flt)
    session.send({"type": "subscribed", "filters": flt.to_mapping(), "persisted": persist})


async def feedback(session: Session, data: dict[str, Any]) -> None:
    """Record a trade outcome (``feedback`` scope); the string and object forms."""
    if not session.client.principal.has("feedback"):
        session.send(error("this key lacks the 'feedback' scope"))
        return
    signal_id = data.get("signal_id")
    outcome = data.get("outcome")
    return_pct = data.get("return_pct")
    if isinstance(outcome, dict):
        return_pct = outcome.get("return_pct", return_pct)
        outcome = outcome.get("outcome")
    if not isinstance(signal_id, str) or not signal_id:
        session.send(error("feedback needs signal_id"))
        return
    if not isinstance(outcome, str):
        session.send(error("feedback needs outcome: win, loss, breakeven or skipped"))
        return
    if return_pct is not None and (
        isinstance(return_pct, bool) or not isinstance(return_pct, (int, float, str))
    ):
        session.send(error("return_pct must be a number such as 12.5"))
        return
    if isinstance(return_pct, int):
        return_pct = float(return_pct)  # at most MAX_INT_DIGITS digits: never overflows
    info = await session.ctx.services.feedback.record(
        session.client.user_id, signal_id[:256], outcome[:64], return_pct
    )
    session.send(
        {
            "type": "feedback_recorded",
            "signal_id": info.signal_id,
            "outcome": info.outcome,
            "return_pct": info.return_pct,
            "updated": info.updated,
        }
    )


async def resume(session: Session, after_seq: int, *, counted: bool = True) -> None:
    """Replay after ``after_seq`` (api.ws_resume), then answer ``resumed``. ``counted``:
    the resume was already counted against the user's budget (``?after_seq=``)."""
    if not counted:
        refused = resume_refused(session.manager, session.client.user_id)
        if refused is not None:
            session.send(error(refused))
            return
    replayed, last = await session.manager.resume(session.client, after_seq)
    session.send(
        {"type": "resumed", "after_seq": after_seq, "replayed": replayed, "last_seq": last}
    )

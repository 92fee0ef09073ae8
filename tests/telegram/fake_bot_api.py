"""A fake Telegram Bot API server on 127.0.0.1 speaking the HTTP protocol.

Serves ``/bot<token>/<method>`` with form-encoded or JSON parameters (nested
values arrive as JSON strings, as python-telegram-bot sends them). Tests queue
updates with :meth:`FakeBotApi.push_update`, which a long-polling ``getUpdates``
returns, and read what the bot did from :attr:`FakeBotApi.sent`,
:attr:`FakeBotApi.edits` and :attr:`FakeBotApi.answers`.

``editMessageText`` changes the sent message in place, as a chat shows it: a
:class:`SentMessage` holds the current text and keyboard (omitting ``reply_markup``
removes it, as on Telegram) and :attr:`SentMessage.history` the texts it had
before. Like Telegram it answers 400 for a message not in that chat ("message to
edit not found"), for text and keyboard identical to the current ones ("message is
not modified"), for broken HTML and for text past 4096.

Errors can be scripted per method and chat (:meth:`FakeBotApi.fail`), and
``enforce_limits=True`` makes ``sendMessage`` apply Telegram's flood limits
(30/s per bot, 1/s per chat, 20/min per group) and answer 429 with
``retry_after`` when a send exceeds them. Like Telegram, ``sendMessage`` refuses
a text longer than 4096 UTF-16 units once its HTML is parsed
(:attr:`SentMessage.visible`).

Like Telegram, only one ``getUpdates`` may poll at a time: one that arrives
while another is still long-polling ends the earlier one with 409 Conflict
("terminated by other getUpdates request") and proceeds; :attr:`FakeBotApi.conflicts`
counts those 409s. A long-poll whose client has already gone (a stopped or
killed poller) is ended quietly instead, as nobody is there to be answered.

``getWebhookInfo`` reports the webhook ``setWebhook`` stored in
:attr:`FakeBotApi.webhook` (a test may set it directly); an empty ``url`` means none.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from tests.aiohttp_server import serve

BOT_ID = 777000111
#: Telegram's limit on a message's text after entity parsing, in UTF-16 code units.
MAX_MESSAGE = 4096
BOT_USERNAME = "catalyst_test_bot"


@dataclass
class Scripted:
    """One scripted failure: ``times`` answers of ``status``/``body`` for matching calls."""

    method: str
    status: int
    body: dict[str, Any]
    chat_id: int | str | None = None
    times: int = 1


@dataclass
class SentMessage:
    message_id: int
    chat_id: int | str
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    at: float
    params: dict[str, Any] = field(repr=False, default_factory=dict)
    #: (text, parse_mode) before each ``editMessageText``, oldest first.
    history: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def visible(self) -> str:
        """The text as a chat shows it: HTML entities parsed (tags gone, escapes undone)."""
        return visible_text(self.text, self.parse_mode)

    def buttons(self) -> list[tuple[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


def _error(status: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def too_many_requests(retry_after: int) -> tuple[int, dict[str, Any]]:
    return 429, _error(
        429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
    )


def blocked() -> tuple[int, dict[str, Any]]:
    return 403, _error(403, "Forbidden: bot was blocked by the user")


def migrated(new_chat_id: int) -> tuple[int, dict[str, Any]]:
    return 400, _error(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=new_chat_id,
    )


def conflict() -> tuple[int, dict[str, Any]]:
    return 409, _error(
        409,
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running",
    )


def server_error() -> tuple[int, dict[str, Any]]:
    return 500, _error(500, "Internal Server Error")


def bad_request(description: str) -> tuple[int, dict[str, Any]]:
    return 400, _error(400, f"Bad Request: {description}")


def not_modified() -> tuple[int, dict[str, Any]]:
    return bad_request(
        "message is not modified: specified new message content and "
        "reply markup are exactly the same as a current content and reply markup "
        "of the message"
    )


class _Windows:
    """Telegram's flood limits as sliding windows, for ``enforce_limits``."""

    def __init__(self) -> None:
        self.stamps: dict[str, deque[float]] = {}

    def wait(self, key: str, limit: int, period: float, now: float) -> float:
        q = self.stamps.setdefault(key, deque())
        while q and q[0] <= now - period:
            q.popleft()
        return 0.0 if len(q) < limit else q[0] + period - now

    def record(self, keys: list[str], now: float) -> None:
        for key in keys:
            self.stamps.setdefault(key, deque()).append(now)


class _LongPoll:
    """One ``getUpdates`` call waiting for updates."""

    def __init__(self, request: web.Request | None) -> None:
        self.request = request
        self.terminated = asyncio.Event()

    @property
    def client_connected(self) -> bool:
        transport = self.request.transport if self.request is not None else None
        return transport is not None and not transport.is_closing()


class FakeBotApi:
    def __init__(self, token: str = "123456:TEST-token", *, enforce_limits: bool = False) -> None:
        self.token = token
        self.enforce_limits = enforce_limits
        self.sent: list[SentMessage] = []
        self.edits: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] | None = None
        self.rate_limited = 0
        #: getUpdates calls ended with 409 Conflict by a newer, overlapping getUpdates.
        self.conflicts = 0
        #: Which enforced limit refused each 429 ("global", "chat", "group").
        self.refused_by: Counter[str] = Counter()
        self.refused_at: list[float] = []
        #: (chat_id, user_id) -> status; anyone else is a "member".
        self.members: dict[tuple[int, int], str] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self._scripted: list[Scripted] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._long_poll: _LongPoll | None = None
        self._changed = asyncio.Condition()
        self._windows = _Windows()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner, self.port = await serve(app)

    async def stop(self) -> None:
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- test controls --------------------------------------------------
    def fail(
        self,
        method: str,
        response: tuple[int, dict[str, Any]],
        *,
        chat_id: int | str | None = None,
        times: int = 1,
    ) -> None:
        status, body = response
        self._scripted.append(Scripted(method, status, body, chat_id, times))

    def push_update(self, update: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def new_message_id(self) -> int:
        return next(self._message_ids)

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        self.members[(chat_id, user_id)] = status

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every API call)."""
        async with asyncio.timeout(within), self._changed:
            while True:
                result = predicate()
                if result:
                    return result
                await self._changed.wait()

    async def wait_sent(
        self, count: int = 1, chat_id: int | None = None, within: float = 5.0
    ) -> list[SentMessage]:
        def ready() -> list[SentMessage] | None:
            found = [m for m in self.sent if chat_id is None or m.chat_id == chat_id]
            return found if len(found) >= count else None

        result: list[SentMessage] = await self.wait_for(ready, within)
        return result

    def sent_to(self, chat_id: int | str) -> list[SentMessage]:
        return [m for m in self.sent if m.chat_id == chat_id]

    def message(self, chat_id: Any, message_id: Any) -> SentMessage | None:
        """The message ``message_id`` the bot sent to ``chat_id``, as it reads now."""
        for message in self.sent:
            if message.chat_id == chat_id and message.message_id == message_id:
                return message
        return None

    # ---- protocol -------------------------------------------------------
    @staticmethod
    def _decode(value: str) -> Any:
        if value[:1] in ("{", "["):
            try:
                return json.loads(value)
            except ValueError:
                return value
        if value.lstrip("-").isdigit():
            return int(value)
        return value

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return dict(data) if isinstance(data, dict) else {}
        form = await request.post()
        return {k: self._decode(v) if isinstance(v, str) else v for k, v in form.items()}

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(_error(401, "Unauthorized"), status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        try:
            status, body = await self._dispatch(method.lower(), params, request)
        finally:
            async with self._changed:
                self._changed.notify_all()
        return web.json_response(body, status=status)

    def _scripted_for(
        self, method: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]] | None:
        for item in self._scripted:
            if item.method.lower() != method or item.times <= 0:
                continue
            if item.chat_id is not None and params.get("chat_id") != item.chat_id:
                continue
            item.times -= 1
            return item.status, item.body
        return None

    def _limit_wait(self, chat_id: Any, now: float) -> tuple[float, list[str]]:
        keys = [("global", 30, 1.0), (f"chat:{chat_id}", 1, 1.0)]
        if isinstance(chat_id, str) or chat_id < 0:
            keys.append((f"group:{chat_id}", 20, 60.0))
        waits = [(self._windows.wait(k, n, p, now), k.split(":")[0]) for k, n, p in keys]
        wait, kind = max(waits)
        if wait > 0:
            self.refused_by[kind] += 1
            self.refused_at.append(now)
        return wait, [k for k, _n, _p in keys]

    async def _dispatch(
        self, method: str, params: dict[str, Any], request: web.Request | None = None
    ) -> tuple[int, dict[str, Any]]:
        if method == "getupdates":
            # Telegram ends a long-poll as soon as another getUpdates arrives,
            # whatever becomes of the newer one.
            self._end_long_poll()
        scripted = self._scripted_for(method, params)
        if scripted is not None:
            if scripted[0] == 429:
                self.rate_limited += 1
            return scripted
        if method == "getupdates":
            return await self._get_updates(params, request)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return 404, _error(404, "Not Found: method not found")
        result = await handler(params)
        if isinstance(result, tuple):
            return result
        return 200, {"ok": True, "result": result}

    def _me(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Catalyst",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        if chat_id in self.chats:
            return self.chats[chat_id]
        if isinstance(chat_id, int) and chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        return {"id": chat_id, "type": "supergroup", "title": "Group"}

    async def _m_getme(self, params: dict[str, Any]) -> Any:
        return self._me()

    async def _m_setmycommands(self, params: dict[str, Any]) -> Any:
        self.commands = list(params.get("commands") or [])
        return True

    async def _m_deletewebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    async def _m_setwebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    async def _m_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        """Telegram's WebhookInfo: ``url`` is empty when no webhook is set (polling)."""
        hook = self.webhook or {}
        info: dict[str, Any] = {
            "url": str(hook.get("url") or ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if info["url"]:
            info["max_connections"] = int(hook.get("max_connections") or 40)
            if hook.get("allowed_updates"):
                info["allowed_updates"] = list(hook["allowed_updates"])
        return info

    def _end_long_poll(self) -> None:
        """End the getUpdates still long-polling, if any: 409 Conflict when its
        client is there to be told, quietly when it has gone."""
        poll, self._long_poll = self._long_poll, None
        if poll is None or poll.terminated.is_set():
            return
        if poll.client_connected:
            self.conflicts += 1
        poll.terminated.set()

    async def _get_updates(
        self, params: dict[str, Any], request: web.Request | None
    ) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            poll = self._long_poll = _LongPoll(request)
            self._new_update.clear()
            waits = {
                asyncio.ensure_future(self._new_update.wait()),
                asyncio.ensure_future(poll.terminated.wait()),
            }
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
                if self._long_poll is poll:
                    self._long_poll = None
            if poll.terminated.is_set():
                return conflict()
        return 200, {"ok": True, "result": self._updates[:limit]}

    async def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        chat_id = params.get("chat_id")
        if chat_id is None or not params.get("text"):
            return bad_request("message text is empty" if chat_id else "chat_id is empty")
        now = time.monotonic()
        if self.enforce_limits:
            wait, keys = self._limit_wait(chat_id, now)
            if wait > 0:
                self.rate_limited += 1
                return too_many_requests(max(1, math.ceil(wait)))
            self._windows.record(keys, now)
        text = str(params["text"])
        if params.get("parse_mode") == "HTML" and _broken_html(text):
            return bad_request("can't parse entities: unsupported start tag")
        if _utf16_len(visible_text(text, params.get("parse_mode"))) > MAX_MESSAGE:
            return bad_request("message is too long")
        message = SentMessage(
            message_id=self.new_message_id(),
            chat_id=chat_id,
            text=str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            at=now,
            params=params,
        )
        self.sent.append(message)
        return {**self._message_result(message), "text": message.text}

    def _message_result(self, message: SentMessage) -> dict[str, Any]:
        return {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": self._chat(message.chat_id),
            "from": self._me(),
        }

    async def _m_sendphoto(self, params: dict[str, Any]) -> Any:
        """A photo arrives as a multipart upload (a file field named ``photo``), as
        python-telegram-bot sends bytes; a string would be a file_id or URL."""
        chat_id = params.get("chat_id")
        photo = params.get("photo")
        if chat_id is None:
            return bad_request("chat_id is empty")
        if not isinstance(photo, web.FileField):
            return bad_request("there is no photo in the request")
        caption = str(params.get("caption") or "")
        if len(caption) > 1024:
            return bad_request("message caption is too long")
        if params.get("parse_mode") == "HTML" and _broken_html(caption):
            return bad_request("can't parse entities: unsupported start tag")
        data = photo.file.read()
        message = SentMessage(
            message_id=self.new_message_id(),
            chat_id=chat_id,
            text=caption,
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            at=time.monotonic(),
            params={**params, "photo": data, "photo_content_type": photo.content_type},
        )
        self.sent.append(message)
        return {
            **self._message_result(message),
            "photo": [
                {
                    "file_id": f"photo{message.message_id}",
                    "file_unique_id": "u",
                    "width": 800,
                    "height": 800,
                }
            ],
            "caption": caption,
        }

    async def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> Any:
        previous = [e for e in self.edits if e.get("message_id") == params.get("message_id")]
        if previous and previous[-1].get("reply_markup") == params.get("reply_markup"):
            return not_modified()
        self.edits.append(params)
        message = self.message(params.get("chat_id"), params.get("message_id"))
        if message is not None:
            message.reply_markup = params.get("reply_markup")
        return True

    async def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        chat_id, text = params.get("chat_id"), str(params.get("text") or "")
        if chat_id is None or params.get("inline_message_id") is not None:
            return bad_request("chat_id is empty")  # inline messages are not modelled
        if not text:
            return bad_request("message text is empty")
        message = self.message(chat_id, params.get("message_id"))
        if message is None:
            return bad_request("message to edit not found")
        if "photo" in message.params:
            return bad_request("there is no text in the message to edit")
        parse_mode = params.get("parse_mode")
        if parse_mode == "HTML" and _broken_html(text):
            return bad_request("can't parse entities: unsupported start tag")
        if _utf16_len(visible_text(text, parse_mode)) > MAX_MESSAGE:
            return bad_request("message is too long")
        markup = params.get("reply_markup")
        if (text, parse_mode, markup) == (message.text, message.parse_mode, message.reply_markup):
            return not_modified()
        message.history.append((message.text, message.parse_mode))
        message.text, message.parse_mode, message.reply_markup = text, parse_mode, markup
        self.edits.append(params)
        return {**self._message_result(message), "text": text, "edit_date": int(time.time())}

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> Any:
        self.answers.append(params)
        return True

    async def _m_getchatmember(self, params: dict[str, Any]) -> Any:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        status = self.members.get((chat_id, user_id), "member")
        member: dict[str, Any] = {
            "status": status,
            "user": {"id": user_id, "is_bot": False, "first_name": "U"},
        }
        if status == "administrator":
            member.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=False,
                can_edit_stories=False,
                can_delete_stories=False,
            )
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "restricted":
            return bad_request("restricted members are not modelled by the fake")
        return member

    async def _m_getchatadministrators(self, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        out = []
        for (chat, user), status in self.members.items():
            if chat == chat_id and status in ("administrator", "creator"):
                out.append(await self._m_getchatmember({"chat_id": chat, "user_id": user}))
        return out

    async def _m_getchat(self, params: dict[str, Any]) -> Any:
        chat = dict(self._chat(params.get("chat_id")))
        chat.setdefault("accent_color_id", 0)
        chat.setdefault("max_reaction_count", 11)
        return chat


_ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "tg-spoiler",
    "span",
    "blockquote",
}


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(text: str, parse_mode: str | None) -> str:
    """What Telegram shows of ``text``: with ``parse_mode=HTML`` the tags go and the
    entities (``&amp;``, ``&lt;``...) become characters; otherwise ``text`` as is."""
    if parse_mode != "HTML":
        return text
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _broken_html(text: str) -> bool:
    """A rough check of Telegram's HTML rules: known tags, balanced, entities closed."""
    import re

    stack: list[str] = []
    for match in re.finditer(r"<(/?)([A-Za-z-]*)[^>]*>|<|&(?!(?:amp|lt|gt|quot|#\d+);)", text):
        if match.group(0) in ("<", "&"):
            return True
        closing, name = match.group(1), match.group(2).lower()
        if name not in _ALLOWED_TAGS:
            return True
        if closing:
            if not stack or stack.pop() != name:
                return True
        else:
            stack.append(name)
    return bool(stack)


# ---- update builders ---------------------------------------------------------
_message_seq = itertools.count(10_000)


def user(user_id: int, name: str = "Trader") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name, "username": f"u{user_id}"}


def chat(chat_id: int, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("private" if chat_id > 0 else "supergroup")
    out: dict[str, Any] = {"id": chat_id, "type": kind}
    if kind == "private":
        out["first_name"] = "Trader"
    else:
        out["title"] = "Traders"
    return out


def command(
    text: str,
    *,
    chat_id: int,
    user_id: int | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """A message update whose text starts with a bot command (as Telegram sends it)."""
    word = text.split()[0]
    message: dict[str, Any] = {
        "message_id": next(_message_seq),
        "date": int(time.time()),
        "chat": chat(chat_id, kind),
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(word)}],
    }
    if kind == "channel":
        message["sender_chat"] = chat(chat_id, kind)
        return {"channel_post": message}
    message["from"] = user(user_id if user_id is not None else chat_id)
    return {"message": message}


def callback(
    data: str, *, user_id: int, message: SentMessage, query_id: str | None = None
) -> dict[str, Any]:
    """A callback query from pressing an inline button under ``message``."""
    chat_id = message.chat_id
    return {
        "callback_query": {
            "id": query_id or f"q{next(_message_seq)}",
            "from": user(user_id),
            "chat_instance": "ci-1",
            "data": data,
            "message": {
                "message_id": message.message_id,
                "date": int(time.time()),
                "chat": chat(int(chat_id)),
                "text": message.text,
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Catalyst"},
            },
        }
    }


def migration(old_chat_id: int, new_chat_id: int) -> dict[str, Any]:
    """The service message Telegram sends in a group that became a supergroup."""
    return {
        "message": {
            "message_id": next(_message_seq),
            "date": int(time.time()),
            "chat": chat(old_chat_id, "group"),
            "from": user(1),
            "migrate_to_chat_id": new_chat_id,
        }
    }

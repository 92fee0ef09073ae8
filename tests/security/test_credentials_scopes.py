"""A credential's power is exactly its scopes, and a JWT's claims are type-checked."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.api_jws import PyJWS
from websockets.exceptions import ConnectionClosed

from core.auth import JWT_ISSUER
from domain.errors import PermissionDenied
from tests.api.conftest import Hub, HubFactory, auth, make_hub, recv_json
from tests.conftest import TEST_JWT_SECRET

__all__ = ["make_hub"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await make_hub()


async def test_a_read_key_of_an_admin_user_cannot_publish_or_administer(hub: Hub) -> None:
    """Before: every key of an admin user carried admin power, so it could publish."""
    _root, key = await hub.user("root", ("read",), is_admin=True)
    published = await hub.http.post(
        "/api/v1/signals", json={"ticker": "ABCD", "confidence": 0.5}, headers=auth(key)
    )
    assert published.status_code == 403
    admin = await hub.http.get("/api/v1/admin/stats/catalysts", headers=auth(key))
    assert admin.status_code == 403
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 200


async def test_an_admin_key_is_admin_only_not_every_scope(hub: Hub) -> None:
    _root, key = await hub.user("root", ("admin",), is_admin=True)
    assert (
        await hub.http.get("/api/v1/admin/stats/catalysts", headers=auth(key))
    ).status_code == 200
    published = await hub.http.post(
        "/api/v1/signals", json={"ticker": "ABCD", "confidence": 0.5}, headers=auth(key)
    )
    assert published.status_code == 403


async def test_the_admin_scope_is_only_for_admin_users(hub: Hub) -> None:
    """Before: ``key create bob --scope admin`` worked for a user who is not an admin."""
    bob = await hub.ctx.services.accounts.create_user("bob")
    with pytest.raises(PermissionDenied, match="admin"):
        await hub.ctx.auth.create_key(bob.id, ("read", "admin"))
    assert await hub.ctx.auth.list_keys(bob.id) == []
    root = await hub.ctx.services.accounts.create_user("root", is_admin=True)
    _key, info = await hub.ctx.auth.create_key(root.id, ("read", "admin"))
    assert info.scopes == ("read", "admin")


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_refuses_an_admin_key_for_a_non_admin_user(tmp_path: Path) -> None:
    assert cli(tmp_path, "user", "create", "bob").returncode == 0
    refused = cli(tmp_path, "key", "create", "bob", "--scope", "read,admin")
    assert refused.returncode == 2, refused
    assert refused.stderr.startswith("error: ") and "admin" in refused.stderr
    assert "Traceback" not in refused.stderr and "catalyst_" not in refused.stdout
    assert cli(tmp_path, "user", "create", "root", "--admin").returncode == 0
    granted = cli(tmp_path, "key", "create", "root", "--scope", "admin")
    assert granted.returncode == 0 and granted.stdout.strip().splitlines()[-1].startswith(
        "catalyst_"
    )


async def test_a_publish_only_key_never_reads_stored_signals_through_ingest(hub: Hub) -> None:
    """Before: POSTing a stored signal's id returned the whole stored signal."""
    stored = await hub.publish(signal_id="secret-1", headline="not for producers", price=4.2)
    _producer, key = await hub.user("producer", ("publish",))
    again = await hub.http.post(
        "/api/v1/signals",
        json={"signal_id": "secret-1", "ticker": "ZZZZ", "confidence": 0.1},
        headers=auth(key),
    )
    assert again.status_code == 200
    assert again.json() == {"signal_id": "secret-1", "seq": stored["seq"], "created": False}
    fresh = await hub.http.post(
        "/api/v1/signals",
        json={"signal_id": "new-1", "ticker": "ABCD", "confidence": 0.5, "headline": "mine"},
        headers=auth(key),
    )
    assert fresh.status_code == 201
    assert set(fresh.json()) == {"signal_id", "seq", "created"} and fresh.json()["created"]
    # A key that may read gets the stored signal, as it is now (the producer's post
    # above corrected it: a changed ticker and confidence are a correction).
    _reader, both = await hub.user("desk", ("read", "publish"))
    full = await hub.http.post(
        "/api/v1/signals",
        json={"signal_id": "secret-1", "ticker": "ZZZZ", "confidence": 0.1},
        headers=auth(both),
    )
    current = await hub.http.get("/api/v1/signals/secret-1", headers=auth(both))
    assert full.status_code == 200 and full.json() == current.json()
    assert full.json()["revision"] == 1 and full.json()["headline"] == stored["headline"]
    schema = (await hub.http.get("/openapi.json")).json()
    responses = schema["paths"]["/api/v1/signals"]["post"]["responses"]
    text = json.dumps(responses)
    assert "SignalOut" in text and "IngestReceipt" in text


def claims(user_id: int, key_id: int, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "name": "alice",
        "scopes": ["feedback", "read"],
        "iat": now,
        "exp": now + 600,
        "iss": JWT_ISSUER,
        "kid": key_id,
    }
    for name, value in changes.items():
        if value is DROP:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


DROP = object()
NOW = int(time.time())

BAD_CLAIMS: dict[str, dict[str, Any]] = {
    "exp digit string": {"exp": str(NOW + 600)},
    "iat digit string": {"iat": str(NOW)},
    "exp missing": {"exp": DROP},
    "iat missing": {"iat": DROP},
    "exp bool": {"exp": True},
    "exp list": {"exp": [NOW + 600]},
    "exp infinite": {"exp": math.inf},
    "iat list": {"iat": [NOW]},
    "iat object": {"iat": {"t": NOW}},
    "nbf list": {"nbf": [NOW]},
    "nbf string": {"nbf": "soon"},
    "sub float": {"sub": 1.0},
    "sub bool": {"sub": True},
    "sub unicode digit": {"sub": "\u0661"},
    "sub object": {"sub": {"id": 1}},
    "sub missing": {"sub": DROP},
    "scopes int": {"scopes": 5},
    "scopes string": {"scopes": "read"},
    "scopes nested": {"scopes": [["read"]]},
    "scopes unknown": {"scopes": ["read", "root"]},
    "scopes object": {"scopes": {"read": True}},
    "kid string": {"kid": "1"},
    "kid bool": {"kid": True},
    "kid float": {"kid": 1.0},
    "iss list": {"iss": [JWT_ISSUER]},
    "aud": {"aud": 5},
}


@pytest.mark.parametrize("name", list(BAD_CLAIMS))
async def test_jwt_claims_of_the_wrong_type_are_401_never_500(hub: Hub, name: str) -> None:
    """Before: a digit-string ``exp`` was accepted; odd types made a 500."""
    user, _key = await hub.user("alice")
    (info,) = await hub.ctx.auth.list_keys(user.id)
    good = jwt.encode(claims(user.id, info.id), TEST_JWT_SECRET, algorithm="HS256")
    assert (await hub.http.get("/api/v1/signals", headers=auth(good))).status_code == 200
    # Signed as is (PyJWT's own encoder refuses some of these claims).
    body = json.dumps(claims(user.id, info.id, **BAD_CLAIMS[name])).encode()
    token = PyJWS().encode(body, TEST_JWT_SECRET, algorithm="HS256")
    response = await hub.http.get("/api/v1/signals", headers=auth(token))
    assert response.status_code == 401, (name, response.status_code, response.text)
    ws = await hub.connect(token)
    assert (await recv_json(ws))["type"] == "error"
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_a_jwt_payload_that_is_not_an_object_is_401(hub: Hub) -> None:
    for body in (b"[1,2]", b"123", b'"x"', b"null", b"{" * 5000):
        token = PyJWS().encode(body, TEST_JWT_SECRET, algorithm="HS256")
        response = await hub.http.get("/api/v1/signals", headers=auth(token))
        assert response.status_code == 401, (body[:10], response.status_code)

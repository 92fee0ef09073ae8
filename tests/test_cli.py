"""The ``catalyst`` CLI, run as a real process in a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_everywhere(tmp_path: Path) -> None:
    for args in (
        ["--help"],
        ["run", "--help"],
        ["key", "create", "--help"],
        ["publish", "--help"],
        ["doctor", "--help"],
    ):
        result = run(tmp_path, *args)
        assert result.returncode == 0 and "usage: catalyst" in result.stdout


def test_commands_work_in_a_fresh_folder(tmp_path: Path) -> None:
    first = run(tmp_path, "db", "upgrade").stdout.strip()
    assert first.startswith("applied migration(s) 0001, 0002, 0003, 0004"), first
    assert "nothing applied" in run(tmp_path, "db", "upgrade").stdout
    doctor = run(tmp_path, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "PASS  database" in doctor.stdout and "FAIL" not in doctor.stdout
    assert (tmp_path / "catalyst.db").exists()

    created = run(tmp_path, "user", "create", "alice", "--admin")
    assert created.returncode == 0 and "created user alice" in created.stdout

    key = run(tmp_path, "key", "create", "alice", "--scope", "read,feedback,publish")
    assert key.returncode == 0
    plaintext = key.stdout.strip().splitlines()[-1]
    assert plaintext.startswith("catalyst_")
    listing = run(tmp_path, "key", "list", "alice")
    assert "read,feedback,publish" in listing.stdout and plaintext not in listing.stdout

    pub = run(
        tmp_path,
        "publish",
        "--ticker",
        "abcd",
        "--confidence",
        "0.9",
        "--catalyst",
        "FDA",
        "--signal-id",
        "cli-1",
    )
    assert pub.returncode == 0 and "published: cli-1 seq=1" in pub.stdout
    again = run(
        tmp_path, "publish", "--ticker", "abcd", "--confidence", "0.9", "--signal-id", "cli-1"
    )
    assert "already published: cli-1 seq=1" in again.stdout
    retracted = run(tmp_path, "publish", "--signal-id", "cli-1", "--status", "retracted")
    assert retracted.returncode == 0, retracted.stderr
    assert "retracted: cli-1 seq=1" in retracted.stdout
    unknown = run(tmp_path, "publish", "--signal-id", "nope", "--status", "retracted")
    assert unknown.returncode == 2 and "no signal 'nope' to retract" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    batch = tmp_path / "signals.jsonl"
    batch.write_text(
        json.dumps({"signal_id": "f-1", "ticker": "TSLA", "confidence": 0.6})
        + "\n"
        + json.dumps({"signal_id": "f-2", "ticker": "TSLA", "confidence": 9})
        + "\n"
    )
    from_file = run(tmp_path, "publish", "--file", str(batch))
    assert "published: f-1" in from_file.stdout
    assert from_file.returncode == 2 and "item 1: confidence" in from_file.stderr
    batch.write_text(json.dumps({"signal_id": "f-1", "headline": "corrected"}) + "\n")
    corrected = run(tmp_path, "publish", "--file", str(batch))
    assert corrected.returncode == 0 and "corrected: f-1" in corrected.stdout

    revoked = run(tmp_path, "key", "revoke", "1")
    assert revoked.returncode == 0 and "revoked API key 1" in revoked.stdout


def test_source_run_once_prints_without_publishing(tmp_path: Path) -> None:
    result = run(tmp_path, "source", "run-once")
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and all(line["source"] == "demo" for line in lines)
    pub = run(tmp_path, "publish", "--ticker", "X", "--confidence", "0.5", "--signal-id", "only")
    assert "seq=1" in pub.stdout  # the dry run stored nothing


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["key", "create", "nobody"], {}, "error: no user named 'nobody'"),
        (["user", "create", "bad name!"], {}, "error: user name must be"),
        (["publish", "--ticker", "AAPL"], {}, "error: give --ticker and --confidence"),
        (["publish", "--ticker", "AAPL", "--confidence", "3"], {}, "confidence"),
        (["publish", "--file", "missing.json"], {}, "error: cannot read missing.json"),
        (
            ["--config", "nope.toml", "db", "upgrade"],
            {},
            "error: config file nope.toml does not exist",
        ),
        (["db", "upgrade"], {"CATALYST_API__PORT": "x"}, "error: invalid configuration: api.port"),
        (["run", "--roles", "web"], {}, "error: unknown role(s) web"),
    ],
)
def test_user_mistakes_are_clear_and_traceback_free(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run(tmp_path, *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_key_scopes_are_validated(tmp_path: Path) -> None:
    run(tmp_path, "user", "create", "bob")
    result = run(tmp_path, "key", "create", "bob", "--scope", "read,root")
    assert result.returncode == 2 and "unknown scope 'root'" in result.stderr

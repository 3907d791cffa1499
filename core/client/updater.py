"""The client's side of ``corral update``: ask the daemon to hand over, wait for its
new image (or start this corral's daemon when it restarted), and tell what each app
did. The daemon's side is corral.daemon.upgrade."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from corral import paths
from corral.client.launcher import ensure_daemon, wait_daemon_gone
from corral.errors import DaemonError
from corral.rpc.wire import SyncTransport, pid_alive


def update_daemon(client: Any) -> dict[str, Any]:
    """:meth:`corral.Client.update`: the daemon is replaced by one of this corral."""
    if client._inner is not None:
        raise DaemonError("an in-process daemon runs this program's own code: nothing to update")
    before = {p.pm_id: p.pid for p in client.list()}
    request = {"python": sys.executable, "pythonpath": os.environ.get("PYTHONPATH")}
    left = client._send("update", request)
    client._transport.close()
    pid = None
    if left["handover"] == "exec":
        pid = _await_successor(client.home, left["pid"], left.get("started_at"))
    if pid is None:  # restarted, or the exec failed: this corral's daemon takes them over
        wait_daemon_gone(left["pid"], 30.0)
        pid = ensure_daemon(client.home)
    client.daemon_pid = pid
    client._transport = SyncTransport(
        paths.rpc_address(client.home), lambda: pid_alive(client.daemon_pid)
    )
    now = client.ping()
    apps = []
    for info in client.list():  # answered once the apps are back (see Commands.dispatch)
        if info.pid is not None and before.get(info.pm_id) == info.pid and pid == left["pid"]:
            how = "kept running"
        elif info.pid is None:
            how = f"not running ({info.status})"
        else:
            how = "restarted"
        apps.append(
            {"pm_id": info.pm_id, "name": info.name, "pid": info.pid, "status": info.status}
            | {"how": how}
        )
    return {
        "handover": "exec" if pid == left["pid"] else "restart",
        "why_restarted": left.get("why_restarted"),
        "previous": {k: left.get(k) for k in ("pid", "version", "install_path", "python")},
        "daemon": {k: now.get(k) for k in ("pid", "version", "install_path", "python")},
        "apps": apps,
    }


def _await_successor(home: Path, pid: int, started_at: Any, timeout: float = 30.0) -> int | None:
    """``pid`` once its new image answers (another ``started_at``); None if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        if paths.rpc_path(home).exists():
            transport = SyncTransport(paths.rpc_address(home), lambda: pid_alive(pid))
            try:
                if transport.call("ping", {}, timeout=1.0).get("started_at") != started_at:
                    return pid
            except DaemonError:
                pass
            finally:
                transport.close()
        time.sleep(0.02)
    return None


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What ``corral update`` prints: the daemon before and after, then per app name
    ``kept running: web (4 instances)`` or ``restarted: api``."""
    old, new = result["previous"], result["daemon"]
    lines = [
        f"daemon pid {old['pid']} (corral {old['version']} from {old['install_path']}) -> "
        f"pid {new['pid']} (corral {new['version']} from {new['install_path']})"
    ]
    if result.get("why_restarted"):
        lines.append(f"no handover in place: {result['why_restarted']}")
    groups: dict[tuple[str, str], int] = {}
    for app in result["apps"]:
        key = (app["how"], app["name"])
        groups[key] = groups.get(key, 0) + 1
    for (how, name), count in groups.items():
        lines.append(f"{how}: {name}" + (f" ({count} instances)" if count > 1 else ""))
    if not result["apps"]:
        lines.append("no apps")
    return lines

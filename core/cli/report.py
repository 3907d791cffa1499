"""``corral report``: a diagnostics bundle to paste in an issue, as ``pm2 report``.

Versions (corral, Python, OS, psutil, pyzmq, node), CORRAL_HOME, the daemon's
ping (pid, version, uptime), the process list, the last lines of corral.log,
the plugins with their errors, and this shell's environment. Secrets are
masked everywhere (:mod:`corral.options.secrets`). It never starts a daemon: with none
running it says so and reports the rest.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from corral import paths
from corral.options.secrets import mask_env, mask_text, secret_values

LOG_LINES = 50


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def versions() -> dict[str, Any]:
    return {
        "corral": _version("corral"),
        "python": platform.python_version(),
        "python_path": sys.executable,
        "os": platform.platform(),
        "psutil": _version("psutil"),
        "pyzmq": _version("pyzmq"),
        "click": _version("click"),
        "node": _node_version(),
    }


def tail(path: os.PathLike | str, lines: int) -> list[str]:
    """The last ``lines`` lines of a file (reading at most its last 256 KB)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


def gather(client_factory: Callable[[], Any] | None) -> dict[str, Any]:
    """The report as one dict; ``client_factory`` is None when no daemon runs."""
    home = paths.home()
    env = dict(os.environ)
    known = secret_values(env)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "home": str(home),
        "daemon": None,
        "processes": [],
        "plugins": [],
        "daemon_log": [mask_text(line, known) for line in tail(paths.log_file(home), LOG_LINES)],
        "env": mask_env(env),
    }
    if client_factory is None:
        return report
    client = client_factory()
    pong = client.ping()
    report["daemon"] = {
        "pid": pong.get("pid"),
        "version": pong.get("version"),
        "uptime_ms": pong.get("uptime_ms"),
        "apps": pong.get("apps"),
    }
    report["processes"] = [
        {
            "name": info.name,
            "pm_id": info.pm_id,
            "status": info.status,
            "restart_time": info.restart_time,
            "pid": info.pid or None,
        }
        for info in client.list()
    ]
    report["plugins"] = [
        {
            "name": p.get("name"),
            "version": p.get("version"),
            "errors": [mask_text(str(e), known) for e in p.get("errors") or []],
        }
        for p in client.plugins()
    ]
    return report


def _uptime(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return "-"
    seconds = int(ms / 1000)
    return f"{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"


def text(report: dict[str, Any]) -> str:
    """The report as the text ``corral report`` prints."""
    out = ["corral report", f"date: {report['date']}", "", "versions"]
    out += [f"  {k}: {v or 'not found'}" for k, v in report["versions"].items()]
    out += ["", f"CORRAL_HOME: {report['home']}", ""]
    daemon = report["daemon"]
    if daemon is None:
        out.append("daemon: not running (corral report starts none)")
    else:
        out.append(
            f"daemon: pid {daemon['pid']}, version {daemon['version']}, "
            f"uptime {_uptime(daemon['uptime_ms'])}, {daemon['apps']} apps"
        )
        out += ["", "processes (id name status restarts pid)"]
        out += [
            f"  {p['pm_id']} {p['name']} {p['status']} {p['restart_time']} {p['pid'] or '-'}"
            for p in report["processes"]
        ] or ["  none"]
        out += ["", "plugins"] + ([] if report["plugins"] else ["  none"])
        for plugin in report["plugins"]:
            errors = plugin["errors"]
            out.append(f"  {plugin['name']} {plugin['version'] or ''}".rstrip())
            out += [f"    error: {e}" for e in errors]
    out += ["", f"corral.log (last {LOG_LINES} lines)"]
    out += [f"  {line}" for line in report["daemon_log"]] or ["  (empty)"]
    out += ["", "environment of this shell (secrets masked)"]
    out += [f"  {k}={v}" for k, v in sorted(report["env"].items())]
    return "\n".join(out) + "\n"

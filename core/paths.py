"""Where corral keeps its files. Resolved per call from ``CORRAL_HOME``, never at import."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import DaemonError


def home() -> Path:
    """``$CORRAL_HOME``, else ``~/.corral``."""
    value = os.environ.get("CORRAL_HOME")
    return Path(value).expanduser().absolute() if value else Path.home() / ".corral"


def ensure_home(path: Path | None = None) -> Path:
    """Create the home (0700) with ``logs/`` and ``pids/``; refuse one others can write."""
    root = path or home()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = root.stat()
    if mode.st_uid != os.getuid():
        raise DaemonError(
            f"CORRAL_HOME {root} belongs to uid {mode.st_uid}, not to you (uid {os.getuid()}): "
            "set CORRAL_HOME to a directory of your own"
        )
    if mode.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DaemonError(f"CORRAL_HOME {root} is writable by other users: run `chmod 700 {root}`")
    for sub in ("logs", "pids"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
    return root


def rpc_path(root: Path) -> Path:
    return root / "rpc.sock"


def rpc_address(root: Path) -> str:
    path = str(rpc_path(root))
    if len(path.encode()) > 100:
        raise DaemonError(
            f"CORRAL_HOME {root} is too long for a unix socket path ({len(path)} bytes, max 100): "
            "set CORRAL_HOME to a shorter directory"
        )
    return f"ipc://{path}"


def pid_file(root: Path) -> Path:
    return root / "corral.pid"


def lock_file(root: Path) -> Path:
    return root / "daemon.lock"


def state_file(root: Path) -> Path:
    return root / "state.json"


def journal_file(root: Path) -> Path:
    return root / "spawned.jsonl"


def log_file(root: Path) -> Path:
    return root / "corral.log"


def settings_file(root: Path) -> Path:
    """The daemon's own settings (``rpc_address``); optional."""
    return root / "corral.yaml"


def has_settings(root: Path) -> bool:
    """Whether the daemon of ``root`` has settings to read (most homes have none, and
    then :mod:`corral.remote` is never imported: it costs ~14 ms of start-up)."""
    return "CORRAL_RPC_ADDRESS" in os.environ or settings_file(root).exists()


def keys_dir(root: Path) -> Path:
    """The CURVE keys of the TCP endpoint (:mod:`corral.remote`)."""
    return root / "keys"


def dump_file(root: Path) -> Path:
    value = os.environ.get("CORRAL_DUMP_FILE")
    return Path(value).expanduser().absolute() if value else root / "dump.corral"

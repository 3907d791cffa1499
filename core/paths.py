"""Where corral keeps its files. Resolved per call from ``CORRAL_HOME``, never at import."""

from __future__ import annotations

import os
import re
import stat
import sys
import zlib
from pathlib import Path

from corral.errors import DaemonError


def home() -> Path:
    """``$CORRAL_HOME``, else ``~/.corral``."""
    value = os.environ.get("CORRAL_HOME")
    return Path(value).expanduser().absolute() if value else Path.home() / ".corral"


def ensure_home(path: Path | None = None) -> Path:
    """The real home directory (0700, with ``logs/`` and ``pids/``), made if missing.

    The path is resolved once, here, one component at a time: every directory on
    the way must belong to root or to you and be writable by no one else (unless
    sticky, as ``/tmp``), every symbolic link followed must belong to root or to
    you, and the home itself must be yours and writable by you alone. No other
    user can then swap a component of the path returned, so paths under it stay
    where they were checked; a symbolic link in ``CORRAL_HOME`` is followed now
    and never again.
    """
    given = path or home()
    try:
        return _checked_home(given)
    except OSError as exc:  # a read-only or full file system, a missing permission
        raise DaemonError(
            f"CORRAL_HOME {given} cannot be made or used: {exc.strerror or exc}: set "
            "CORRAL_HOME to a writable directory of your own"
        ) from None


def _checked_home(given: Path) -> Path:
    root = _resolve(given)
    mode = root.stat()
    shown = str(given) if str(given) == str(root) else f"{given} (really {root})"
    if mode.st_uid != os.getuid():
        raise DaemonError(
            f"CORRAL_HOME {shown} belongs to uid {mode.st_uid}, not to you (uid {os.getuid()}): "
            "set CORRAL_HOME to a directory of your own"
        )
    if mode.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DaemonError(f"CORRAL_HOME {shown} is writable by other users: run `chmod 700 {root}`")
    for sub in ("logs", "pids"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(root / sub)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise DaemonError(
                f"CORRAL_HOME {shown}: {root / sub} is not a directory of yours: "
                f"remove it, corral makes it again"
            )
    return root


def _resolve(given: Path) -> Path:
    """``given`` made absolute, its links followed and checked, missing directories made."""
    me = os.getuid()
    todo = list(Path(os.getcwd(), given).parts[1:])  # not abspath: a/.. goes through a
    real = Path("/")
    links = 0
    while todo:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            real = real.parent
            continue
        _check_parent(given, real, me)
        step = real / name
        try:
            st = os.lstat(step)
        except FileNotFoundError:
            step.mkdir(mode=0o755 if todo else 0o700)
            st = os.lstat(step)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if st.st_uid not in (0, me) or links > 40:
                raise DaemonError(
                    f"CORRAL_HOME {given} goes through the symbolic link {step}, which "
                    f"uid {st.st_uid} can change: set CORRAL_HOME to the real directory"
                )
            target = os.readlink(step)
            if os.path.isabs(target):
                real = Path("/")
            todo[:0] = [p for p in Path(target).parts if p != "/"]
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise DaemonError(f"CORRAL_HOME {given}: {step} is not a directory")
        real = step
    return real


def _check_parent(given: Path, directory: Path, me: int) -> None:
    """A directory above the home: only root or you may change what it holds."""
    st = os.stat(directory)
    others_write = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX
    if st.st_uid not in (0, me) or others_write:
        who = f"uid {st.st_uid}" if st.st_uid not in (0, me) else "other users"
        raise DaemonError(
            f"CORRAL_HOME {given}: {directory} can be changed by {who}, who could swap the "
            "home for another directory: set CORRAL_HOME to a directory only you and root control"
        )


def open_dir(root: Path, sub: str) -> int:
    """A descriptor of ``root/sub`` (``logs``, ``pids``), never through a symbolic link:
    the daemon opens the files it keeps there relative to it (``dir_fd``)."""
    fd = os.open(root / sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    if os.fstat(fd).st_uid != os.getuid():
        os.close(fd)
        raise DaemonError(f"{root / sub} is not a directory of yours: remove it")
    return fd


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


def plugins_cache() -> Path:
    """The cache of the installed plugins' entry points (corral.entrypoints): the
    user's, one per Python environment (every home of that environment shares it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = zlib.crc32(os.fsencode(sys.prefix))
    return Path(base) / "corral" / f"entrypoints-{tag:08x}.json"


def settings_file(root: Path) -> Path:
    """The daemon's own settings, read by plugins (:mod:`corral.daemon.settings`); optional."""
    return root / "corral.yaml"


def dump_file(root: Path) -> Path:
    value = os.environ.get("CORRAL_DUMP_FILE")
    return Path(value).expanduser().absolute() if value else root / "dump.corral"


def safe_name(name: str) -> str:
    """The app name as PM2 puts it in file names: ``[^a-zA-Z0-9.-]`` becomes ``-``."""
    return re.sub(r"[^a-zA-Z0-9.\-]", "-", name)

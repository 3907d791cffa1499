"""logrotate: rotate the app logs and corral.log by size and by cron, keep N, gzip.

PM2 needs the separate pm2-logrotate module, which copies a file and then
truncates it, so lines written in between are lost. Here a rotation is a
rename followed by a reopen of the same path, both on the daemon's event loop
between two writes: the daemon writes whole lines synchronously on that loop,
so no line can be lost, duplicated or torn by a rotation.

Daemon-wide settings live in ``$CORRAL_HOME/logrotate.json`` (read when the
daemon starts; ``corral logrotate set KEY VALUE`` writes it and applies the
change at once, ``corral logrotate show`` prints it). PM2's keys and defaults:

- ``max_size`` (10M): rotate a file when it reaches this size; K, M, G
  suffixes (powers of 1024); 0 turns size rotation off.
- ``retain`` (30): rotated files kept per log, the oldest deleted first;
  ``all`` keeps every one.
- ``compress`` (false): gzip each rotated file to ``.gz``, off the loop.
- ``date_format`` (``YYYY-MM-DD_HH-mm-ss``, PM2's ``dateFormat``): the date in
  rotated names, ``<path minus .log>__<date>.log`` as pm2-logrotate names them
  (``__<n>`` is added before ``.log`` when that name is taken).
- ``rotate_interval`` (``0 0 * * *``, PM2's ``rotateInterval``): a cron
  expression (six fields: seconds first) at which every non-empty file is
  rotated; ``off`` turns it off.
- ``rotate_module`` (true, PM2's ``rotateModule``): rotate corral.log too.
- ``worker_interval`` (30, seconds, PM2's ``workerInterval``): how often the
  size of corral.log is checked (app logs are checked as they are written).

App options override the first three per app: ``logrotate_max_size``,
``logrotate_retain`` and ``logrotate_compress``.

RPC commands: ``logrotate_show``, ``logrotate_set(key, value)``,
``logrotate_rotate(target=None)`` (rotate now) and ``logrotate_flush(target=None,
all=False)`` (truncate the current files, and with ``all`` delete the rotated
ones). CLI: ``corral logrotate show|set|rotate|flush``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import difflib
import functools
import gzip
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import croniter

import corral
from corral.api import Account, app_account, as_account, date_formatter, parse_bytes

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

SETTINGS_FILE = "logrotate.json"
CHECK_EVERY = 64 * 1024  # bytes written between two fstat() of a file
GZIP_LEVEL = 6
WALL_CHECK = 30.0  # seconds between two looks at the wall clock while waiting for a cron tick
_DIGITS = re.compile(r"(\d+)")


# -- settings ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """The daemon-wide settings, PM2's defaults."""

    max_size: int = 10 * 1024 * 1024
    retain: int | str = 30  # "all" keeps every rotated file
    compress: bool = False
    date_format: str = "YYYY-MM-DD_HH-mm-ss"
    rotate_interval: str | None = "0 0 * * *"
    rotate_module: bool = True
    worker_interval: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


KEYS = tuple(f.name for f in dataclasses.fields(Settings))
PM2_KEYS = {
    "dateFormat": "date_format",
    "rotateInterval": "rotate_interval",
    "rotateModule": "rotate_module",
    "workerInterval": "worker_interval",
}


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise corral.OptionError(f"logrotate {key} must be true or false, got {value!r}", field=key)


def retain_value(value: Any, key: str = "retain") -> int | str:
    """An integer >= 0, or ``"all"`` to keep every rotated file."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    text = str(value).strip()
    if not isinstance(value, bool) and text.isdigit():
        return int(text)
    raise corral.OptionError(
        f"{key} must be an integer >= 0 or 'all' (keep every rotated file), got {value!r}",
        field=key,
    )


def _date_format(value: Any) -> str:
    text = str(value)
    if not text or "/" in text or "\0" in text:
        raise corral.OptionError(
            f"logrotate date_format must be a non-empty format without '/', got {value!r}",
            field="date_format",
        )
    try:
        date_formatter(text)
    except corral.OptionError as exc:
        message = str(exc).replace("log_date_format", "logrotate date_format", 1)
        raise corral.OptionError(message, field="date_format") from None
    return text


def _cron(value: Any) -> str | None:
    if value is None or value is False or str(value).strip().lower() in ("", "off", "false"):
        return None
    text = " ".join(str(value).split())
    fields = len(text.split())
    if not (text.startswith("@") or fields in (5, 6)) or not croniter.is_valid(
        text, second_at_beginning=True
    ):
        raise corral.OptionError(
            f"logrotate rotate_interval must be a cron expression ('0 0 * * *'; six fields "
            f"put seconds first) or 'off', got {value!r}",
            field="rotate_interval",
        )
    return text


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not seconds > 0:
        raise corral.OptionError(
            f"logrotate worker_interval must be a number of seconds > 0, got {value!r}",
            field="worker_interval",
        )
    return seconds


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_size": lambda v: parse_bytes(v, "logrotate max_size"),
    "retain": lambda v: retain_value(v, "logrotate retain"),
    "compress": lambda v: _bool("compress", v),
    "date_format": _date_format,
    "rotate_interval": _cron,
    "rotate_module": lambda v: _bool("rotate_module", v),
    "worker_interval": _seconds,
}


def parse_setting(key: str, value: Any) -> tuple[str, Any]:
    """``(canonical key, converted value)``; PM2's camelCase keys and a ``logrotate:`` or
    ``pm2-logrotate:`` prefix are accepted. Raises OptionError naming the key."""
    name = key.strip().removeprefix("pm2-logrotate:").removeprefix("logrotate:")
    name = PM2_KEYS.get(name, name)
    if name not in _PARSERS:
        close = difflib.get_close_matches(name, [*KEYS, *PM2_KEYS], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KEYS)})"
        raise corral.OptionError(f"unknown logrotate setting {key!r}{hint}", field=key)
    return name, _PARSERS[name](value)


def read_settings(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The settings stored in ``path`` (converted) and the errors of those left out."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        return {}, [f"{path}: {exc}: using the defaults"]
    if not isinstance(raw, dict):
        return {}, [f"{path}: expected a JSON object: using the defaults"]
    stored, errors = {}, []
    for key, value in raw.items():
        try:
            name, converted = parse_setting(str(key), value)
        except corral.OptionError as exc:
            errors.append(f"{path}: {exc}: using the default")
        else:
            stored[name] = converted
    return stored, errors


def write_settings(path: Path, stored: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# -- rotated files (pure, safe in any thread) --------------------------------


def _stem_ext(path: Path) -> tuple[str, str]:
    name = path.name
    return (name[:-4], ".log") if name.endswith(".log") else (name, "")


def rotated_name(path: Path, date: str, first: int = 0) -> tuple[Path, int]:
    """``<path minus .log>__<date>.log``, or ``...__<date>__<n>.log`` (n >= ``first``) when
    that is taken. Returns the path and its n (0 for none)."""
    stem, ext = _stem_ext(path)
    n = first
    while True:
        name = f"{stem}__{date}{f'__{n}' if n else ''}{ext}"
        candidate = path.with_name(name)
        if not (candidate.exists() or candidate.with_name(name + ".gz").exists()):
            return candidate, n
        n += 1


def _natural(name: str) -> list[Any]:
    # "x__9.log" before "x__10.log"; "x.log" before "x__1.log" ("." sorts before "_")
    return [int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(name))]


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of ``path`` (plain and ``.gz``), oldest first.

    Oldest is the earliest modification time (the last line it received),
    then the name in natural order; pm2-logrotate sorts by name only.
    """
    stem, ext = _stem_ext(path)
    prefix = stem + "__"
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or name == path.name:
            continue
        if ext and not (name.endswith(ext) or name.endswith(ext + ".gz")):
            continue
        with contextlib.suppress(FileNotFoundError):
            found.append((entry.stat().st_mtime_ns, _natural(name), Path(entry.path)))
    return [p for *_, p in sorted(found)]


def compress(path: Path) -> Path:
    """Gzip ``path`` to ``path.gz`` (same mode and mtime), then remove ``path``."""
    target = path.with_name(path.name + ".gz")
    tmp = path.with_name(f".{target.name}.tmp")
    # never through a link: whoever can write an app's log directory could plant one
    src_fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(src_fd, "rb") as src:
        st = os.fstat(src_fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a leftover, or a planted link: O_EXCL below refuses either
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with open(os.open(tmp, flags, 0o600), "wb") as raw:
                with gzip.GzipFile(target.name, "wb", GZIP_LEVEL, raw, int(st.st_mtime)) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # keeps the rotation order
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    os.unlink(path)
    return target


def prune(path: Path, retain: int | str) -> list[Path]:
    """Delete the oldest rotated files of ``path`` beyond ``retain``; returns them."""
    if retain == "all":
        return []
    files = rotated_files(path)
    doomed = files[: max(len(files) - int(retain), 0)]
    for old in doomed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
    return doomed


def finish(rotated: Path, current: Path, gzip_it: bool, retain: int | str) -> dict[str, Any]:
    """After a rotation, off the loop: compress the rotated file, then apply ``retain``."""
    final = compress(rotated) if gzip_it else rotated
    return {"rotated": str(final), "deleted": [str(p) for p in prune(current, retain)]}


def delete_rotated(paths: list[Path]) -> list[str]:
    deleted = []
    for path in paths:
        for old in rotated_files(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)
                deleted.append(str(old))
    return deleted


def _delete_as(accounts: list[tuple[Path, Account | None]]) -> list[str]:
    """:func:`delete_rotated` of each path with the rights of its account."""
    deleted: list[str] = []
    for path, creds in accounts:
        with contextlib.suppress(OSError):  # a directory that account cannot list: nothing
            deleted.extend(as_account(creds, lambda p=path: delete_rotated([p])) or [])
    return deleted


# -- the rotator: one per daemon, used on its loop ----------------------------


def _size_of(log: Any) -> int:
    """The size of the file ``log`` writes to, -1 if it cannot be known."""
    try:
        return os.fstat(log.fileno()).st_size
    except (OSError, ValueError):
        return -1


@dataclasses.dataclass
class _Size:
    estimate: int = 0  # bytes: the size at the last fstat plus what was written since
    next_check: int = 0  # fstat again when estimate reaches this


class Rotator:
    """Watches the daemon's log files and rotates them. Runs on the daemon's loop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.loop: asyncio.AbstractEventLoop = daemon.loop or asyncio.get_running_loop()
        self.settings_path = Path(daemon.home) / SETTINGS_FILE
        self.stored, errors = read_settings(self.settings_path)
        for error in errors:
            daemon.log.error("logrotate setting ignored", error=error)
        self.settings = Settings(**self.stored)
        self.sizes: dict[Path, _Size] = {}
        self.names: dict[Path, tuple[str, int]] = {}  # the last rotated name's date and n
        # one worker: compressions, retention and deletions of a log happen in rotation order
        self.executor = concurrent.futures.ThreadPoolExecutor(1, "corral-logrotate")
        self.jobs: set[asyncio.Future] = set()
        self.rotations = 0
        self._cron: asyncio.TimerHandle | None = None
        self._cron_due = 0.0
        self._worker: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule_cron()
        self._schedule_worker()

    def stop(self) -> None:
        for timer in (self._cron, self._worker):
            if timer is not None:
                timer.cancel()
        self._cron = self._worker = None
        self.executor.shutdown(wait=False)  # queued gzips still finish before the process exits

    # settings

    def set(self, key: str, value: Any) -> dict[str, Any]:
        name, converted = parse_setting(key, value)
        stored = {**self.stored, name: converted}
        write_settings(self.settings_path, stored)
        self.stored, self.settings = stored, Settings(**stored)
        for size in self.sizes.values():
            size.next_check = 0  # a new max_size applies from the next line
        if name == "rotate_interval":
            self._schedule_cron()
        if name == "worker_interval":
            self._schedule_worker()
        self.daemon.log.info("logrotate setting changed", key=name, value=converted)
        return {**self.show(), "key": name}

    def show(self) -> dict[str, Any]:
        return {
            "file": str(self.settings_path),
            "settings": self.settings.to_dict(),
            "set": sorted(self.stored),
            "rotations": self.rotations,
        }

    def _for_app(self, options: dict[str, Any], key: str) -> Any:
        value = options.get(f"logrotate_{key}")
        return getattr(self.settings, key) if value is None else value

    # size

    def on_chunk(self, app: Any, stream: str, data: bytes) -> None:
        """``data`` was just written to the stream's file and the combined one."""
        paths = app.log_paths
        first, combined = paths.get(stream), paths.get("combined")
        for path in (first, combined) if combined != first else (first,):
            if path is None:
                continue
            size = self.sizes.get(path)
            if size is None:
                size = self.sizes[path] = _Size()
            # data lacks any date prefix or JSON wrapping: the estimate runs low, never high
            size.estimate += len(data)
            if size.estimate >= size.next_check:
                self._check(path, size, app.options)

    def _check(self, path: Path, size: _Size, options: dict[str, Any]) -> None:
        log = self.daemon.app_log(path)
        if log is None:
            return
        real = _size_of(log)
        if real < 0:
            return
        limit = self._for_app(options, "max_size")
        if limit and real >= limit:
            rotated = self.rotate(log, options) is not None
            real = 0 if rotated else _size_of(log)
            if real >= limit:  # the rotation failed (and was logged): retry after another limit
                size.estimate, size.next_check = real, real + limit
                return
        size.estimate = real
        size.next_check = real + CHECK_EVERY
        if limit:
            size.next_check = min(size.next_check, limit)

    # rotating

    def rotate(self, log: Any, options: dict[str, Any]) -> asyncio.Future | None:
        """Rename ``log``'s file and reopen its path; the rest is queued off the loop."""
        path = log.path
        try:
            ours = os.fstat(log.fileno())
            theirs: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            theirs = None
        except (OSError, ValueError) as exc:
            self.daemon.log.error("logrotate cannot stat", path=str(path), error=str(exc))
            return None
        if theirs is None or not os.path.samestat(ours, theirs):
            # moved away by someone else (an external mv): follow it as reload_logs would
            with contextlib.suppress(OSError):
                log.reopen()
            return None
        target = self._rotated_name(path)
        try:
            os.rename(path, target)
        except OSError as exc:
            self.daemon.log.error("logrotate cannot rename", path=str(path), error=str(exc))
            return None
        try:
            log.reopen()
        except OSError as exc:
            # the old descriptor keeps receiving lines, in the rotated file: none is lost
            self.daemon.log.error("logrotate cannot reopen", path=str(path), error=str(exc))
        return self._after(target, path, options)

    def _rotated_name(self, path: Path) -> Path:
        date = date_formatter(self.settings.date_format)(time.time())
        last_date, last_n = self.names.get(path, ("", -1))
        # past the last n of this date, so a name freed by retention is never reused
        target, n = rotated_name(path, date, last_n + 1 if last_date == date else 0)
        self.names[path] = (date, n)
        return target

    def rotate_daemon_log(self) -> asyncio.Future | None:
        """corral.log: the daemon's logger writes on this thread, so no line is split."""
        path = self.daemon.log_path
        try:
            if os.stat(path).st_size == 0:
                return None
            target = self._rotated_name(path)
            os.rename(path, target)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600))
            self.daemon.reopen_daemon_log()
        except OSError as exc:
            self.daemon.log.error("logrotate cannot rotate corral.log", error=str(exc))
            return None
        return self._after(target, path, {})

    def _after(
        self, rotated: Path, current: Path, options: dict[str, Any]
    ) -> asyncio.Future | None:
        self.rotations += 1
        gzip_it = bool(self._for_app(options, "compress"))
        retain = self._for_app(options, "retain")
        # as the app's account: its user can swap its log directory for a link to any other
        try:
            creds = self._account(current, options)
        except corral.OptionError as exc:  # the user is gone: its files are left as they are
            self.daemon.log.error(
                "logrotate cannot act as the app", path=str(rotated), error=str(exc)
            )
            return None
        job = functools.partial(finish, rotated, current, gzip_it, retain)
        future = self.loop.run_in_executor(self.executor, as_account, creds, job)
        self.jobs.add(future)
        future.add_done_callback(self._job_done)
        return future

    def _account(self, path: Path, options: dict[str, Any]) -> Account | None:
        """Whose rights the files next to ``path`` are handled with: the daemon's in its
        own logs directory, else those of the app of ``options``."""
        if not options or self.daemon.is_own_log_dir(path.parent):
            return None
        return app_account(options)

    def _job_done(self, future: asyncio.Future) -> None:
        self.jobs.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.daemon.log.error("logrotate job failed", error=f"{type(exc).__name__}: {exc}")
        else:
            result = future.result()
            self.daemon.log.info("rotated log", to=result["rotated"], deleted=result["deleted"])

    def rotate_all(self, procs: list[Any] | None, daemon_log: bool) -> list[asyncio.Future]:
        """Rotate every non-empty file of ``procs`` (every open file when None)."""
        owners: dict[Path, Any] = {}
        for app in self.daemon.processes() if procs is None else procs:
            for path in app.log_paths.values():
                if path is not None:
                    owners.setdefault(Path(os.path.abspath(path)), app)
        if procs is None:
            logs = list(self.daemon.app_logs())
        else:
            logs = [log for log in map(self.daemon.app_log, owners) if log is not None]
        futures = []
        for log in logs:
            if _size_of(log) <= 0:
                continue
            app = owners.get(log.path)
            future = self.rotate(log, app.options if app else {})
            if future is not None:
                futures.append(future)
        if daemon_log and self.settings.rotate_module:
            future = self.rotate_daemon_log()
            if future is not None:
                futures.append(future)
        return futures

    async def wait(self, futures: list[asyncio.Future]) -> list[dict[str, Any]]:
        """The results of ``futures``, once every job queued so far is done."""
        results = await asyncio.gather(*futures, return_exceptions=True)
        await self.loop.run_in_executor(self.executor, int)  # the worker runs jobs in order
        return [r for r in results if isinstance(r, dict)]

    async def flush(self, procs: list[Any] | None, rotated: bool) -> dict[str, Any]:
        """Truncate the files of ``procs`` (None: every app's and corral.log), as the core's
        ``flush`` does; with ``rotated``, delete their rotated files too."""
        apps = self.daemon.processes() if procs is None else procs
        owners = {Path(os.path.abspath(p)): a for a in apps for p in a.log_paths.values() if p}
        paths = sorted(owners)
        accounts = []
        for path in paths:
            with contextlib.suppress(corral.OptionError):  # the user is gone: left as is
                accounts.append((path, self._account(path, owners[path].options)))
        flushed = [str(p) for p, creds in accounts if self.daemon.truncate_log(p, creds)]
        if procs is None:
            paths.append(self.daemon.log_path)
            with contextlib.suppress(FileNotFoundError):
                os.truncate(paths[-1], 0)
                flushed.append(str(paths[-1]))
            accounts.append((paths[-1], None))
        deleted: list[str] = []
        if rotated:  # queued behind pending gzips, which would bring a .gz back
            deleted = await self.loop.run_in_executor(self.executor, _delete_as, accounts)
        return {"flushed": flushed, "deleted": deleted}

    # timers

    def _schedule_cron(self) -> None:
        if self._cron is not None:
            self._cron.cancel()
            self._cron = None
        expr = self.settings.rotate_interval
        if not expr:
            return
        start = datetime.fromtimestamp(max(time.time(), self._cron_due)).astimezone()
        due = croniter(expr, start, second_at_beginning=True).get_next(float)
        self._wake_at(due)

    def _wake_at(self, due: float) -> None:
        # The loop's clock stops while the machine sleeps: look at the wall clock every
        # WALL_CHECK seconds, so a tick missed in a suspend rotates once on waking.
        delay = min(max(due - time.time(), 0), WALL_CHECK)
        self._cron = self.loop.call_later(delay, self._on_cron, due)

    def _on_cron(self, due: float) -> None:
        if time.time() < due:  # not yet (or woken early): never rotate twice in a tick
            self._wake_at(due)
            return
        self._cron_due = due
        try:
            self.rotate_all(None, daemon_log=True)
        except Exception as exc:
            self.daemon.log.error("logrotate interval rotation failed", error=str(exc))
        self._schedule_cron()

    def _schedule_worker(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._worker = self.loop.call_later(self.settings.worker_interval, self._on_worker)

    def _on_worker(self) -> None:
        limit = self.settings.max_size
        if self.settings.rotate_module and limit:
            with contextlib.suppress(OSError):
                if os.stat(self.daemon.log_path).st_size >= limit:
                    self.rotate_daemon_log()
        self._schedule_worker()


# -- hooks -------------------------------------------------------------------

_rotators: list[Rotator] = []  # one per daemon running in this process


def rotator_of(daemon: Any) -> Rotator:
    for rotator in _rotators:
        if rotator.daemon is daemon:
            return rotator
    raise corral.PluginError("logrotate is not running in this daemon (see corral.log)")


def _select(daemon: Any, target: Any) -> list[Any] | None:
    """None for every app and corral.log; else the apps a pm_id, name or namespace names."""
    if target is None or target == "all":
        return None
    if isinstance(target, list):
        chosen = {id(a): a for item in target for a in _select(daemon, item) or []}
        return list(chosen.values())
    procs = daemon.processes()
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        found = [p for p in procs if p.pm_id == int(target)]
    else:
        found = [p for p in procs if p.name == target] or [
            p for p in procs if p.options.get("namespace") == target
        ]
    if not found:
        raise corral.NotFoundError(
            f"no process has the name, pm_id or namespace {target!r}; `corral ls` lists them"
        )
    return found


@corral.hookimpl
def corral_app_options() -> list[Any]:
    return [
        corral.Option(
            "logrotate_max_size",
            "bytes",
            None,
            minimum=0,
            help="rotate this app's logs at this size (default: logrotate max_size; 0 = never)",
        ),
        corral.Option(
            "logrotate_retain",
            "any",
            None,
            help="rotated files kept per log, or 'all' (default: logrotate retain)",
            validate=lambda value: retain_value(value, "logrotate_retain"),
        ),
        corral.Option(
            "logrotate_compress",
            "bool",
            None,
            help="gzip this app's rotated logs (default: logrotate compress)",
        ),
    ]


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    _rotators[:] = [r for r in _rotators if not r.loop.is_closed()]  # daemons that died
    rotator = Rotator(daemon)
    _rotators.append(rotator)
    rotator.start()


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    for rotator in [r for r in _rotators if r.daemon is daemon]:
        _rotators.remove(rotator)
        rotator.stop()


@corral.hookimpl
def corral_log_chunk(app: Any, stream: str, data: bytes) -> None:
    if len(_rotators) == 1:
        _rotators[0].on_chunk(app, stream, data)
        return
    for rotator in _rotators:
        if any(p is app for p in rotator.daemon.processes()):
            rotator.on_chunk(app, stream, data)


def logrotate_show(daemon: Any) -> dict[str, Any]:
    """The settings in effect, the file they are stored in, and the rotations so far."""
    return rotator_of(daemon).show()


def logrotate_set(daemon: Any, key: str, value: Any) -> dict[str, Any]:
    """Change one setting, store it in logrotate.json and apply it now."""
    return rotator_of(daemon).set(key, value)


async def logrotate_rotate(daemon: Any, target: Any = None) -> list[dict[str, Any]]:
    """Rotate every non-empty log of ``target`` now (no target: every app and corral.log);
    returns ``[{rotated, deleted}]`` once compression and retention are done."""
    rotator = rotator_of(daemon)
    procs = _select(daemon, target)
    return await rotator.wait(rotator.rotate_all(procs, daemon_log=procs is None))


async def logrotate_flush(daemon: Any, target: Any = None, all: bool = False) -> dict[str, Any]:
    """Truncate ``target``'s logs (no target: every app's and corral.log), as ``flush``;
    with ``all``, delete their rotated files too."""
    rotator = rotator_of(daemon)
    procs = _select(daemon, target)
    return await rotator.flush(procs, bool(all))


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {
        "logrotate_show": logrotate_show,
        "logrotate_set": logrotate_set,
        "logrotate_rotate": logrotate_rotate,
        "logrotate_flush": logrotate_flush,
    }


# -- the `corral logrotate` commands -------------------------------------------


def _target(value: str | None) -> Any:
    return int(value) if value is not None and value.isdigit() else value


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click

    def client() -> Any:
        # as the core commands do: a test passes its client as the root context's obj
        root = click.get_current_context().find_root()
        if root.obj is None:
            root.obj = corral.connect()
            root.call_on_close(root.obj.disconnect)
        return root.obj

    @click.group("logrotate")
    def logrotate() -> None:
        """Rotate the logs by size and time, keep N, gzip (settings in logrotate.json)."""

    @logrotate.command("show")
    @click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")
    def show(as_json: bool) -> None:
        """Print the settings in effect."""
        reply = client().call("logrotate_show")
        if as_json:
            click.echo(json.dumps(reply, indent=2))
            return
        for key, value in reply["settings"].items():
            origin = "" if key in reply["set"] else "  (default)"
            click.echo(f"{key}: {json.dumps(value)}{origin}")
        click.echo(f"# stored in {reply['file']}; {reply['rotations']} rotations since start")

    @logrotate.command("set")
    @click.argument("key")
    @click.argument("value")
    def set_(key: str, value: str) -> None:
        """Change a setting: max_size, retain, compress, date_format, rotate_interval,
        rotate_module, worker_interval."""
        reply = client().call("logrotate_set", key=key, value=value)
        click.echo(f"{reply['key']}: {json.dumps(reply['settings'][reply['key']])}")

    @logrotate.command("rotate")
    @click.argument("target", required=False)
    def rotate(target: str | None) -> None:
        """Rotate the logs of TARGET (default: every app and corral.log) now."""
        for result in client().call("logrotate_rotate", target=_target(target)):
            click.echo(f"rotated {result['rotated']}")
            for path in result["deleted"]:
                click.echo(f"deleted {path}")

    @logrotate.command("flush")
    @click.argument("target", required=False)
    @click.option("--all", "rotated", is_flag=True, help="Delete the rotated files too.")
    def flush(target: str | None, rotated: bool) -> None:
        """Empty the logs of TARGET (default: every app and corral.log)."""
        reply = client().call("logrotate_flush", target=_target(target), all=rotated)
        for path in reply["flushed"]:
            click.echo(f"flushed {path}")
        for path in reply["deleted"]:
            click.echo(f"deleted {path}")

    group.add_command(logrotate)

"""The rotator: one per daemon, on its loop; it watches the sizes of the log files,
rotates them (rename, then reopen the same path) and runs the cron timer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import croniter

import corral
from corral.api import Account, app_account, as_account, date_formatter

from .files import delete_as, finish, rotated_name
from .settings import SETTINGS_FILE, Settings, parse_setting, read_settings, write_settings

CHECK_EVERY = 64 * 1024  # bytes written between two fstat() of a file
WALL_CHECK = 30.0  # seconds between two looks at the wall clock while waiting for a cron tick


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
            deleted = await self.loop.run_in_executor(self.executor, delete_as, accounts)
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

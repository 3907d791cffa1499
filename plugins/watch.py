"""watch: restart an app when its files change (PM2's ``watch``), on watchdog.

Options (per app):

- ``watch``: ``true`` (or ``[]``) watches the app's ``cwd``; a list watches
  those paths and globs, relative to ``cwd`` (``["src", "config/*.toml"]``).
  In a glob ``*`` and ``?`` stay within one path part and ``**`` spans any
  number of them. Default ``false``.
- ``ignore_watch``: globs never watched. A pattern without ``/`` is matched
  against each part of the path below what is watched (``node_modules``,
  ``*.pyc``), one with ``/`` against the path relative to ``cwd``. Given, it
  replaces the default, as in PM2: ``.*`` (dot files and directories: ``.git``,
  ``.venv``, editor swap files), ``node_modules``, ``__pycache__``, ``*.pyc``.
- ``watch_delay``: milliseconds of quiet after the last change of a burst
  before the restart (default 0; at least 50 ms are always waited, which
  gathers the files one save or one ``git checkout`` writes into one restart).
- ``watch_options``: ``follow_symlinks`` (false), ``use_polling`` (false; for
  network filesystems, where inotify sees nothing) and ``interval`` (ms between
  polls, default 100). PM2's camelCase (``usePolling``) is accepted; chokidar's
  other keys are kept and ignored with a warning in corral.log.

An app's own log and pid files (and rotated copies beside them) and
``CORRAL_HOME`` are never watched, whatever ``ignore_watch`` says, so an app
writing its logs into its ``cwd`` does not restart itself forever.

There is one watcher per app name: a change restarts every instance of the
app once (a graceful restart; cluster apps sharing a socket are reloaded). A
stop or delete through a client stops watching that instance until it is
started again (a start or restart; ``pm2_env.watch`` shows false meanwhile, as
PM2's does); ``corral watch stop NAME`` stops watching an app until
``corral watch start NAME`` (or ``corral restart NAME --watch``), which also
turns watching on for an app started without ``watch``. Watching is armed
before the ``start``/``restart`` that asked for it returns: a file written
right after the reply restarts the app.

RPC: ``watch_toggle(name, on)`` and ``watch_status()``; CLI: ``corral watch``
(a status table), ``corral watch start NAME``, ``corral watch stop NAME``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import fnmatch
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

import corral
from corral.api import parse_ms

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

DEFAULT_IGNORE = (".*", "node_modules", "__pycache__", "*.pyc")
MIN_QUIET_MS = 50  # the floor of the debounce: one save writes several files within it
MAX_BURST_MS = 10_000  # a change that never settles still restarts after this (or 10 quiets)
DEFAULT_INTERVAL_MS = 100  # chokidar's polling interval
STOP_JOIN_S = 1.0
# chokidar's event words are add/change/unlink; watchdog also reports opens and closes
CHANGES = frozenset({"created", "modified", "deleted", "moved"})

_OPTION_KEYS = {
    "follow_symlinks": "follow_symlinks",
    "followSymlinks": "follow_symlinks",
    "use_polling": "use_polling",
    "usePolling": "use_polling",
    "interval": "interval",
}
# chokidar options PM2 passes through: accepted so ecosystem files load, and ignored
CHOKIDAR_KEYS = frozenset(
    "persistent ignored ignoreInitial cwd disableGlobbing binaryInterval alwaysStat depth"
    " awaitWriteFinish ignorePermissionErrors atomic".split()
)
STATE_KEY = "watch.watcher"  # where each daemon keeps its Watcher (DaemonAPI.state)


# -- options -------------------------------------------------------------------


def normalize_watch_options(value: Any) -> dict[str, Any]:
    """``watch_options`` with snake_case keys and checked values; raises OptionError."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)  # `--watch-options '{"usePolling": true}'`
    if not isinstance(value, Mapping):
        raise corral.OptionError(
            f"watch_options must be a mapping such as {{use_polling: true}}, got {value!r}",
            field="watch_options",
        )
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = _OPTION_KEYS.get(key)
        if name is None and key in CHOKIDAR_KEYS:
            result[key] = item
        elif name is None:
            raise corral.OptionError(_unknown_key(key), field="watch_options")
        elif name == "interval":
            result[name] = parse_ms(item, "watch_options.interval")
            if result[name] < 10:
                raise corral.OptionError(
                    f"watch_options.interval must be at least 10 ms, got {item!r}",
                    field="watch_options",
                )
        else:
            result[name] = _boolean(item, f"watch_options.{name}")
    return result


def _unknown_key(key: Any) -> str:
    known = ["follow_symlinks", "use_polling", "interval"]
    close = difflib.get_close_matches(str(key), list(_OPTION_KEYS), n=1, cutoff=0.6)
    hint = f"did you mean {_OPTION_KEYS[close[0]]!r}? " if close else ""
    return f"watch_options: unknown key {key!r}: {hint}(known: {', '.join(known)})"


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise corral.OptionError(f"{name} must be true or false, got {value!r}", field="watch_options")


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "watch",
            "bool_or_list",
            False,
            help="restart on file changes: true watches the app's cwd, or give paths and "
            "globs relative to it",
        ),
        corral.Option(
            "ignore_watch",
            "list",
            DEFAULT_IGNORE,
            help="globs never watched; replaces the default (.* node_modules __pycache__ *.pyc)",
        ),
        corral.Option(
            "watch_delay", "ms", 0, help="quiet time after the last change before the restart"
        ),
        corral.Option(
            "watch_options",
            "any",
            help="watcher settings: follow_symlinks, use_polling (network filesystems),"
            " interval (ms)",
            validate=normalize_watch_options,
        ),
    ]


def watching(options: Mapping[str, Any]) -> bool:
    """Whether ``watch`` asks for watching: ``true`` or a list (``[]`` too, as in PM2)."""
    return options.get("watch") not in (None, False)


# -- what is watched -------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over whole paths: ``*``/``?`` within a part, ``**`` across parts."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _matches(regex: re.Pattern[str], path: str, stop: str) -> bool:
    """Whether ``path`` or one of its directories down to ``stop`` matches: a matching
    directory brings everything in it."""
    while True:
        if regex.fullmatch(path):
            return True
        if path == stop or path in ("/", ""):
            return False
        path = os.path.dirname(path)


@dataclass(frozen=True)
class Entry:
    """One watched path or glob, absolute."""

    pattern: str
    base: str  # the part before the first glob character: where events come from
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, pattern: str) -> Entry:
        if not _is_glob(pattern):
            return cls(pattern, pattern)
        parts = pattern.split("/")
        plain = next(i for i, part in enumerate(parts) if _is_glob(part))
        return cls(pattern, "/".join(parts[:plain]) or "/", glob_regex(pattern))

    def below(self, path: str) -> str | None:
        """The part of ``path`` below this entry ("" for the entry itself), or None."""
        if self.regex is None:
            if not _under(path, self.pattern):
                return None
            return os.path.relpath(path, self.pattern) if path != self.pattern else ""
        if not _under(path, self.base):
            return None
        return os.path.relpath(path, self.base) if _matches(self.regex, path, self.base) else None

    def schedule(self) -> tuple[str, bool]:
        """(directory, recursive) to observe: the nearest existing one."""
        if self.regex is None and os.path.isfile(self.pattern):
            return os.path.dirname(self.pattern), False
        directory = self.base
        while not os.path.isdir(directory) and directory != "/":
            directory = os.path.dirname(directory)
        return directory, True


@dataclass(frozen=True)
class WatchSettings:
    """What one app name watches, ignores, and how: the watcher is rebuilt when it changes."""

    cwd: str
    entries: tuple[Entry, ...]
    ignore: tuple[str, ...]
    quiet_ms: int
    skip_files: frozenset[str]  # the app's log and pid files
    skip_dirs: tuple[str, ...]  # CORRAL_HOME
    follow_symlinks: bool = False
    use_polling: bool = False
    interval_ms: int = DEFAULT_INTERVAL_MS
    unused: tuple[str, ...] = ()  # chokidar keys given in watch_options
    _ignore_full: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        patterns = [p.removeprefix("./").rstrip("/") for p in self.ignore]
        object.__setattr__(self, "ignore", tuple(p for p in patterns if p))
        full = tuple(glob_regex(p.lstrip("/")) for p in self.ignore if "/" in p)
        object.__setattr__(self, "_ignore_full", full)

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.cwd) if _under(path, self.cwd) else path

    def accepts(self, path: str) -> bool:
        """Whether a change of ``path`` (absolute) restarts the app."""
        if path in self.skip_files or self._rotated_log(path):
            return False
        if any(_under(path, d) for d in self.skip_dirs):
            return False
        for entry in self.entries:
            below = entry.below(path)
            if below is not None and not self._ignored(below, path):
                return True
        return False

    def _ignored(self, below: str, path: str) -> bool:
        parts = [part for part in below.split("/") if part and part != "."]
        for pattern in self.ignore:
            if "/" not in pattern and any(fnmatch.fnmatchcase(p, pattern) for p in parts):
                return True
        relative = self.relative(path).lstrip("/")
        return any(_matches(regex, relative, "") for regex in self._ignore_full)

    def _rotated_log(self, path: str) -> bool:
        """``web-out__2024-01-01.log``, ``web-out.log.1``: rotated copies of a log file."""
        directory, name = os.path.split(path)
        for log in self.skip_files:
            log_dir, log_name = os.path.split(log)
            stem = log_name.removesuffix(".log")
            if directory == log_dir and name.startswith(stem) and ".log" in name[len(stem) :]:
                return True
        return False

    def directories(self) -> list[tuple[str, bool]]:
        """The directories to observe, none inside another one observed recursively."""
        wanted: dict[str, bool] = {}
        for entry in self.entries:
            directory, recursive = entry.schedule()
            wanted[directory] = wanted.get(directory, False) or recursive
        return [
            (d, rec)
            for d, rec in sorted(wanted.items())
            if not any(r and other != d and _under(d, other) for other, r in wanted.items())
        ]


def settings_for(procs: list[Any], home: str, *, forced: bool = False) -> WatchSettings:
    """The settings of an app from its instances (the lowest pm_id's options)."""
    options = procs[0].options
    cwd = os.path.realpath(options.get("cwd") or os.getcwd())
    watch = options.get("watch")
    paths = watch if isinstance(watch, list) and watch else [""]
    if forced and not watching(options):
        paths = [""]
    entries = tuple(
        Entry.parse(os.path.realpath(os.path.join(cwd, os.path.expanduser(p)))) for p in paths
    )
    skip: set[str] = set()
    for proc in procs:
        files = [*proc.log_paths.values(), proc.pid_path]
        skip.update(os.path.realpath(path) for path in files if path)
    extra = normalize_watch_options(options.get("watch_options") or {})
    ignore = options.get("ignore_watch")
    return WatchSettings(
        cwd=cwd,
        entries=entries,
        ignore=tuple(DEFAULT_IGNORE if ignore is None else ignore),
        quiet_ms=max(int(options.get("watch_delay") or 0), MIN_QUIET_MS),
        skip_files=frozenset(skip),
        skip_dirs=(os.path.realpath(home),),
        follow_symlinks=bool(extra.get("follow_symlinks", False)),
        use_polling=bool(extra.get("use_polling", False)),
        interval_ms=int(extra.get("interval", DEFAULT_INTERVAL_MS)),
        unused=tuple(sorted(k for k in extra if k in CHOKIDAR_KEYS)),
    )


# -- the observer ----------------------------------------------------------------


class Changes(FileSystemEventHandler):
    """Runs on the observer's thread: filters events and hands accepted ones to the loop."""

    def __init__(self, settings: WatchSettings, loop: asyncio.AbstractEventLoop, app: AppWatch):
        super().__init__()
        self.settings = settings
        self.loop = loop
        self.app = app
        self.seen = 0  # events of a changing kind
        self.ignored = 0
        self.directories: list[str] = []  # what the observer was given

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's own mtime: its files' events tell more
        self.seen += 1
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for path in (os.fsdecode(p) for p in paths if p):
            if self.settings.accepts(path):
                with contextlib.suppress(RuntimeError):  # the loop closed
                    self.loop.call_soon_threadsafe(
                        self.app.changed, self, self.settings.relative(path)
                    )
                return
        self.ignored += 1


def start_observer(settings: WatchSettings, handler: Changes) -> Any:
    """A started observer for ``settings`` (blocks while inotify walks the tree)."""
    if settings.use_polling:
        observer: Any = PollingObserver(timeout=settings.interval_ms / 1000)
    else:
        observer = Observer()
    extra = {"follow_symlink": True} if settings.follow_symlinks else {}
    try:
        for directory, recursive in settings.directories():
            observer.schedule(handler, directory, recursive=recursive, **extra)
            handler.directories.append(directory)
    except TypeError as exc:
        raise corral.PluginError(
            f"watch_options.follow_symlinks needs watchdog >= 7 ({exc})"
        ) from None
    observer.start()
    return observer


def stop_observer(observer: Any, timeout: float = STOP_JOIN_S) -> None:
    observer.stop()
    observer.join(timeout)


# -- one app name ----------------------------------------------------------------


@dataclass(eq=False)
class AppWatch:
    """The watcher of one app name, used on the daemon's loop only."""

    name: str
    owner: Watcher
    ids: set[int] = field(default_factory=set)  # the instances a change restarts
    off: bool = False  # `corral watch stop NAME`
    forced: bool = False  # `corral watch start NAME` on an app without `watch`
    settings: WatchSettings | None = None  # of the running observer
    failed: WatchSettings | None = None  # settings whose observer failed to start
    error: str = ""  # why it is not watching, when it should
    observer: Any = None
    handler: Changes | None = None
    task: asyncio.Task | None = None
    timer: asyncio.TimerHandle | None = None
    burst: list[str] = field(default_factory=list)  # changed paths since the last restart
    burst_started: float = 0.0
    restarting: bool = False
    pending: bool = False  # a change came during the restart: another one follows
    restarts: int = 0
    last_reason: str = ""

    def changed(self, handler: Changes, path: str) -> None:
        """A change of ``path`` (relative to cwd): restart after the quiet time."""
        if handler is not self.handler or not self.ids or self.settings is None:
            return
        if path not in self.burst:
            self.burst.append(path)
        if self.restarting:
            self.pending = True
            return
        self._arm()

    def _arm(self) -> None:
        assert self.settings is not None
        loop = self.owner.loop
        now = loop.time()
        if self.timer is None:
            self.burst_started = now
        else:
            self.timer.cancel()
        quiet = self.settings.quiet_ms / 1000
        limit = max(MAX_BURST_MS / 1000, 10 * quiet)
        delay = min(quiet, max(0.0, self.burst_started + limit - now))
        self.timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        first, more = self.burst[0], len(self.burst) - 1
        self.burst = []
        reason = f"file changed: {first}" + (f" (and {more} more)" if more else "")
        self.restarting = True
        self.owner.loop.create_task(self._restart(reason))

    async def _restart(self, reason: str) -> None:
        daemon = self.owner.daemon
        procs = [p for p in daemon.processes() if p.pm_id in self.ids]
        try:
            results = await asyncio.gather(
                *(daemon.restart_process(p, reason=reason) for p in procs), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    daemon.log.error("watch restart failed", name=self.name, error=str(result))
        finally:
            self.restarting = False
            self.restarts += 1
            self.last_reason = reason
        if self.pending and self.burst and self.settings is not None:
            self._arm()
        self.pending = False
        self.owner._forget_if_gone(self)  # deleted while it restarted

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.burst = []
        self.pending = False

    def status(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "name": self.name,
            "watching": self.observer is not None,
            "off": self.off,
            "pm_ids": sorted(self.ids),
            "paths": list(self.handler.directories) if self.handler else [],
            "ignore": list(settings.ignore) if settings else [],
            "quiet_ms": settings.quiet_ms if settings else None,
            "polling": settings.use_polling if settings else False,
            "restarts": self.restarts,
            "last_reason": self.last_reason,
            "events_seen": self.handler.seen if self.handler else 0,
            "events_ignored": self.handler.ignored if self.handler else 0,
            "error": self.error,
        }


# -- the daemon's watchers -------------------------------------------------------


class Watcher:
    """Every app's watcher in one daemon; hooks and RPC land here, on the loop.

    Each daemon has its own (:func:`watcher`): it watches nothing before
    ``running`` is set at the daemon's start, nor after :meth:`close`.
    """

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.loop: asyncio.AbstractEventLoop = daemon.loop
        self.apps: dict[str, AppWatch] = {}
        self.running = False
        self.closed = False

    def app(self, name: str) -> AppWatch:
        if name not in self.apps:
            self.apps[name] = AppWatch(name, self)
        return self.apps[name]

    def instances(self, name: str) -> list[Any]:
        return [p for p in self.daemon.processes() if p.name == name]

    def on_event(self, event: Any) -> None:
        if not self.running:
            return
        word, name, pm_id = event.event, event.name, event.pm_id
        if word in ("start", "restart", "online", "reload"):
            app = self.app(name)
            proc = next((p for p in self.instances(name) if p.pm_id == pm_id), None)
            if proc is not None and (watching(proc.options) or app.forced):
                app.ids.add(pm_id)
            else:
                app.ids.discard(pm_id)  # restarted with `watch` turned off
        elif word in ("stop", "delete") and event.manually and name in self.apps:
            app = self.apps[name]
            app.ids.discard(pm_id)
            if word == "delete" and not [p for p in self.instances(name) if p.pm_id != pm_id]:
                app.off = app.forced = False  # the app is gone: so are its toggles
        else:
            return
        app = self.apps[name]
        self.reconcile(app)
        self.show(app)
        if app.ids and not app.off and app.task:
            # the reply of the command that got here waits until what it watches is armed
            # (an app that watches nothing adds no wait)
            self.daemon.hold_reply(app.task)  # waited for, never cancelled

    def show(self, app: AppWatch) -> None:
        """``pm2_env.watch`` of each instance: what is watched now, as PM2 shows it (false
        once a user stopped it; true while `corral watch start` watches it regardless)."""
        for proc in self.instances(app.name):
            watched = not app.off and proc.pm_id in app.ids
            asked = watching(proc.options)
            proc.watch_shown = None if watched == asked else watched

    async def toggle(self, name: str, on: bool) -> list[dict[str, Any]]:
        """Turn watching of ``name`` (or every app) on or off; returns once it is done."""
        names = sorted({p.name for p in self.daemon.processes()}) if name == "all" else [name]
        for each in names:
            procs = self.instances(each)
            if not procs:
                known = ", ".join(sorted({p.name for p in self.daemon.processes()})) or "none"
                raise corral.NotFoundError(
                    f"no app named {each!r} (names: {known}); `corral ls` lists them"
                )
            app = self.app(each)
            app.off = not on
            if on:
                app.forced = not any(watching(p.options) for p in procs)
                app.ids = {p.pm_id for p in procs if p.state.value != "stopped"}
            self.reconcile(app)
            self.show(app)
        tasks = [task for each in names if (task := self.apps[each].task) is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        return [self.apps[each].status() for each in names]

    def wanted(self, app: AppWatch) -> WatchSettings | None:
        if app.off or not app.ids or self.closed:
            return None
        procs = [p for p in self.instances(app.name) if p.pm_id in app.ids]
        if not procs:
            return None
        return settings_for(procs, str(self.daemon.home), forced=app.forced)

    def reconcile(self, app: AppWatch) -> None:
        """Bring the app's observer in line with what it should watch, off the loop."""
        if app.task is None or app.task.done():
            app.task = self.loop.create_task(self._reconcile(app))

    async def _reconcile(self, app: AppWatch) -> None:
        try:
            await self._bring_in_line(app)
        finally:
            self._forget_if_gone(app)

    def _forget_if_gone(self, app: AppWatch) -> None:
        """Drop the state of an app name no process has any more (deleted, scaled to 0)."""
        if (
            app.observer is None
            and not app.restarting
            and self.apps.get(app.name) is app
            and not self.instances(app.name)
        ):
            app.cancel_timer()
            del self.apps[app.name]

    async def _bring_in_line(self, app: AppWatch) -> None:
        while True:
            try:
                wanted = self.wanted(app)
            except corral.CorralError as exc:
                self._failed(app, str(exc))
                wanted = None
            if wanted == app.settings or (wanted is not None and wanted == app.failed):
                return
            if app.observer is not None:
                observer, app.observer, app.handler, app.settings = app.observer, None, None, None
                app.cancel_timer()
                await self.loop.run_in_executor(None, stop_observer, observer)
                continue
            handler = Changes(wanted, self.loop, app)
            try:
                observer = await self.loop.run_in_executor(None, start_observer, wanted, handler)
            except Exception as exc:
                app.failed = wanted
                self._failed(app, f"cannot watch {wanted.cwd}: {type(exc).__name__}: {exc}")
                return
            if self.closed:
                await self.loop.run_in_executor(None, stop_observer, observer)
                return
            app.observer, app.handler, app.settings, app.failed = observer, handler, wanted, None
            app.error = ""
            self.daemon.log.info(
                "watching", name=app.name, paths=handler.directories, polling=wanted.use_polling
            )
            if wanted.unused:
                self.daemon.log.warning(
                    "watch_options keys ignored (chokidar's, unused by corral)",
                    name=app.name,
                    keys=list(wanted.unused),
                )

    def _failed(self, app: AppWatch, message: str) -> None:
        """Log and emit ``watch error`` once per distinct reason."""
        if message == app.error:
            return
        app.error = message
        self.daemon.log.error("watch failed", name=app.name, error=message)
        for proc in self.instances(app.name):
            if proc.pm_id in app.ids:
                self.daemon.emit(proc, "watch error", reason=message)

    def status(self) -> list[dict[str, Any]]:
        return [self.apps[name].status() for name in sorted(self.apps)]

    def close(self) -> None:
        """Stop every observer; returns within about STOP_JOIN_S."""
        self.running, self.closed = False, True
        observers = []
        for app in self.apps.values():
            app.cancel_timer()
            if app.observer is not None:
                observers.append(app.observer)
                app.observer = app.handler = app.settings = None
        for observer in observers:
            observer.stop()
        deadline = time.monotonic() + STOP_JOIN_S
        for observer in observers:
            observer.join(max(0.0, deadline - time.monotonic()))


# -- hooks -----------------------------------------------------------------------


def watcher(daemon: Any) -> Watcher:
    """The :class:`Watcher` of ``daemon`` (a ``corral.api.DaemonAPI``), made on first use:
    two daemons in one process each watch their own apps."""
    return daemon.state(STATE_KEY, lambda: Watcher(daemon))


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    if watcher(daemon).closed:  # the same daemon started again: fresh watchers
        daemon.forget_state(STATE_KEY)
    watcher(daemon).running = True


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    watcher(daemon).close()  # kept, closed: a late event watches nothing


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    watcher(daemon).on_event(event)


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"watch_toggle": watch_toggle, "watch_status": watch_status}


def _running(daemon: Any) -> Watcher:
    running = watcher(daemon)
    if not running.running:
        raise corral.PluginError("the watch plugin is not running in this daemon")
    return running


async def watch_toggle(daemon: Any, name: str, on: bool = True) -> list[dict[str, Any]]:
    """Start or stop watching the app ``name`` (or ``"all"``); returns their status."""
    if not isinstance(name, str) or not name:
        raise corral.OptionError(f"name must be an app name or 'all', got {name!r}", field="name")
    return await _running(daemon).toggle(name, bool(on))


def watch_status(daemon: Any) -> list[dict[str, Any]]:
    """Per app name: watching, paths, ignore, delay, restarts, events seen and ignored."""
    return _running(daemon).status()


# -- the `corral watch` command --------------------------------------------------


def _client(ctx: Any) -> Any:
    """The client of this invocation: the root context's ``obj`` (tests), else a new one."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = corral.connect()
        root.call_on_close(root.obj.disconnect)
    return root.obj


def status_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        state = "off" if row["off"] else "watching" if row["watching"] else "idle"
        paths = ", ".join(row["paths"]) or "-"
        lines.append(f"{row['name']}: {state} {paths} (restarts: {row['restarts']})")
    return lines or ["no app is watched"]


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click  # deferred: click loads in the CLI only, never in the daemon

    @click.group("watch", invoke_without_command=True)
    @click.pass_context
    def watch_group(ctx: click.Context) -> None:
        """Watch apps' files: `corral watch` lists, start/stop NAME toggles."""
        if ctx.invoked_subcommand is None:
            click.echo("\n".join(status_lines(_client(ctx).call("watch_status"))))

    def toggle(on: bool) -> click.Command:
        help_text = (
            "Watch NAME's files again (its cwd if it has no `watch` option)."
            if on
            else "Stop watching NAME's files until `corral watch start NAME`."
        )

        @click.command("start" if on else "stop", help=help_text)
        @click.argument("name")
        @click.pass_context
        def command(ctx: click.Context, name: str) -> None:
            rows = _client(ctx).call("watch_toggle", name=name, on=on)
            click.echo("\n".join(status_lines(rows)))

        return command

    watch_group.add_command(toggle(True))
    watch_group.add_command(toggle(False))
    group.add_command(watch_group)

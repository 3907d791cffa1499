"""What a watch watches and ignores: globs, watched entries and an app's WatchSettings."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .options import CHOKIDAR_KEYS, DEFAULT_IGNORE, normalize_watch_options, watching

MIN_QUIET_MS = 50  # the floor of the debounce: one save writes several files within it
DEFAULT_INTERVAL_MS = 100  # chokidar's polling interval


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

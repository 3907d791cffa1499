"""Rotated files: their names, their order, gzip and retention. Pure functions, safe
in any thread (the rotator runs them off the loop, with the app's account)."""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from corral.api import Account, as_account

GZIP_LEVEL = 6
_DIGITS = re.compile(r"(\d+)")


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


def delete_as(accounts: list[tuple[Path, Account | None]]) -> list[str]:
    """:func:`delete_rotated` of each path with the rights of its account."""
    deleted: list[str] = []
    for path, creds in accounts:
        with contextlib.suppress(OSError):  # a directory that account cannot list: nothing
            deleted.extend(as_account(creds, lambda p=path: delete_rotated([p])) or [])
    return deleted

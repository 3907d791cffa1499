"""The apps' pid files: written only into files the daemon created itself.

PM2 writes ``pid_file`` wherever the options say, over whatever is there, and
deletes it when the app stops: ``pid_file: /etc/passwd`` in a cloned project's
config, started by a root daemon, destroys the file. corral:

- files in ``$CORRAL_HOME/pids`` (the default) are the daemon's own: written
  there through a descriptor of that directory, never through a symbolic link;
- any other ``pid_file`` is created by the daemon with the app's rights
  (``O_CREAT|O_EXCL|O_NOFOLLOW``, :mod:`corral.supervisor.asuser`), and its identity
  recorded: device, inode and the ctime of the daemon's last write (an inode
  number freed by an unlink is handed to the next file made, at once). A path
  that already holds a regular file or a symbolic link the daemon did not
  create is refused when the app is created
  (:meth:`PidFiles.claim`, an OptionError naming ``pid_file``); something else
  there (a fifo, a device) is never written nor removed;
- a pid file is rewritten in place (no rename: ~0.5 ms saved per restart) only
  while the path still holds the inode recorded, and removed only then.

The records outlive a daemon killed by SIGKILL in the state file, so the next
daemon takes back the pid files of the apps it recovers (:meth:`PidFiles.adopt`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from corral.errors import OptionError
from corral.supervisor import asuser
from corral.supervisor.credentials import Credentials

_REWRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY
_MODE = 0o644


class PidFiles:
    """The pid files of one daemon: ``own_dir`` (``pids/`` and a descriptor of it) and
    the files it created elsewhere, path -> (st_dev, st_ino, st_ctime_ns) after its last write."""

    def __init__(self, own_dir: tuple[Path, int] | None = None) -> None:
        self.own_dir = own_dir
        self.created: dict[Path, tuple[int, ...]] = {}

    def _own(self, path: Path) -> int | None:
        """The descriptor of ``pids/`` when ``path`` is in it."""
        if self.own_dir is not None and path.parent == self.own_dir[0]:
            return self.own_dir[1]
        return None

    def claim(self, path: Path, creds: Credentials | None = None) -> None:
        """Refuse (OptionError) a ``pid_file`` that holds a file the daemon did not create,
        or that the app's account (``creds``) could not create."""
        if self._own(path) is not None or str(path) == os.devnull:
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if asuser.needed(creds) and not asuser.can_create(creds, str(path)):
                assert creds is not None
                raise OptionError(
                    f"pid_file {str(path)!r} cannot be created by user {creds.user}, whom the "
                    "app runs as: name a file in a directory that user can write",
                    field="pid_file",
                ) from None
            return
        except OSError:
            return  # not reachable as the daemon: creating it as the app says why, then
        if stat.S_ISLNK(st.st_mode):
            raise OptionError(
                f"pid_file {str(path)!r} is a symbolic link: corral never writes through one; "
                "name the file itself",
                field="pid_file",
            )
        if stat.S_ISREG(st.st_mode) and not _matches(self.created.get(path), st):
            raise OptionError(
                f"pid_file {str(path)!r} exists and corral did not create it: corral never "
                "overwrites or deletes such a file; remove it, or name a file that does not exist",
                field="pid_file",
            )

    def adopt(self, path: Path, ident: tuple[int, ...]) -> None:
        """Take back a pid file a previous daemon created (from its state file). Only its
        device and inode count: the daemon may have died between a write and the state
        file that would have recorded its new change time."""
        self.created[path] = tuple(ident[:2])

    def identity(self, path: Path | None) -> list[int] | None:
        """What the state file records for ``path`` (None for ``pids/`` and others)."""
        ident = self.created.get(path) if path is not None else None
        return list(ident) if ident is not None else None

    def write(self, path: Path, pid: int, creds: Credentials | None) -> None:
        """Write ``pid`` into ``path``; OSError if it cannot be (nothing else is touched)."""
        dir_fd = self._own(path)
        if dir_fd is not None:
            fd: int | None = os.open(path.name, _REWRITE | os.O_CREAT, _MODE, dir_fd=dir_fd)
        else:
            fd = self._open(path, creds)
        if fd is None:
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return  # a fifo or a device: never written
            data = str(pid).encode()
            os.pwrite(fd, data, 0)  # then cut: a reader never sees an empty file
            os.ftruncate(fd, len(data))
            if dir_fd is None:
                self.created[path] = _ident(os.fstat(fd))
        finally:
            os.close(fd)

    def _open(self, path: Path, creds: Credentials | None) -> int | None:
        """The file recorded at ``path``, or a new one created as the app; None for a fifo
        or a device there; FileExistsError when a file corral did not create is there."""
        if str(path) == os.devnull:
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.created.pop(path, None)
            return asuser.open_as(creds, str(path), _CREATE, _MODE, parents=True)
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            return None
        ident = self.created.get(path)
        if not _matches(ident, st):
            raise FileExistsError(f"{path} holds a file corral did not create: pid not written")
        fd = os.open(path, _REWRITE)  # no O_CREAT, no O_TRUNC: opening changes nothing
        if not _matches(ident, os.fstat(fd)):  # swapped between the two looks
            os.close(fd)
            raise FileExistsError(f"{path} was replaced: pid not written")
        return fd

    def remove(self, path: Path) -> None:
        """Delete the pid file at ``path`` if it is still the one the daemon wrote."""
        dir_fd = self._own(path)
        with contextlib.suppress(OSError):
            if dir_fd is not None:
                if stat.S_ISREG(os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    os.unlink(path.name, dir_fd=dir_fd)
                return
            ident = self.created.pop(path, None)
            if not ident:
                return
            # stat and unlink through one descriptor of the directory: a directory on the
            # way swapped for a link between the two cannot turn the unlink elsewhere
            parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
                if _matches(ident, st):
                    os.unlink(path.name, dir_fd=parent)
            finally:
                os.close(parent)


def _matches(record: tuple[int, ...] | None, st: os.stat_result) -> bool:
    """Whether ``st`` is the file ``record`` names (all of it, or an adopted prefix)."""
    return bool(record) and record == _ident(st)[: len(record or ())]


def _ident(st: os.stat_result) -> tuple[int, ...]:
    """What tells the file the daemon wrote from any other: a regular file of that
    device, inode and change time (the daemon's write was its last change)."""
    if not stat.S_ISREG(st.st_mode):
        return ()
    return (st.st_dev, st.st_ino, st.st_ctime_ns)

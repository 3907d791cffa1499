"""Making a command's processes: all of them or none, each log file opened before it is registered.

``start``, ``scale``, ``resurrect`` and a config file's reconcile (corral.daemon.commands.reconcile)
register processes here and launch them; a log file that cannot be opened names its
option and leaves nothing half-made.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import os
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from corral.daemon.apps import PreparedApp, prepare_app
from corral.daemon.pacing import Pacer
from corral.errors import OptionError, StateError, shorten
from corral.supervisor import asuser, credentials, lifecycle
from corral.supervisor.logs import log_paths, own_log_paths, pid_path
from corral.supervisor.process import now_ms

if TYPE_CHECKING:
    from corral.daemon.commands import Commands
    from corral.supervisor.process import Child, ManagedProcess

# spawns a start asks of the spawner before it finishes the first of them: the spawner
# always has the next one while the daemon makes the one after (each holds its pipes)
SPAWNS_AHEAD = 4


def prepare(
    cmds: Commands,
    raw: dict[str, Any],
    cwd: str,
    env: dict[str, str],
    env_name: str | None,
    *,
    check_fds: bool = True,
) -> PreparedApp:
    app = prepare_app(cmds.daemon.schema, raw, cwd, env, env_name, check_fds=check_fds)
    cmds.daemon.manager.validate_app(app.options, app.interpreter)
    return app


def check_logs_for(cmds: Commands, proc: ManagedProcess, options: dict[str, Any]) -> None:
    """OptionError if ``options`` run ``proc`` as an account that could not open the
    log files it holds (opened once, at creation, as the account of that time)."""
    creds = credentials.resolve(options)
    if not asuser.needed(creds) or creds == cmds.daemon.credentials(proc):
        return
    own = own_log_paths(cmds.daemon.home, proc.name, proc.pm_id, proc.options)
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    for stream, path in proc.log_paths.items():
        if path is None or path in own:
            continue
        try:
            os.close(asuser.open_as(creds, str(path), flags))
        except OSError as exc:
            field = _LOG_OPTIONS[stream]
            raise OptionError(_cannot_open(field, path, exc, creds), field=field) from None


def create(
    cmds: Commands, app: PreparedApp, instance: int, pm_id: int | None = None, soon: bool = False
) -> ManagedProcess:
    """Register a process of ``app``; OptionError (and nothing registered) if a log
    file cannot be opened. ``soon``: its own log files are made on a thread, and its
    launch waits for them (:func:`logs_made`)."""
    pm_id = cmds.next_id() if pm_id is None else pm_id
    where = pid_path(cmds.daemon.home, app.name, pm_id, app.options)
    cmds.daemon.pid_files.claim(where, credentials.resolve(app.options))
    with _logs_open(cmds, app, pm_id, soon):
        return cmds.daemon.new_process(
            pm_id=pm_id,
            name=app.name,
            options=dict(app.options),
            env=dict(app.env),
            script=app.script,
            interpreter=app.interpreter,
            is_command=app.is_command,
            instance=instance,
        )


@contextlib.contextmanager
def _logs_open(cmds: Commands, app: PreparedApp, pm_id: int, soon: bool) -> Iterator[None]:
    """Hold the log files of ``app``'s process ``pm_id`` open while the block runs.

    Opened before the process is registered, so a file that cannot be opened
    names its option and leaves nothing half-made.
    """
    logs = cmds.daemon.logs
    held = []
    creds = credentials.resolve(app.options)  # opened as the app's account (asuser.py)
    own = own_log_paths(cmds.daemon.home, app.name, pm_id, app.options)
    try:
        for stream, path in log_paths(cmds.daemon.home, app.name, pm_id, app.options).items():
            if path is None:
                continue
            try:
                held.append(logs.acquire(path, creds, own=path in own, soon=soon))
            except OSError as exc:
                field = _LOG_OPTIONS[stream]
                raise OptionError(_cannot_open(field, path, exc, creds), field=field) from None
        yield
    finally:
        for log in held:
            logs.release(log)


async def logs_made(cmds: Commands, proc: ManagedProcess) -> None:
    """Wait for the log files :func:`create` had made on a thread (``soon``); OptionError
    naming the option of one that could not be made."""
    try:
        await cmds.daemon.logs.maker.made(f.path for f in proc.log_files)
    except OSError as exc:
        streams = [k for k, p in proc.log_paths.items() if p is not None and str(p) == exc.filename]
        field = _LOG_OPTIONS[streams[0] if streams else "out"]
        raise OptionError(_cannot_open(field, exc.filename, exc, None), field=field) from None


async def undo(cmds: Commands, procs: list[ManagedProcess]) -> None:
    """Remove processes a failed command created (stopping those it started)."""
    for proc in procs:
        await proc.slot.stop_process()
        cmds.daemon.forget(proc)


def launch(proc: ManagedProcess, *, is_restart: bool = False) -> None:
    """Spawn a registered process; a failed exec removes a process that never ran."""
    if not is_restart:
        proc.history = lifecycle.on_start(proc.history, now_ms())
    proc.slot.spawn(is_restart=is_restart)


def held(cmds: Commands, proc: ManagedProcess) -> bool:
    """Whether a plugin holds ``proc``'s first launch back (``corral_hold_launch``: the
    depends plugin, until its dependencies are met); then it stays stopped, the
    reason said, until the plugin starts it."""
    reason = cmds.daemon.manager.call("corral_hold_launch", daemon=cmds.daemon.api, app=proc)
    if not isinstance(reason, str) or not reason:
        return False
    proc.last_reason = proc.held_by = reason
    cmds.daemon.log.info("held", name=proc.name, pm_id=proc.pm_id, reason=reason)
    return True


def launch_soon(proc: ManagedProcess) -> Child | Callable[[], Child]:
    """:func:`launch`, begun: the child, or what finishes its spawn (Slot.spawn_soon)."""
    proc.history = lifecycle.on_start(proc.history, now_ms())
    return proc.slot.spawn_soon(is_restart=False)


async def create_all(cmds: Commands, apps: list[PreparedApp]) -> list[ManagedProcess]:
    """Register every instance of ``apps``, none launched: all of them, or none.

    Other calls are answered between two registrations (:mod:`corral.daemon.pacing`:
    1,000 of them held the loop for a second). Each process is locked as it is
    registered, until :func:`launch_all` launches it (``locked=True``) or
    :func:`release_all` lets it go, so a stop sent meanwhile waits for its launch as
    before. The batch's names are reserved meanwhile: another start of one of them
    is refused (StateError), not made twice."""
    busy = _creating.setdefault(cmds.daemon, set())
    names = {app.name for app in apps if app.count}
    taken = sorted(names & busy)
    if taken:
        raise StateError(
            f"app {shorten(taken[0])} is being made by another start: "
            "start it again once that start has answered"
        )
    created: list[ManagedProcess] = []
    locks: list[asyncio.Lock] = []
    pending = cmds.daemon.state_file.pending  # launched next (launch_all), saved as such
    pacer = Pacer()
    busy.update(names)
    try:
        for app in apps:
            for i in range(app.count):
                proc = create(cmds, app, i, soon=True)  # launch_all waits for its files
                created.append(proc)
                locks.append(cmds.daemon.lock(proc))
                await locks[-1].acquire()  # a new process's: free, taken without a turn
                if app.options.get("autostart", True):
                    pending.add(proc.pm_id)
                await pacer.turn()
    except Exception:
        pending.difference_update(p.pm_id for p in created)
        await undo(cmds, created)  # forgets them, and their locks: released below
        for lock in locks:
            lock.release()
        raise
    finally:
        busy.difference_update(names)
    return created


def release_all(cmds: Commands, created: list[ManagedProcess]) -> None:
    """Let go of what :func:`create_all` registered, unlaunched (saved as stopped)."""
    cmds.daemon.state_file.pending.difference_update(p.pm_id for p in created)
    for proc in created:
        cmds.daemon.lock(proc).release()


async def launch_all(
    cmds: Commands, created: list[ManagedProcess], *, locked: bool = False
) -> None:
    """Launch what :func:`create_all` registered; a failure removes all of them.

    Other calls are answered between launches (:mod:`corral.daemon.pacing`); each
    process stays locked until it is launched, so a stop or restart sent meanwhile
    waits for the start, as it would have waited for the whole command. ``locked``:
    :func:`create_all` holds their locks already."""
    locks = [cmds.daemon.lock(proc) for proc in created]
    taken: set[asyncio.Lock] = set(locks) if locked else set()
    pacer = Pacer()
    pending = cmds.daemon.state_file.pending
    pending.update(p.pm_id for p in created if p.options.get("autostart", True))
    # asked of the spawner, not finished yet: oldest first
    forking: collections.deque[tuple[ManagedProcess, asyncio.Lock, Callable[[], Child]]]
    forking = collections.deque()

    def launched(proc: ManagedProcess, lock: asyncio.Lock) -> None:
        cmds.daemon.emit(proc, "start", manually=True)
        lock.release()
        taken.discard(lock)

    def finish_oldest() -> None:
        proc, lock, finish = forking.popleft()
        finish()
        launched(proc, lock)

    try:
        for lock in locks if not locked else ():
            await lock.acquire()  # free (a new process): taken without a turn of the loop
            taken.add(lock)
        for proc, lock in zip(created, locks, strict=True):
            if cmds.procs.get(proc.pm_id) is not proc:
                continue  # deleted while the command awaited (a replaced app's stop)
            if not proc.options.get("autostart", True) or held(cmds, proc):
                lock.release()
                taken.discard(lock)
                continue
            await logs_made(cmds, proc)
            pending.discard(proc.pm_id)
            soon = launch_soon(proc)  # the spawner forks the ones before while this is made
            if callable(soon):
                forking.append((proc, lock, soon))
                if len(forking) > SPAWNS_AHEAD:
                    finish_oldest()
            else:
                while forking:  # in order: the daemon forked this one itself
                    finish_oldest()
                launched(proc, lock)
            await pacer.turn()
        while forking:
            finish_oldest()
    except Exception:
        while forking:  # asked for: each answer is read, each child registered
            with contextlib.suppress(Exception):
                forking.popleft()[2]()
        await undo(cmds, created)
        raise
    finally:
        pending.difference_update(p.pm_id for p in created)
        for lock in taken:
            lock.release()


# the names each daemon's create_all is registering (reserved until they are registered)
_creating: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


async def restart_with(cmds: Commands, proc: ManagedProcess, app: PreparedApp) -> None:
    """Restart an existing process with the options and env of a new start."""
    async with cmds.daemon.lock(proc):
        await proc.slot.stop_process(manually=True)
        proc.options = dict(app.options)
        proc.env = {**proc.env, **app.env}
        # the config file's script too: restart refuses to change it, start brings it in line
        proc.script, proc.interpreter = app.script, app.interpreter
        proc.is_command = app.is_command
        proc.slot.respawn()


async def wait_ready(procs: list[ManagedProcess]) -> None:
    """Return once each process's child is ready, gone, or past ``listen_timeout``
    (``start``, ``restart``, ``scale`` and a fork-mode ``reload`` with ``wait_ready``,
    as PM2's executeApp answers only then)."""
    children = [p.child for p in procs if p.child is not None]
    waits = [child.ready for child in children]
    if waits:
        limit = max(child.ready_bound for child in children)
        await asyncio.wait(waits, timeout=limit + 1)


_LOG_OPTIONS = {"out": "out_file", "err": "error_file", "combined": "log_file"}


def _cannot_open(field: str, path: Any, exc: OSError, creds: credentials.Credentials | None) -> str:
    """The one line saying why a log file of ``field`` cannot be opened, and what to do."""
    if exc.errno == errno.ELOOP:
        return (
            f"{field} {shorten(str(path))} is a symbolic link: "
            "corral never opens a log through one; name the file itself"
        )
    if asuser.needed(creds) and isinstance(exc, PermissionError):
        assert creds is not None
        return (
            f"{field} {shorten(str(path))} cannot be opened by user {creds.user}, "
            f"whom the app runs as: {exc.strerror}: name a file that user can write"
        )
    return (
        f"{field} {shorten(str(path))} cannot be opened: {exc.strerror or exc}: "
        "name a file in a directory you can write to"
    )


__all__ = [
    "check_logs_for",
    "create",
    "create_all",
    "launch",
    "launch_all",
    "prepare",
    "release_all",
    "restart_with",
    "undo",
    "wait_ready",
]

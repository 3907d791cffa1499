"""What ``restart`` and ``reload`` may change in an app, checked in full before anything stops.

A restart or reload with ``options`` replaces a process's options, then spawns
it again. Everything the spawn would trip on is checked here first, the way
``start`` checks a new app (a ``cwd`` that is a directory, a ``listen``
address that parses and can be bound, a ``uid`` that exists, ...), so a bad
value raises an OptionError naming its field and the running app is left as
it was: same pid, same status.

Some options are fixed when an app is created: its ``script`` and
interpreter, its name, its mode and its log and pid file paths (the files are
opened once, at creation). A change of one of them is refused with what to do
instead, rather than accepted and silently ignored.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.daemon.apps import check_account, check_env_names, check_increment_var
from corral.datefmt import date_formatter
from corral.errors import OptionError
from corral.supervisor import credentials
from corral.supervisor.listen import bind, identity, parse_address, unlink_bound

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.process import ManagedProcess

_NEW_SCRIPT = (
    "start the config file again, which brings apps in line with it, "
    "or delete the app and start it with the new script"
)
_NEW_FILES = (
    "log and pid files are opened when the app is created: "
    "delete the app and start it again with the new path"
)

# option -> what to do instead of changing it on a restart or reload
FIXED: dict[str, str] = {
    "script": _NEW_SCRIPT,
    "exec_interpreter": _NEW_SCRIPT,
    "instances": "use `corral scale NAME N` (client.scale(name, n))",
    "name": "delete the app and start it again under the new name",
    "exec_mode": "delete the app and start it again in the new mode",
    "out_file": _NEW_FILES,
    "error_file": _NEW_FILES,
    "log_file": _NEW_FILES,
    "pid_file": _NEW_FILES,
    "merge_logs": _NEW_FILES,
    "disable_logs": _NEW_FILES,
}


def refuse_fixed(changes: dict[str, Any], procs: list[ManagedProcess]) -> None:
    """OptionError for the first option ``changes`` would change that is fixed at creation."""
    for key, value in changes.items():
        if key in FIXED and any(value != proc.options.get(key) for proc in procs):
            raise OptionError(
                f"{key} cannot change on a restart or reload: {FIXED[key]}", field=key
            )


def refuse_moving_socket(changes: dict[str, Any], procs: list[ManagedProcess]) -> None:
    """A reload keeps serving on the socket it has: moving it is a restart's job."""
    for proc in procs:
        if not (proc.cluster or proc.shares_socket):
            continue
        moved = _address({**proc.options, **changes})
        if moved != _address(proc.options):
            field = "listen" if "listen" in changes else "port"
            where = moved or "no socket"
            raise OptionError(
                f"{field}: a reload keeps {proc.name} serving on {proc.listen_address} "
                f"while it replaces instances, so it cannot move to {where}: "
                "restart the app to move it",
                field=field,
            )


class SocketMove:
    """Instances of an app whose socket a restart moves: none respawns before all stopped.

    An instance respawned while another still holds the old socket would get the
    old one again (the socket is shared by name), and the move would not happen.
    """

    def __init__(self, procs: list[ManagedProcess]) -> None:
        self.waiting = {proc.pm_id for proc in procs}
        self.all_stopped = asyncio.Event()

    def arrive(self, proc: ManagedProcess) -> None:
        """``proc`` is stopped (or will not be restarted): idempotent."""
        self.waiting.discard(proc.pm_id)
        if not self.waiting:
            self.all_stopped.set()


def socket_moves(
    daemon: Daemon, changes: dict[str, Any], procs: list[ManagedProcess]
) -> dict[str, SocketMove]:
    """By app name, the socket moves a restart with ``changes`` makes; OptionError if
    one would leave an instance of that app out (it would keep the old socket)."""
    moving: dict[str, list[ManagedProcess]] = {}
    for proc in procs:
        if _address({**proc.options, **changes}) != _address(proc.options):
            moving.setdefault(proc.name, []).append(proc)
    for name, chosen in moving.items():
        every = [p for p in daemon.procs.values() if p.name == name]
        if len(every) != len(chosen):
            field = "listen" if "listen" in changes else "port"
            raise OptionError(
                f"{field}: moving the socket of {name} needs all its {len(every)} instances "
                f"restarted together: restart {name!r}, not some of its pm_ids",
                field=field,
            )
    return {name: SocketMove(chosen) for name, chosen in moving.items()}


def changed_options(
    daemon: Daemon, proc: ManagedProcess, changes: dict[str, Any]
) -> dict[str, Any]:
    """``proc``'s options after ``changes``, checked as ``start`` checks a new app's.

    Raises OptionError naming the field at fault; changes nothing.
    """
    options = {**proc.options, **changes}
    if not changes:
        return options
    if "cwd" in changes:
        options["cwd"] = _directory(options.get("cwd"), proc.options.get("cwd"))
    if changes.get("log_date_format"):
        date_formatter(changes["log_date_format"])
    if "uid" in changes or "gid" in changes:
        if (options.get("uid") is not None or options.get("gid") is not None) and os.geteuid():
            raise OptionError("uid/gid need the daemon to run as root", field="uid")
        check_account(options)
    check_env_names(changes)
    check_increment_var(options, proc.env)
    address = _address(options)
    if address is not None and address != _address(proc.options):
        _check_bindable(daemon, proc, address, options)
    return options


def _directory(value: Any, old: Any) -> str:
    """The new ``cwd``, absolute (a relative one is taken from the app's current cwd)."""
    path = Path(str(value or old or "/")).expanduser()
    if not path.is_absolute():
        path = Path(str(old or "/")) / path
    if not path.is_dir():
        raise OptionError(
            f"cwd {str(path)!r} is not a directory: give an existing directory", field="cwd"
        )
    return str(path)


def _address(options: dict[str, Any]) -> str | None:
    """The address the daemon binds for these options (see ManagedProcess.listen_address)."""
    if options.get("listen"):
        return str(options["listen"])
    if options.get("exec_mode") == "cluster" and options.get("port") is not None:
        return f":{options['port']}"
    return None


def _check_bindable(
    daemon: Daemon, proc: ManagedProcess, address: str, options: dict[str, Any]
) -> None:
    """``address`` parses and can be bound now, without touching the app's live socket."""
    parse_address(address)
    held = {listener.address for listener in daemon.listeners.by_name.values()}
    if address in held:
        raise OptionError(
            f"cannot listen on {address}: another app of this daemon listens there: "
            "choose another address",
            field="listen",
        )
    creds = credentials.resolve(options)
    try:
        sock, _ = bind(address, creds)
        ident = identity(address)
    except OSError as exc:
        raise OptionError(
            f"cannot listen on {address}: {exc.strerror or exc}: free it, "
            "or set listen/port to another address",
            field="listen",
        ) from None
    sock.close()
    unlink_bound(address, ident, creds)

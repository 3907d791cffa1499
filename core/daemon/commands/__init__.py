"""The RPC commands the daemon serves: ``Commands`` routes each, by its name, to its coroutine.

Each command validates everything first and acts after, so bad input changes
nothing. Commands on different apps run concurrently; commands on one app are
serialised by that app's lock (never a daemon-wide lock). The commands live in
this package's modules, one idea each (``launch`` starts apps, ``control`` stops,
restarts, reloads and deletes them, ``listing`` shows them, ``dumps`` saves and
restores them, ``signals`` reaches into them, ``admin`` is the daemon's own;
``creation`` makes the processes they start); :class:`Commands` lists them all,
once, by the name a client sends.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import TYPE_CHECKING, Any

from corral.daemon import replywait
from corral.daemon.commands import admin as cmd_admin
from corral.daemon.commands import control as cmd_control
from corral.daemon.commands import dumps as cmd_dumps
from corral.daemon.commands import launch as cmd_launch
from corral.daemon.commands import listing as cmd_listing
from corral.daemon.commands import signals as cmd_signals
from corral.daemon.selection import is_regex_target, same_script, select_regex, select_resolved
from corral.errors import NotFoundError, OptionError, ProtocolError, shorten
from corral.rpc.table import core_commands
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.process import ManagedProcess


class Commands:
    """The daemon's RPC surface. ``dispatch`` routes a request to a method."""

    CORE = core_commands()  # corral.rpc.table: every call, listed once

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.extra = daemon.manager.rpc_commands()
        # one config file reconcile at a time: each plans on what the one before it left
        # (two interleaved ones planned on the same apps and leaked the instances they made)
        self.reconciling = asyncio.Lock()
        clash = set(self.extra) & set(self.CORE)
        if clash:
            raise ProtocolError(f"plugins may not replace core commands: {sorted(clash)}")

    async def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        if self.daemon.heap is not None:  # a reply's buffers are freed once it is sent
            self.daemon.heap.poke()
        if cmd != "ping" and not self.daemon.recovered.is_set():
            # the apps of a daemon that died are not back yet: a start now could take their ids
            await self.daemon.recovered.wait()
        if cmd in self.CORE:
            handler = getattr(self, "cmd_" + cmd)
            call_args = args
        elif cmd in self.extra:
            handler = self.extra[cmd]
            call_args = {"daemon": self.daemon.api, **args}
        else:
            known = ", ".join(sorted([*self.CORE, *self.extra]))
            raise ProtocolError(f"unknown command {shorten(cmd)} (known: {known})")
        try:
            inspect.signature(handler).bind(**call_args)
        except TypeError as exc:
            raise ProtocolError(f"bad arguments for '{cmd}': {exc}") from None
        async with replywait.collecting():  # what plugins started for it (a watch armed)
            result = handler(**call_args)
            if inspect.isawaitable(result):
                result = await result
        return result

    # -- helpers -----------------------------------------------------------

    @property
    def procs(self) -> dict[int, ManagedProcess]:
        return self.daemon.procs

    def select(self, target: Any) -> list[ManagedProcess]:
        """The processes a target names: ``all``, name, pm_id, script path, namespace, list."""
        if isinstance(target, list):
            return self._select_many(target)
        procs = sorted(self.procs.values(), key=lambda p: p.pm_id)
        if target == "all":
            return procs
        if isinstance(target, dict):
            return select_resolved(procs, target)  # a path or config file the client resolved
        if isinstance(target, bool) or not isinstance(target, (str, int)):
            raise OptionError(
                f"a target is a name, a pm_id or 'all', got {shorten(target)}", field="target"
            )
        text = str(target)
        if is_regex_target(text):
            return select_regex(procs, text)
        for matches in (
            [p for p in procs if p.name == text],
            [p for p in procs if text.isascii() and text.isdigit() and p.pm_id == int(text)],
            [p for p in procs if p.script == text or _is_script(p, text)],
            [p for p in procs if p.namespace == text],
        ):
            if matches:
                return matches
        known = sorted({p.name for p in procs})
        names = ", ".join(n if len(n) <= 40 else f"{n[:40]}..." for n in known[:10]) or "none"
        if len(known) > 10:
            names += f", ... ({len(known)} names)"
        raise NotFoundError(
            f"no process matches {shorten(text)} (names: {names}); `corral ls` lists them"
        )

    def _select_many(self, targets: list[Any]) -> list[ManagedProcess]:
        """A list of targets, each as :meth:`select`; names and pm_ids (what a client sends
        back after a start of 1,000 apps) are looked up in one index, not a scan each."""
        by_name: dict[str, list[ManagedProcess]] = {}
        for proc in self.procs.values():
            by_name.setdefault(proc.name, []).append(proc)
        chosen: dict[int, ManagedProcess] = {}
        for item in targets:
            key = str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else None
            if key is not None and key in by_name and not is_regex_target(key):
                found = by_name[key]  # a name first, as select does
            elif isinstance(item, int) and not isinstance(item, bool) and item in self.procs:
                found = [self.procs[item]]
            else:
                found = self.select(item)
            chosen.update((p.pm_id, p) for p in found)
        return sorted(chosen.values(), key=lambda p: p.pm_id)

    def describe_all(self, procs: list[ManagedProcess]) -> list[dict[str, Any]]:
        self.sample(procs)
        return [p.to_dict() for p in procs]

    def sample(self, procs: list[ManagedProcess]) -> None:
        """Fresh memory and CPU figures (``monit``) for the running ones of ``procs``."""
        running = [p for p in procs if p.pid and p.state in lifecycle.RUNNING_STATES]
        figures = self.daemon.sampler.sample([p.pid for p in running if p.pid])
        for proc in running:
            proc.monit = figures.get(proc.pid or 0, (0, 0.0))

    def next_id(self) -> int:
        return max(self.procs, default=-1) + 1

    # -- the commands: each core command of corral.rpc.table, by the name sent --
    # (a function of a cmd_* module, its first argument this Commands)

    cmd_ping = cmd_admin.cmd_ping
    cmd_start = cmd_launch.cmd_start
    cmd_stop = cmd_control.cmd_stop
    cmd_restart = cmd_control.cmd_restart
    cmd_reload = cmd_control.cmd_reload
    cmd_scale = cmd_launch.cmd_scale
    cmd_delete = cmd_control.cmd_delete
    cmd_list = cmd_listing.cmd_list
    cmd_describe = cmd_listing.cmd_describe
    cmd_dump = cmd_dumps.cmd_dump
    cmd_resurrect = cmd_dumps.cmd_resurrect
    cmd_flush = cmd_listing.cmd_flush
    cmd_reset = cmd_listing.cmd_reset
    cmd_send_signal_to_process_name = cmd_signals.cmd_send_signal_to_process_name
    cmd_send_signal_to_process_id = cmd_signals.cmd_send_signal_to_process_id
    cmd_send_data_to_process_id = cmd_signals.cmd_send_data_to_process_id
    cmd_send_line = cmd_signals.cmd_send_line
    cmd_plugins = cmd_admin.cmd_plugins
    cmd_options = cmd_admin.cmd_options
    cmd_kill_daemon = cmd_admin.cmd_kill_daemon
    cmd_update = cmd_admin.cmd_update


def _is_script(proc: ManagedProcess, text: str) -> bool:
    return os.path.isabs(text) and same_script(proc, text)


__all__ = ["Commands"]

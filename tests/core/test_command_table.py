"""The command table is the one list: the daemon, both clients, the module calls and
docs/api.md are checked against it, and PM2's names work on a real daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

import corral
from corral.daemon.commands import Commands
from corral.hooks import load_plugins
from corral.rpc.table import CALLS, core_commands

ROOT = Path(__file__).resolve().parents[2]
# public client attributes that are not calls of the table, and why
NOT_CALLS = {
    "send_line_to_stdin",  # PM2's sendLineToStdin in snake_case, an alias of send_line
    "local_plugins",  # this process's plugins, for the client-side plugin calls
    "connect",  # AsyncClient.connect, the constructor (corral.connect for Client)
}


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


def test_the_daemon_serves_exactly_the_core_commands_of_the_table():
    served = {n.removeprefix("cmd_") for n in dir(Commands) if n.startswith("cmd_")}
    assert served == set(core_commands()) == set(Commands.CORE)


def test_every_plugin_call_is_served_by_its_plugin():
    for call in CALLS:
        if call.plugin is None or call.rpc is None:
            continue
        assert call.rpc not in core_commands(), call.name
        commands = load_plugins([call.plugin]).rpc_commands()
        assert call.rpc in commands, f"{call.plugin} does not serve {call.rpc}"


@pytest.mark.parametrize("cls", [corral.Client, corral.AsyncClient])
def test_each_client_has_the_calls_of_the_table_and_no_other(cls):
    calls = [c for c in CALLS if cls is corral.Client or c.async_too]
    names = {c.name for c in calls}
    aliases = {c.pm2 for c in calls if c.pm2}
    assert names <= _public(cls), names - _public(cls)
    assert _public(cls) - names - aliases - NOT_CALLS == set()
    for call in calls:
        if call.pm2:
            assert getattr(cls, call.pm2) is getattr(cls, call.name), call.pm2


def test_sync_only_calls_are_absent_from_the_async_client():
    for call in CALLS:
        if not call.async_too:
            assert not hasattr(corral.AsyncClient, call.name), f"{call.name} is sync only"


def test_module_calls_under_both_names_are_exported():
    for call in CALLS:
        names = {call.name, call.pm2 or call.name}
        for name in names:
            assert (name in corral.__all__) is call.module_call, name
            if call.module_call:
                assert callable(getattr(corral, name))


def test_no_module_call_is_shadowed_by_a_module_of_corral():
    # corral.reload was the module reload.py once the daemon had imported it, and
    # corral.plugins is the plugins' package: a module call of either name broke
    modules = {p.stem for p in (ROOT / "core").iterdir() if p.suffix == ".py" or p.is_dir()}
    modules |= {"plugins"}
    calls = {n for c in CALLS if c.module_call for n in (c.name, c.pm2) if n}
    assert calls & modules == set()


def test_pm2_singleton_names_drive_a_real_daemon(corral_home, app_path):
    client = corral.connect(corral_home)
    try:
        (info,) = corral.start(app_path("sleeper.py"), {"name": "pm2style"})
        corral.sendSignalToProcessName("SIGUSR1", "pm2style")
        (again,) = corral.gracefulReload("pm2style")
        assert again.pid != info.pid
        assert [i.name for i in client.list()] == ["pm2style"]
        assert corral.describe("pm2style")[0].status == "online"
    finally:
        corral.killDaemon()

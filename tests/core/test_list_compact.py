"""client.list()'s compact reply: no environment on the wire, the env fetched on first
use, list(env=True) the old full info, the old list command unchanged, both clients alike."""

from __future__ import annotations

import asyncio
import json

import pytest

import corral
from corral.client.info import ProcessInfo, old_daemon
from corral.errors import NotFoundError, OptionError, ProtocolError
from corral.testing import wait_for

SECRET = "s3cr3t-value-that-must-not-travel"
ENV = {"LIST_SECRET": SECRET, "status": "from-env", "name": "from-env", "cwd": "/env"}


def _start_two(pm, app_path) -> None:
    pm.start(app_path("sleeper.py"), {"name": "one", "env": ENV})
    pm.start(app_path("sleeper.py"), {"name": "two", "env": {"OTHER": "x"}, "force": True})


def _without_monit(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "monit"}


class Counting:
    """The client's transport, counting the requests sent through it by command."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self.sent: list[tuple[str, dict]] = []

    def call(self, cmd, args=None, timeout=None):
        self.sent.append((cmd, dict(args or {})))
        return self.transport.call(cmd, args, timeout)

    def __getattr__(self, name):
        return getattr(self.transport, name)


def test_the_default_list_reply_leaves_the_env_out(pm, app_path):
    _start_two(pm, app_path)
    compact = pm._transport.call_raw("list", {"form": "rows"})
    old = pm._transport.call_raw("list")
    assert SECRET.encode() not in compact and b"OTHER" not in compact
    assert SECRET.encode() in old  # the old form: env and its copies, as pm2 jlist
    assert len(compact) / 2 <= 1500, len(compact)
    reply = json.loads(compact)
    assert reply["env"] is False and len(reply["rows"]) == len(reply["live"]) == 2
    for value in ("one", "two"):  # each value once: a name is in one place only
        assert compact.count(f'"{value}"'.encode()) == 1


def test_the_env_is_fetched_on_first_use_once(pm, app_path):
    _start_two(pm, app_path)
    # a child just forked may show no memory yet, and a list reuses a sample up to 1 s old
    wait_for(lambda: all(p.memory > 0 for p in pm.list()), what="both apps sampled")
    pm._transport = counting = Counting(pm._transport)
    infos = pm.list()
    assert [c for c, _ in counting.sent] == ["list"]
    one = infos[0]
    described = pm.describe("one")[0]
    counting.sent.clear()
    # every property but the env reads the row: no request
    assert (one.name, one.pm_id, one.status, one.pid) == ("one", 0, "online", described.pid)
    assert one.namespace == "default" and one.restart_time == 0 and one.exec_mode == "fork_mode"
    assert one.out_log == described.out_log and one.options == described.options
    assert one.field("pm_exec_path") == described.pm2_env["pm_exec_path"]
    assert one.memory > 0 and one["pid"] == described.pid
    assert counting.sent == []
    assert one.env == described.env and one.env["LIST_SECRET"] == SECRET
    assert counting.sent == [("describe", {"target": 0})]
    assert _without_monit(one.to_dict()) == _without_monit(described.to_dict())
    assert one.pm2_env["LIST_SECRET"] == SECRET and one.pm2_env["name"] == "one"
    assert len(counting.sent) == 1  # fetched once, kept
    assert infos[1].env == {**infos[1].env, "OTHER": "x"}
    assert len(counting.sent) == 2


def test_list_env_true_is_the_old_full_info(pm, app_path):
    _start_two(pm, app_path)
    pm.stop("two")
    old = [ProcessInfo(item) for item in pm._transport.call("list", {})]
    full = pm.list(env=True)
    pm._transport = counting = Counting(pm._transport)
    assert [_without_monit(i.to_dict()) for i in full] == [_without_monit(i.to_dict()) for i in old]
    # key for key in the same order, as `ls --json` prints them
    assert [json.dumps(_without_monit(i.to_dict())) for i in full] == [
        json.dumps(_without_monit(i.to_dict())) for i in old
    ]
    assert [i.env for i in full] == [i.env for i in old] and counting.sent == []
    assert full[1].status == "stopped" and full[1].memory == 0 and full[1].pid is None


def test_the_old_list_command_answers_the_old_shape(pm, app_path):
    _start_two(pm, app_path)
    entries = json.loads(pm._transport.call_raw("list"))
    jlist = [_without_monit(e) for e in json.loads(pm.jlist_json())]
    assert jlist == [_without_monit(e) for e in entries]  # jlist sends the old form
    assert [set(e) for e in entries] == [{"pid", "name", "pm_id", "monit", "pm2_env"}] * 2
    one = entries[0]["pm2_env"]
    assert one["env"]["LIST_SECRET"] == SECRET and one["LIST_SECRET"] == SECRET
    assert one["name"] == "one" and one["status"] == "online"
    described = [_without_monit(i.to_dict()) for i in pm.describe("all")]
    assert [_without_monit(e) for e in entries] == described


def test_a_daemon_without_the_compact_form_is_recognised(pm):
    """An older daemon answers list's new arguments as any unknown argument: the client
    then sends the old form (old_daemon reads this daemon's own message)."""
    with pytest.raises(ProtocolError) as refused:
        pm.call("list", shape="rows")
    assert old_daemon(refused.value)
    with pytest.raises(OptionError, match="form"):
        pm.call("list", form="xml")
    with pytest.raises(OptionError, match="env"):
        pm.call("list", form="rows", env="yes")


def test_the_env_of_a_process_deleted_since_the_list(pm, app_path):
    _start_two(pm, app_path)
    infos = pm.list()
    pm.delete("two")  # the highest pm_id: the next app takes it
    pm.start(app_path("sleeper.py"), {"name": "three", "env": {"OTHER": "y"}, "force": True})
    assert [(i.pm_id, i.name) for i in pm.list()] == [(0, "one"), (1, "three")]
    with pytest.raises(NotFoundError, match="two"):
        _ = infos[1].env  # pm_id 1 is another app now: not its env
    assert infos[0].env["LIST_SECRET"] == SECRET
    fresh = pm.list()
    pm.delete("three")
    with pytest.raises(NotFoundError):
        _ = fresh[1].env  # deleted: describe finds no process 1


def test_the_sync_and_asyncio_clients_agree(pm, app_path):
    _start_two(pm, app_path)

    async def listed():
        client = await corral.AsyncClient.connect()
        try:
            lazy = await client.list()
            full = await client.list(env=True)
            envs = [i.env for i in lazy]  # fetched, a blocking describe each
            return lazy, full, envs
        finally:
            await client.disconnect()

    lazy, full, envs = asyncio.run(listed())
    sync = pm.list()

    def seen(infos):
        return [(i.name, i.pm_id, i.status, i.pid, i.options, i.namespace) for i in infos]

    assert seen(lazy) == seen(sync) == seen(full)
    assert envs == [i.env for i in sync] == [i.env for i in full]
    assert [_without_monit(i.to_dict()) for i in full] == [
        _without_monit(i.to_dict()) for i in sync
    ]

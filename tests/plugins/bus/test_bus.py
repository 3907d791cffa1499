"""The bus plugin and its subscriber: real daemons, real children, real zmq sockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import corral
from corral.errors import CorralError, DaemonError, PluginError
from corral.plugins.bus import Bus, BusEvent, matches, message_packet
from corral.plugins.bus.command import format_event
from tests.conftest import APPS, PY, python_app, wait_for


@pytest.fixture
def pm(corral_home: Path) -> Iterator[corral.Client]:
    """An in-process daemon with the bus plugin."""
    with corral.connect(no_daemon=True, plugins=["bus"]) as client:
        yield client


def collect(
    bus: Bus, until: Callable[[list[BusEvent]], bool], timeout: float = 15.0
) -> list[BusEvent]:
    """Events from ``bus`` until ``until(events)`` holds; fail after ``timeout`` seconds."""
    events: list[BusEvent] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        left = deadline - time.monotonic()
        event = bus.recv(timeout=max(left, 0))
        if event is None:
            topics = [(e.topic, e.payload.get("event")) for e in events]
            raise AssertionError(f"bus: condition not met within {timeout} s; got {topics}")
        events.append(event)
    return events


def words(events: list[BusEvent], name: str) -> list[str]:
    """The ``process:event`` words of app ``name``, in order."""
    return [
        e.payload["event"]
        for e in events
        if e.topic == "process:event" and e.payload["process"]["name"] == name
    ]


def log_text(events: list[BusEvent], topic: str = "log:out") -> str:
    return "".join(e.payload["data"] for e in events if e.topic == topic)


# -- the socket ----------------------------------------------------------------


def test_pub_sock_is_private_and_announced(pm, corral_home):
    path = corral_home / "pub.sock"
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reply = pm.call("bus_address")
    assert reply == {"address": f"ipc://{path}", "published": 0, "dropped_here": 0}


def test_no_plugin_no_socket(corral_home):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        assert not (corral_home / "pub.sock").exists()
        with pytest.raises(PluginError):
            client.launch_bus()


def test_socket_removed_when_the_daemon_stops(corral_home):
    with corral.connect(no_daemon=True, plugins=["bus"]):
        assert (corral_home / "pub.sock").exists()
    assert not (corral_home / "pub.sock").exists()


def test_nobody_answering_is_an_error(tmp_path):
    started = time.monotonic()
    with pytest.raises(DaemonError, match="bus"):
        Bus(f"ipc://{tmp_path}/pub.sock", timeout=0.2)
    assert time.monotonic() - started < 2


# -- process events --------------------------------------------------------------


def test_crash_restart_events_in_order(pm):
    with pm.launch_bus(["process:event"]) as bus:
        pm.start(str(APPS / "crasher.py"), {"name": "crash", "max_restarts": 2})
        events = collect(bus, lambda ev: "restart overlimit" in words(ev, "crash"))
    seen = words(events, "crash")
    assert seen[:2] == ["online", "start"]
    assert seen.count("start") == 1
    cycle = [w for w in seen if w in ("online", "exit")]
    assert cycle == ["online", "exit"] * (len(cycle) // 2) + ["online"] * (len(cycle) % 2)
    exit_event = next(e for e in events if e.payload["event"] == "exit")
    payload = exit_event.payload
    assert "exit code 1" in payload["reason"]
    assert payload["manually"] is False
    assert payload["process"]["name"] == "crash"
    assert payload["process"]["pm_id"] == 0
    assert "env" not in payload["process"]
    assert isinstance(payload["at"], int)
    assert payload["v"] == 1
    start = next(e for e in events if e.payload["event"] == "start")
    assert start.payload["manually"] is True
    # one counter per topic, with no gap
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))


def test_stop_restart_delete_events(pm):
    with pm.launch_bus("process:event") as bus:
        pm.start(str(APPS / "sleeper.py"), {"name": "sl"})
        collect(bus, lambda ev: "start" in words(ev, "sl"))
        pm.stop("sl")
        pm.restart("sl")
        pm.delete("sl")
        events = collect(bus, lambda ev: "delete" in words(ev, "sl"))
    seen = words(events, "sl")
    assert seen == ["stop", "exit", "online", "restart", "stop", "exit", "delete"]
    manual = {e.payload["event"]: e.payload["manually"] for e in events}
    assert manual["stop"] is manual["restart"] is manual["delete"] is True
    assert bus.dropped == 0


def test_kill_daemon_publishes_corral_kill(corral_home):
    client = corral.connect(no_daemon=True, plugins=["bus"])
    bus = client.launch_bus()
    try:
        client.start(str(APPS / "sleeper.py"), {"name": "sl"})
        client.kill_daemon()
        events = collect(bus, lambda ev: bool(ev) and ev[-1].topic == "corral:kill")
    finally:
        client.disconnect()
        bus.close()
    assert words(events, "sl")[-1] == "delete"
    kill = events[-1].payload
    assert kill["status"] == "killed"
    assert kill["msg"]
    assert kill["v"] == 1


def test_a_bus_outlives_its_daemon(corral_home):
    """zmq reconnects to the next daemon; its welcome resets the counters (no false drops)."""
    with corral.connect(no_daemon=True, plugins=["bus"]) as client:
        bus = client.launch_bus("process:event")
        client.start(str(APPS / "sleeper.py"), {"name": "first"})
        collect(bus, lambda ev: "start" in words(ev, "first"))
    try:
        with corral.connect(no_daemon=True, plugins=["bus"]) as client:
            client.start(str(APPS / "sleeper.py"), {"name": "again"})

            def from_again() -> BusEvent | None:
                client.restart("again")
                while (event := bus.recv(timeout=0.2)) is not None:
                    if event.payload["process"]["name"] == "again":
                        return event
                return None

            # the bus reconnects within zmq's reconnect interval; events before it are lost
            wait_for(from_again, what="an event from the second daemon")
            assert bus.dropped == 0
    finally:
        bus.close()


# -- logs ------------------------------------------------------------------------


def test_log_out_and_err_carry_what_the_child_wrote(pm, tmp_path):
    script = python_app(
        tmp_path,
        "talk.py",
        "import sys\n"
        "for i in range(1000):\n"
        "    print(f'line {i} é')\n"
        "sys.stdout.flush()\n"
        "print('oops', file=sys.stderr)\n",
    )
    with pm.launch_bus("log:*") as bus:
        [info] = pm.start(script, {"name": "talk", "autorestart": False})
        events = collect(bus, lambda ev: "oops" in log_text(ev, "log:err"))
        events += collect(bus, lambda ev: log_text(events + ev).count("\n") >= 1000)
    assert log_text(events) == "".join(f"line {i} é\n" for i in range(1000))
    assert log_text(events, "log:err") == "oops\n"
    first = events[0].payload
    assert first["process"] == {"pm_id": info.pm_id, "name": "talk", "namespace": "default"}
    assert isinstance(first["at"], int)
    assert {e.topic for e in events} == {"log:out", "log:err"}
    assert Path(info.out_log).read_text() == log_text(events)


# -- subscribing -----------------------------------------------------------------


def test_topic_patterns():
    assert matches("process:*", "process:event")
    assert matches("process:*", "process:msg")
    assert not matches("process:*", "log:out")
    assert matches("log:out", "log:out")
    assert not matches("log:out", "log:outer")
    assert matches("*:err", "log:err")
    assert matches("", "anything")
    assert matches("*", "anything")


def test_wildcard_and_exact_topics(pm, tmp_path):
    script = python_app(
        tmp_path, "both.py", "import sys\nprint('o')\nprint('e', file=sys.stderr)\n"
    )
    process_bus = pm.launch_bus(["process:*"])
    err_bus = pm.launch_bus(["*:err"])
    all_bus = pm.launch_bus()
    try:
        pm.start(script, {"name": "both", "autorestart": False})
        everything = collect(all_bus, lambda ev: {"log:out", "log:err"} <= {e.topic for e in ev})
        everything += collect(all_bus, lambda ev: "exit" in words(everything + ev, "both"))
        errors = collect(err_bus, lambda ev: bool(ev))
        processes = collect(process_bus, lambda ev: "exit" in words(ev, "both"))
        assert err_bus.recv(timeout=0.2) is None
    finally:
        for bus in (process_bus, err_bus, all_bus):
            bus.close()
    assert {e.topic for e in everything} == {"process:event", "log:out", "log:err"}
    assert [e.topic for e in errors] == ["log:err"]
    assert {e.topic for e in processes} == {"process:event"}


def test_on_callbacks_run_on_one_thread(pm):
    seen: list[tuple[str, str]] = []
    threads: set[str] = set()
    done = threading.Event()

    def on_event(event: BusEvent) -> None:
        threads.add(threading.current_thread().name)
        seen.append(("event", event.payload["event"]))
        if event.payload["event"] == "exit":
            done.set()

    def on_log(event: BusEvent) -> None:
        threads.add(threading.current_thread().name)
        seen.append(("log", event.payload["data"]))

    def broken(event: BusEvent) -> None:
        raise RuntimeError("a broken callback must not stop the others")

    bus = pm.launch_bus()
    try:
        bus.on("process:event", on_event)
        bus.on("log:*", on_log)
        bus.on("*", broken)
        with pytest.raises(CorralError, match="on\\(\\)"):
            bus.recv(timeout=0)
        pm.start(str(APPS / "crasher.py"), {"name": "cb", "autorestart": False})
        assert done.wait(15)
        wait_for(lambda: ("log", "crashing\n") in seen, what="the log line callback")
    finally:
        bus.close()
    assert ("event", "online") in seen
    assert threads == {"corral-bus"}
    bus.close()  # twice is fine


def test_close_from_a_callback(pm):
    bus = pm.launch_bus()
    closed = threading.Event()

    def close_now(event: BusEvent) -> None:
        bus.close()
        closed.set()

    bus.on("*", close_now)
    pm.start(str(APPS / "sleeper.py"), {"name": "sl"})
    assert closed.wait(15)
    wait_for(lambda: not bus._thread.is_alive(), what="the callback thread to end")


def test_async_iteration(pm):
    bus = pm.launch_bus("process:event")

    async def first_online() -> list[BusEvent]:
        await asyncio.to_thread(pm.start, str(APPS / "sleeper.py"), {"name": "aio"})
        events = []
        async for event in bus:
            events.append(event)
            if event.payload["event"] == "start":
                return events
        return events

    try:
        events = asyncio.run(asyncio.wait_for(first_online(), 15))
        assert [e.payload["event"] for e in events] == ["online", "start"]
        assert asyncio.run(bus.arecv(timeout=0.1)) is None
    finally:
        bus.close()


# -- a slow subscriber -----------------------------------------------------------

FLOOD_LINES = 50_000


def test_slow_subscriber_never_slows_the_daemon(corral_home, tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_BUS_HWM", "10")
    flood = python_app(
        tmp_path,
        "flood.py",
        "import sys\n"
        f"for i in range({FLOOD_LINES}):\n"
        "    sys.stdout.write('%06d %s\\n' % (i, 'x' * 60))\n"
        "    sys.stdout.flush()\n",
    )
    with corral.connect(no_daemon=True, plugins=["bus"]) as pm:
        address = pm.call("bus_address")["address"]
        with Bus(address, ["log:out"], hwm=10) as bus:  # never read during the flood
            [info] = pm.start(flood, {"name": "flood", "autorestart": False})
            log = Path(info.out_log)

            def written() -> int:
                return log.read_bytes().count(b"\n") if log.exists() else 0

            slowest = 0.0
            while written() < FLOOD_LINES:
                started = time.perf_counter()
                pm.list()
                slowest = max(slowest, time.perf_counter() - started)
                assert time.monotonic() < started + 60, "the flood never completed"
            assert slowest < 1.0
            lines = log.read_text().splitlines()
            assert lines == [f"{i:06d} {'x' * 60}" for i in range(FLOOD_LINES)]
            # one more line after the flood, so the gap before it shows
            pm.start(PY, {"name": "after", "args": ["-c", "print('after')"], "autorestart": False})
            events = collect(bus, lambda ev: bool(ev) and ev[-1].payload["data"] == "after\n")
            assert bus.dropped > 0
            flood_events = [e for e in events if e.payload["process"]["name"] == "flood"]
            assert flood_events, "the first messages fit under the high-water mark"
            assert len(events) + bus.dropped == events[-1].seq - events[0].seq + 1
            stats = pm.call("bus_address")
            assert stats["published"] + stats["dropped_here"] >= events[-1].seq


# -- child messages --------------------------------------------------------------


def test_message_packets_follow_pm2():
    assert message_packet({"type": "process:msg", "data": {"a": 1}, "topic": "t"}) == (
        "process:msg",
        {"data": {"a": 1}, "topic": "t"},
    )
    assert message_packet({"type": "custom:thing", "data": 2}) == ("custom:thing", {"data": 2})
    error = {"name": "ValueError", "message": "bad", "stack": "..."}
    assert message_packet({"type": "process:exception", "data": error}) == (
        "process:exception",
        {"data": error},
    )
    assert message_packet("hello") == ("process:msg", {"raw": "hello"})
    assert message_packet({"no": "type"}) == ("process:msg", {"raw": {"no": "type"}})
    assert message_packet({"type": "process:msg"}) == (
        "process:msg",
        {"raw": {"type": "process:msg"}},
    )
    # a child cannot speak on the daemon's own topics
    spoof = {"type": "process:event", "data": {"event": "online"}}
    assert message_packet(spoof) == ("process:msg", {"raw": spoof})
    spoof = {"type": "corral:plugin-error", "data": {"plugin": "memory"}}
    assert message_packet(spoof) == ("process:msg", {"raw": spoof})
    assert message_packet({"node_version": "20", "type": "x", "data": 1}) == (None, {})


CHILD = """\
import os
import corral.child
corral.child.send({"ok": True}, topic="greeting")
channel = int(os.environ["CORRAL_CHANNEL_FD"])
os.write(channel, b'"plain words"\\n{"type": "custom:metric", "data": 42}\\n')
corral.child.install_exception_hook()
raise ValueError("boom")
"""


def test_child_messages_are_published(pm, tmp_path):
    script = python_app(tmp_path, "sender.py", CHILD)
    with pm.launch_bus(["process:*", "custom:*"]) as bus:
        pm.start(script, {"name": "sender", "autorestart": False})
        events = collect(bus, lambda ev: any(e.topic == "process:exception" for e in ev))
    messages = [e for e in events if e.topic != "process:event"]
    by_topic = {e.topic: e.payload for e in messages}
    msg = [e.payload for e in messages if e.topic == "process:msg"]
    assert msg[0]["data"] == {"ok": True}
    assert msg[0]["topic"] == "greeting"
    assert msg[1]["raw"] == "plain words"
    assert by_topic["custom:metric"]["data"] == 42
    error = by_topic["process:exception"]["data"]
    assert error["name"] == "ValueError"
    assert error["message"] == "boom"
    assert "Traceback" in error["stack"]
    for payload in by_topic.values():
        assert payload["process"]["name"] == "sender"
        assert payload["v"] == 1
        assert isinstance(payload["at"], int)


# -- the CLI ---------------------------------------------------------------------


def test_format_event_lines():
    at = int(time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)) * 1000)
    process = {"pm_id": 3, "name": "api", "namespace": "default"}
    event = BusEvent(
        "process:event", {"event": "exit", "reason": "exit code 1", "process": process, "at": at}
    )
    assert format_event(event) == ["03:04:05 process:event api[3] exit (exit code 1)"]
    log = BusEvent("log:out", {"data": "a\nb\n", "process": process, "at": at})
    assert format_event(log) == ["03:04:05 log:out api[3] a", "03:04:05 log:out api[3] b"]
    msg = BusEvent("process:msg", {"data": {"x": 1}, "topic": "t", "process": process, "at": at})
    assert format_event(msg) == ['03:04:05 process:msg api[3] (t) {"x": 1}']
    kill = BusEvent("corral:kill", {"status": "killed", "msg": "bye", "at": at})
    assert format_event(kill) == ["03:04:05 corral:kill bye"]


@pytest.fixture
def detached(corral_home, monkeypatch) -> Iterator[corral.Client]:
    """A client of a detached daemon with the bus plugin."""
    monkeypatch.setenv("CORRAL_PLUGINS", "bus")
    client = corral.connect()
    yield client
    client.disconnect()


def run_cli(args: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """``corral bus ...`` in a subprocess, its stdout lines gathered on a thread."""
    proc = subprocess.Popen(
        [PY, "-m", "corral", "bus", *args], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


TICKER = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)\n"


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_streams_until_the_daemon_stops(detached, tmp_path, as_json):
    detached.start(python_app(tmp_path, "ticker.py", TICKER), {"name": "ticker"})
    proc, lines = run_cli(["--topic", "log:out"] + (["--json"] if as_json else []))
    try:
        wait_for(lambda: len(lines) >= 2, what="two lines from `corral bus`")
        detached.kill_daemon()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    if as_json:
        first = json.loads(lines[0])
        assert first["topic"] == "log:out"
        assert first["data"] == "tick\n"
        assert first["process"]["name"] == "ticker"
        assert json.loads(lines[-1])["topic"] == "corral:kill"
    else:
        assert re.fullmatch(r"\d\d:\d\d:\d\d log:out ticker\[0\] tick\n", lines[0])
        assert re.fullmatch(r"\d\d:\d\d:\d\d corral:kill .+\n", lines[-1])
    assert all("process:event" not in line for line in lines)


def test_cli_ctrl_c_exits_quietly(detached):
    detached.start(str(APPS / "sleeper.py"), {"name": "sl"})
    proc, lines = run_cli([])
    try:
        # the subscription is in place once an event makes it through (the restarted
        # app's own output may come first: it is on the bus too)
        wait_for(
            lambda: detached.restart("sl") and any("process:event sl" in x for x in lines),
            timeout=20,
            interval=0.2,
            what="an event from `corral bus`",
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert any("process:event sl" in line for line in lines)


class Broken:
    """A plugin whose event hook always raises."""

    @corral.hookimpl
    def corral_process_event(self, event):
        raise RuntimeError(f"broken on {event.event}")


def test_a_raising_hook_is_reported_on_the_bus(corral_home, app_path):
    with corral.connect(no_daemon=True, plugins=["bus", Broken()]) as client:
        bus = client.launch_bus(["corral:plugin-error"])
        try:
            client.start(app_path("sleeper.py"), {"name": "ok"})
            events = collect(bus, lambda got: len(got) >= 1)
            report = events[0].payload
            assert report["plugin"] == "Broken" and report["hook"] == "corral_process_event"
            assert report["error"].startswith("RuntimeError: broken on")
            assert client.describe("ok")[0].status == "online"
            errors = {r["name"]: r for r in client.plugins()}["Broken"]["errors"]
            assert any("broken on" in e for e in errors)
        finally:
            bus.close()
    log = (corral_home / "corral.log").read_text()
    assert '"plugin": "Broken"' in log

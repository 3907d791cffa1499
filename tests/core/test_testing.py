"""corral.testing: the fixtures a plugin author gets, run in a pytest of their own."""

from __future__ import annotations

import contextlib
from importlib import metadata
from pathlib import Path

import psutil
import pytest

import corral
from corral.testing import (
    EventRecorder,
    app_source,
    output_lines,
    wait_for,
    wait_for_event,
    wait_for_message,
)

# A third-party plugin, as its author would write it.
GREETER = '''\
"""greeter: puts GREETING into every app's environment (option: greeting)."""

import corral


@corral.hookimpl
def corral_app_options():
    return [corral.Option("greeting", "str", help="text put into GREETING")]


@corral.hookimpl
def corral_before_spawn(app, spawn):
    if app.options.get("greeting"):
        spawn.env["GREETING"] = app.options["greeting"]
'''

# Its tests, using only what corral.testing provides. Each test writes the pids it
# started to PIDS, so the outer test checks that the fixtures killed them all.
AUTHOR_TESTS = """\
import os
import socket
from pathlib import Path

import psutil

import corral
from corral.testing import output_lines, wait_for, wait_for_event, wait_for_message

import greeter

PIDS = Path({pids!r})


def remember(*pids):
    with PIDS.open("a") as f:
        f.write("".join(f"{{pid}}\\n" for pid in pids))


def test_the_home_is_short_and_private(corral_home):
    assert os.environ["CORRAL_HOME"] == str(corral_home)
    assert os.environ["CORRAL_PLUGINS"] == ""
    assert len(str(corral_home / "rpc.sock")) < 100


def test_the_plugin_changes_the_environment(corral_daemon, corral_events, tmp_path):
    pm = corral_daemon(plugins=[greeter])
    assert pm.events is corral_events
    app = tmp_path / "env.py"
    app.write_text(
        "import os, time\\nprint(os.environ['GREETING'], flush=True)\\ntime.sleep(60)\\n"
    )
    (info,) = pm.start(str(app), {{"name": "env", "greeting": "hello"}})
    remember(info.pid)
    assert wait_for_event(pm, "online", "env").pm_id == info.pm_id
    wait_for(lambda: output_lines(pm, "env") == ["hello"], what="the greeting printed")
    assert corral_events.daemon.processes()[0].name == "env"


def test_a_crash_is_recorded_then_restarted(corral_daemon, scripted_app):
    pm = corral_daemon()
    (info,) = pm.start(scripted_app("crash", crash_after=0.2, print_lines=1), {{"name": "crash"}})
    remember(info.pid)
    exited = wait_for_event(pm, "exit", "crash")
    assert exited.process["exit_code"] == 1
    again = wait_for_event(pm, "online", "crash", count=2)
    assert again.at >= exited.at
    assert "crashing" in output_lines(pm, "crash", "err")
    assert output_lines(pm, "crash")[0] == "line 1"


def test_a_port_and_readiness(corral_daemon, scripted_app):
    pm = corral_daemon()
    path = scripted_app("web", open_port=True, ready=True)
    (info,) = pm.start(path, {{"name": "web", "wait_ready": True}})
    remember(info.pid)
    line = wait_for(lambda: [x for x in output_lines(pm, "web") if x.startswith("port=")])
    port = int(line[0].split("=")[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.makefile().readline().strip() == str(info.pid)


def test_the_shared_socket(corral_daemon, corral_home, scripted_app):
    pm = corral_daemon()
    address = corral_home / "web.sock"
    path = scripted_app("shared", open_port=True)
    (info,) = pm.start(path, {{"name": "shared", "listen": f"unix:{{address}}"}})
    remember(info.pid)
    wait_for(lambda: f"port={{address}}" in output_lines(pm, "shared"), what="the socket path")
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(address))
        assert conn.makefile().readline().strip() == str(info.pid)


def test_memory_is_resident(corral_daemon, scripted_app):
    pm = corral_daemon()
    (info,) = pm.start(scripted_app("big", allocate_mb=40, print_lines=1), {{"name": "big"}})
    remember(info.pid)
    wait_for(lambda: output_lines(pm, "big") == ["line 1"], what="allocated")
    assert psutil.Process(info.pid).memory_info().rss > 40 * 1024**2


def test_a_message_from_the_child(corral_daemon, tmp_path):
    pm = corral_daemon()
    app = tmp_path / "talker.py"
    app.write_text(
        "import time, corral.child\\n"
        "corral.child.send({{'n': 1}}, topic='count')\\n"
        "time.sleep(60)\\n"
    )
    (info,) = pm.start(str(app), {{"name": "talker"}})
    remember(info.pid)
    sent = wait_for_message(pm, "talker")
    assert sent.message == {{"type": "process:msg", "data": {{"n": 1}}, "topic": "count"}}


def test_a_detached_daemon_and_its_apps_are_killed(corral_home, scripted_app):
    # no stop, no kill_daemon: corral_home's teardown kills them by pid
    pm = corral.connect()
    (info,) = pm.start(scripted_app("left"), {{"name": "left"}})
    wait_for(lambda: pm.describe("left")[0].status == "online", what="left online")
    remember(pm.daemon_pid, info.pid)
"""


def _plugin_args() -> list[str]:
    """``-p corral.testing`` until the pytest11 entry point is installed (then pytest
    loads it by itself, and loading it twice is an error)."""
    installed = any(ep.value == "corral.testing" for ep in metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "corral.testing"]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_plugin_author_tests_with_the_fixtures(pytester: pytest.Pytester) -> None:
    pids_file = pytester.path / "pids.txt"
    pids_file.touch()
    pytester.makepyfile(greeter=GREETER, test_greeter=AUTHOR_TESTS.format(pids=str(pids_file)))
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    pids = [int(line) for line in pids_file.read_text().split()]
    try:
        result.assert_outcomes(passed=8)
        assert len(pids) == 8
        for pid in pids:
            wait_for(lambda pid=pid: _gone(pid), timeout=5, what=f"pid {pid} killed")
    finally:
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def test_the_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*_plugin_args(), "--fixtures")
    for name in ("corral_home", "corral_events", "corral_daemon", "scripted_app"):
        result.stdout.fnmatch_lines([f"{name}*"])


# -- in corral's own suite -----------------------------------------------------


def test_corral_daemon_adds_the_recorder(corral_daemon, corral_events, scripted_app):
    pm = corral_daemon()
    assert pm.events is corral_events
    before = corral_events.mark()
    pm.start(scripted_app(), {"name": "app"})
    started = wait_for_event(corral_events, "online", "app", since=before)
    assert started.name == "app"
    assert corral_events.matching("online", started.pm_id) == [started]
    assert corral_events.matching("online", "other") == []
    pm.disconnect()
    again = corral_daemon()  # another daemon on the same home, once the first is gone
    assert again.events is corral_events
    assert again.list() == []


def event(name: str, word: str, pm_id: int = 0, reason: str = "") -> corral.ProcessEvent:
    return corral.ProcessEvent(word, {"name": name, "pm_id": pm_id}, reason=reason)


def test_a_missed_event_names_what_was_recorded():
    recorder = EventRecorder()
    recorder.corral_process_event(event("web", "start"))
    recorder.corral_process_event(event("web", "exit"))
    with pytest.raises(AssertionError) as caught:
        recorder.wait("online", "web", timeout=0.05)
    assert str(caught.value) == (
        "no 'online' event for 'web' within 0.05 s; recorded: start web, exit web"
    )
    with pytest.raises(AssertionError, match=r"no #2 'exit' event for 'web'"):
        wait_for_event(recorder, "exit", "web", timeout=0.05, count=2)
    with pytest.raises(AssertionError, match="no message for 'web' within"):
        wait_for_message(recorder, "web", timeout=0.05)


def test_reason_and_since_narrow_the_match():
    recorder = EventRecorder()
    recorder.corral_process_event(event("job", "restart", reason="cron * * * * *"))
    mark = recorder.mark()
    recorder.corral_process_event(event("job", "restart", reason="memory 41M over 40M"))
    assert recorder.wait("restart", "job", reason="memory").reason.startswith("memory")
    assert recorder.matching("restart", since=mark)[0].reason.startswith("memory")
    assert len(recorder.matching("restart", "job")) == 2
    assert recorder.matching(reason="cron") == recorder.matching("restart", "job")[:1]


def test_wait_for_returns_the_value_or_fails_naming_it():
    calls = iter([None, 0, "done"])
    assert wait_for(lambda: next(calls), timeout=5) == "done"
    with pytest.raises(AssertionError, match=r"the app ready: not met within 0.02 s .*\[\]"):
        wait_for(list, timeout=0.02, what="the app ready")


def test_the_source_of_a_wait_needs_a_recorder():
    with pytest.raises(TypeError, match="corral_daemon fixture or an EventRecorder"):
        wait_for_event(object(), "online")


@pytest.mark.parametrize(
    "behaviours",
    [
        {},
        {"crash_after": 0},
        {"print_lines": 3, "allocate_mb": 1, "open_port": True, "ready": True},
    ],
)
def test_every_scripted_app_compiles(behaviours):
    compile(app_source(**behaviours), "app.py", "exec")


def test_a_scripted_app_exits_cleanly_on_sigint(corral_daemon, scripted_app):
    pm = corral_daemon()
    pm.start(scripted_app("quiet", print_lines=1), {"name": "quiet"})
    wait_for(lambda: output_lines(pm, "quiet") == ["line 1"], what="its handlers in place")
    pm.stop("quiet")
    assert pm.describe("quiet")[0].exit_code == 0
    assert Path(pm.describe("quiet")[0].err_log or "").read_text() == ""

"""The watchdog plugin: real children that beat on NOTIFY_SOCKET, then stop."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import pytest

import corral
import corral.child
from corral.plugins import watchdog
from corral.testing import wait_for, wait_for_event
from tests.conftest import PY, out_lines, python_app

# Beats every 0.1 s for argv[1] seconds, says when it stopped, then (argv[2] ==
# "trigger") asks to be ended, or hangs.
BEATER = """\
import os, sys, time
import corral.child as child
env = (os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID"), str(os.getpid()))
print("env", *env, child.watchdog_interval(), flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    child.heartbeat()
    time.sleep(0.1)
print(f"quiet {time.time()}", flush=True)
if sys.argv[2:] == ["trigger"]:
    child._sd_notify(os.environ["NOTIFY_SOCKET"], b"WATCHDOG=trigger")
time.sleep(3600)
"""


@pytest.fixture
def pm(corral_daemon: Callable[..., corral.Client]) -> corral.Client:
    return corral_daemon(plugins=[watchdog])


def beater(tmp_path, name: str, beats: float, *extra: str, timeout: str = "500ms") -> dict:
    return {
        "name": name,
        "script": python_app(tmp_path, f"{name}.py", BEATER),
        "exec_interpreter": PY,
        "args": [str(beats), *extra],
        "watchdog": timeout,
    }


def line_of(pm: corral.Client, name: str, prefix: str) -> str:
    def find() -> str | None:
        return next((x for x in out_lines(pm.describe(name)[0]) if x.startswith(prefix)), None)

    return str(wait_for(find, what=f"{name} printed {prefix!r}"))


def test_a_child_that_beats_stays_and_sees_systemd_variables(pm, tmp_path):
    (info,) = pm.start(beater(tmp_path, "steady", 3600))
    _, usec, owner, pid, interval = line_of(pm, "steady", "env").split()
    assert (usec, owner, pid) == ("500000", str(info.pid), str(info.pid))
    assert float(interval) == 0.5
    time.sleep(1.5)  # three timeouts' worth of beats
    (now,) = pm.describe("steady")
    assert now.pid == info.pid and now.restart_time == 0
    assert pm.call("watchdog")[str(info.pid)]["timeout"] == 0.5


def test_a_child_that_stops_beating_is_ended_and_restarted(pm, tmp_path):
    (info,) = pm.start(beater(tmp_path, "stalls", 0.5))
    quiet = float(line_of(pm, "stalls", "quiet").split()[1])
    event = wait_for_event(pm, "exit", "stalls", reason="watchdog")
    assert event.reason.startswith("watchdog: no WATCHDOG=1 within 0.5 s: killed by SIGINT")
    assert event.at / 1000 - quiet >= 0.4  # the last beat came up to 0.1 s before "quiet"
    new = wait_for(
        lambda: (i := pm.describe("stalls")[0]).pid not in (None, info.pid) and i,
        what="a new child",
    )
    assert new.restart_time == 1
    assert new.pm2_env["last_exit"]["reason"].startswith("watchdog")


def test_watchdog_trigger_ends_it_at_once(pm, tmp_path):
    pm.start(beater(tmp_path, "asks", 0.2, "trigger", timeout="30s"))
    quiet = float(line_of(pm, "asks", "quiet").split()[1])
    event = wait_for_event(pm, "exit", "asks", reason="watchdog: WATCHDOG=trigger")
    assert event.at / 1000 - quiet < 5  # not the 30 s timeout


def test_an_app_without_the_option_gets_no_variables(pm, tmp_path):
    app = beater(tmp_path, "plain", 0.1)
    del app["watchdog"]
    pm.start(app)
    assert line_of(pm, "plain", "env").split()[1:3] == ["None", "None"]
    time.sleep(0.5)
    assert pm.describe("plain")[0].restart_time == 0


@pytest.mark.skipif(shutil.which("node") is None, reason="no node here")
def test_a_node_app_beats_on_its_channel(pm, tmp_path):
    script = tmp_path / "beat.js"
    script.write_text(
        "let n = 0;\n"
        "const t = setInterval(() => {\n"
        "  process.send({type: 'corral:notify', data: 'WATCHDOG=1'});\n"
        "  if (++n === 5) { clearInterval(t); console.log('quiet'); }\n"
        "}, 100);\n"
        "setInterval(() => {}, 1 << 30);\n"
    )
    (info,) = pm.start({"name": "nodebeat", "script": str(script), "watchdog": "400ms"})
    line_of(pm, "nodebeat", "quiet")
    event = wait_for_event(pm, "exit", "nodebeat", reason="watchdog")
    assert event.at / 1000 - info.pm_uptime / 1000 >= 0.8  # 5 beats, then the timeout


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (50, "from 100 ms to a week"),
        (8 * 86_400_000, "from 100 ms to a week"),
        ("soon", "watchdog must be"),
    ],
)
def test_a_bad_timeout_is_refused(pm, tmp_path, value, words):
    with pytest.raises(corral.OptionError, match=words):
        pm.start({**beater(tmp_path, "bad", 1), "watchdog": value})
    assert pm.list() == []


def test_the_helpers_do_nothing_outside_a_watchdog(monkeypatch):
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CORRAL_CHANNEL_FD"):
        monkeypatch.delenv(name, raising=False)
    corral.child.heartbeat()  # no socket, no channel: nothing, no error
    assert corral.child.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    assert corral.child.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert corral.child.watchdog_interval() is None

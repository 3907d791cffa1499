"""The health plugin: real apps that answer, fail, or never listen, probed by its real thread."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import corral
from corral.plugins import health
from corral.testing import wait_for, wait_for_event
from tests.conftest import APPS, PY, out_lines, python_app, run_cli

# Serves /healthz on $HEALTH_PORT after $LISTEN_AFTER seconds: 500 while $SICK_FILE
# exists, else 200. With $SAY_READY it sends the ready message at once.
HEALTH_APP = """\
import http.server, os, sys, time
if os.environ.get("SAY_READY"):
    import corral.child
    corral.child.ready()
time.sleep(float(os.environ.get("LISTEN_AFTER", "0")))
sick = os.environ.get("SICK_FILE", "/nonexistent")

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500 if os.path.exists(sick) else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", int(os.environ["HEALTH_PORT"])), Handler)
print(f"listening {time.time()}", flush=True)
server.serve_forever()
"""


@pytest.fixture
def pm(corral_daemon: Callable[..., corral.Client]) -> corral.Client:
    return corral_daemon(plugins=[health])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web(tmp_path: Path, name: str, port: int, check: dict | list, **env: str) -> dict:
    return {
        "name": name,
        "script": python_app(tmp_path, f"{name}.py", HEALTH_APP),
        "exec_interpreter": PY,
        "env": {"HEALTH_PORT": str(port), **env},
        "health": check,
    }


def status_of(pm: corral.Client, name: str) -> dict:
    return pm.describe(name)[0].pm2_env.get("health_status") or {}


def listened_at(pm: corral.Client, name: str) -> float:
    def find() -> str | None:
        lines = out_lines(pm.describe(name)[0])
        return next((x for x in lines if x.startswith("listening")), None)

    return float(wait_for(find, what=f"{name} listening").split()[1])


FAST = {"interval": 100, "timeout": 100}


# -- readiness -------------------------------------------------------------------


def test_a_child_is_ready_only_once_its_check_passes(pm, tmp_path):
    port = free_port()
    check = {"http": "http://127.0.0.1:${HEALTH_PORT}/healthz", **FAST, "failure_threshold": 30}
    (info,) = pm.start(web(tmp_path, "slowweb", port, check, LISTEN_AFTER="0.8"))
    assert info.status == "online"  # PM2's status: online at the spawn, without wait_ready
    assert not info.ready
    ready = wait_for(lambda: (i := pm.describe("slowweb")[0]).ready and i, what="ready")
    assert ready.ready_by == "spawned and health"
    assert ready.ready_at / 1000 >= listened_at(pm, "slowweb")
    assert status_of(pm, "slowweb")["status"] == "healthy"
    assert status_of(pm, "slowweb")["check"] == f"http http://127.0.0.1:{port}/healthz"


def test_wait_ready_waits_for_the_message_and_the_check(pm, tmp_path):
    port = free_port()
    check = {"http": f"http://127.0.0.1:{port}/", **FAST, "failure_threshold": 30}
    app = web(tmp_path, "both", port, check, LISTEN_AFTER="0.7", SAY_READY="1")
    began = time.time()
    (info,) = pm.start({**app, "wait_ready": True})
    assert info.status == "online" and info.ready  # the reply came once both were there
    assert info.ready_by == "ready message and health"
    assert info.ready_at / 1000 >= listened_at(pm, "both") > began


def test_a_check_that_never_passes_holds_readiness_to_its_bound(pm, tmp_path):
    port = free_port()  # nothing listens there
    check = {"tcp": f"127.0.0.1:{port}", **FAST, "failure_threshold": 5, "role": "readiness"}
    app = {
        "name": "deaf",
        "script": python_app(tmp_path, "deaf.py", "import time\ntime.sleep(3600)\n"),
        "exec_interpreter": PY,
        "health": check,
        "listen_timeout": 200,  # shorter than the check's bound, 5 x 100 ms: the bound wins
        "wait_ready": True,
    }
    began = time.monotonic()
    (info,) = pm.start(app)
    waited = time.monotonic() - began
    assert not info.ready and info.ready_by == "listen_timeout"
    assert waited >= 0.5
    assert info.restart_time == 0  # a readiness check never restarts
    assert status_of(pm, "deaf")["status"] == "unhealthy"


# -- liveness ---------------------------------------------------------------------


def test_failing_liveness_ends_the_child_and_the_policy_restarts_it(pm, tmp_path):
    port, sick = free_port(), tmp_path / "sick"
    # initial_delay: a liveness check must not fail a child still starting
    check = {
        "http": f"http://127.0.0.1:{port}/healthz",
        **FAST,
        "failure_threshold": 2,
        "initial_delay": 500,
    }
    (info,) = pm.start(web(tmp_path, "flaky", port, check, SICK_FILE=str(sick)))
    wait_for(lambda: status_of(pm, "flaky").get("status") == "healthy", what="healthy")
    sick.touch()
    event = wait_for_event(pm, "exit", "flaky", reason="health check failed")
    assert event.reason.startswith(
        f"health check failed 2 times in a row (failure_threshold 2): "
        f"http http://127.0.0.1:{port}/healthz: status 500"
    )
    assert "killed by SIGINT" in event.reason
    wait_for_event(pm, "unhealthy", "flaky")
    sick.unlink()
    new = wait_for(
        lambda: (i := pm.describe("flaky")[0]).pid not in (None, info.pid) and i.ready and i,
        what="a new child, ready",
    )
    assert new.restart_time >= 1
    assert status_of(pm, "flaky")["status"] == "healthy"
    assert new.pm2_env["last_exit"]["reason"].startswith("health check failed 2 times")
    assert new.pm2_env["last_exit"]["signal"] == "SIGINT"


def test_failing_liveness_with_autorestart_off_stops_the_app(pm, tmp_path):
    port, sick = free_port(), tmp_path / "sick"
    sick.touch()
    check = {"http": f"http://127.0.0.1:{port}/", **FAST, "failure_threshold": 2}
    check["initial_delay"] = 500
    app = web(tmp_path, "once", port, check, SICK_FILE=str(sick))
    pm.start({**app, "autorestart": False})
    wait_for_event(pm, "exit", "once", reason="health check failed")
    stopped = wait_for(
        lambda: (i := pm.describe("once")[0]).status == "stopped" and i, what="stopped"
    )
    assert stopped.restart_time == 0
    assert stopped.pid is None


def test_a_readiness_only_check_never_restarts(pm, tmp_path):
    port, sick = free_port(), tmp_path / "sick"
    check = {"http": f"http://127.0.0.1:{port}/", **FAST, "role": "readiness"}
    (info,) = pm.start(web(tmp_path, "ro", port, check, SICK_FILE=str(sick)))
    wait_for(lambda: pm.describe("ro")[0].ready, what="ready")
    sick.touch()
    wait_for(lambda: status_of(pm, "ro").get("failures", 0) >= 5, what="five failures")
    (now,) = pm.describe("ro")
    assert now.pid == info.pid and now.restart_time == 0


def test_an_exec_check_sees_the_app_environment_and_cwd(pm, tmp_path):
    (tmp_path / "work").mkdir()
    marker = tmp_path / "work" / "alive"
    check = {"exec": 'test "$FLAVOUR" = mint -a -e alive', **FAST, "failure_threshold": 2}
    app = {
        "name": "ex",
        "script": python_app(tmp_path, "ex.py", "import time\ntime.sleep(3600)\n"),
        "exec_interpreter": PY,
        "cwd": str(tmp_path / "work"),
        "env": {"FLAVOUR": "mint"},
        "health": check,
    }
    marker.touch()
    pm.start(app)
    wait_for(lambda: status_of(pm, "ex").get("status") == "healthy", what="healthy")
    marker.unlink()
    event = wait_for_event(pm, "exit", "ex", reason="health check failed")
    assert 'exec test "$FLAVOUR" = mint -a -e alive: exit 1' in event.reason


def test_a_hung_exec_check_is_cut_at_its_timeout(pm, tmp_path):
    pids = tmp_path / "pids"
    check = {"exec": f"sh -c 'echo $$ >> {pids}; exec sleep 30'", "interval": 300, "timeout": 200}
    app = {
        "name": "hung",
        "script": python_app(tmp_path, "hung.py", "import time\ntime.sleep(3600)\n"),
        "exec_interpreter": PY,
        "health": {**check, "failure_threshold": 100},
    }
    pm.start(app)
    wait_for(lambda: status_of(pm, "hung").get("failures", 0) >= 2, what="two timeouts")
    assert "no answer within the timeout (200 ms)" in status_of(pm, "hung")["last"]
    for pid in map(int, pids.read_text().split()[:-1]):  # the one running now may stay
        assert (
            not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
        )


def test_checks_stop_with_the_app(pm, tmp_path):
    port = free_port()
    check = {"http": f"http://127.0.0.1:{port}/", **FAST}
    pm.start(web(tmp_path, "gone", port, check))
    wait_for(lambda: pm.call("health").get("0"), what="a check running")
    pm.stop("gone")
    wait_for(lambda: pm.call("health") == {}, what="no check left")
    assert "health_status" not in pm.describe("gone")[0].pm2_env
    pm.delete("gone")
    assert pm.call("health") == {}


def test_a_missing_variable_is_said_and_holds_readiness(pm, tmp_path):
    check = {"http": "http://127.0.0.1:${NO_SUCH_PORT}/", **FAST, "failure_threshold": 2}
    app = {
        "name": "novar",
        "script": python_app(tmp_path, "novar.py", "import time\ntime.sleep(3600)\n"),
        "exec_interpreter": PY,
        "health": check,
        "wait_ready": True,
        "listen_timeout": 100,
    }
    (info,) = pm.start(app)
    assert not info.ready
    shown = status_of(pm, "novar")
    assert shown["status"] == "unknown"
    assert "no variable NO_SUCH_PORT" in shown["check"]


# -- the option ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "words"),
    [
        ({}, "give exactly one of http, tcp, exec"),
        ({"http": "http://x/", "tcp": "1"}, "give exactly one of http, tcp, exec"),
        ({"http": "https://127.0.0.1/"}, "must be an http:// URL"),
        ({"tcp": "127.0.0.1:99999"}, "port from 1 to 65535"),
        ({"tcp": 80, "interval": "1s", "timeout": "2s"}, "at most the interval"),
        ({"tcp": 80, "interval": 200, "timeout": 0}, "must be above 0"),
        ({"tcp": 80, "failure_threshold": 0}, "failure_threshold: must be a whole number"),
        ({"tcp": 80, "role": "startup"}, "role: must be one of both, liveness, readiness"),
        ({"tcp": 80, "period": 5}, "unknown key 'period'"),
        ({"tcp": 80, "interval": "soon"}, "health.interval must be"),
        ([{"tcp": 80}, {"http": "http://a/", "role": "liveness"}], "two checks have the role"),
        ("http://127.0.0.1/", "must be a mapping"),
        ({"exec": []}, "command line or a list of strings"),
        ({"exec": "  "}, "command line or a list of strings"),
        ({"tcp": 80, "failure_threshold": 10**23}, "from 1 to 10000"),
        ({"tcp": 80, "interval": "2d"}, "health.interval must be"),
        ({"tcp": 80, "interval": 10 * 86_400_000}, "at most a day"),
    ],
)
def test_a_bad_check_is_refused_and_nothing_starts(pm, tmp_path, check, words):
    app = {
        "name": "bad",
        "script": python_app(tmp_path, "bad.py", "import time\ntime.sleep(3600)\n"),
        "exec_interpreter": PY,
        "health": check,
    }
    with pytest.raises(corral.OptionError, match="health") as caught:
        pm.start(app)
    assert words in str(caught.value)
    assert pm.list() == []


def test_without_the_plugin_the_key_names_it(corral_daemon, tmp_path):
    pm = corral_daemon(plugins=[])
    app = {
        "name": "x",
        "script": python_app(tmp_path, "x.py", "import time\ntime.sleep(3600)\n"),
        "exec_interpreter": PY,
        "health": {"tcp": 80},
    }
    with pytest.raises(corral.PluginError, match="health needs the plugin 'health'"):
        pm.start(app)
    assert pm.list() == []


# -- reloads --------------------------------------------------------------------------


def cluster_web(pm: corral.Client, tmp_path: Path, port: int) -> list[corral.ProcessInfo]:
    check = {"exec": "test ! -e sick", **FAST, "failure_threshold": 3, "role": "readiness"}
    return pm.start(
        str(APPS / "web.py"),
        {
            "name": "cweb",
            "exec_mode": "cluster",
            "instances": 2,
            "listen": f"127.0.0.1:{port}",
            "cwd": str(tmp_path),
            "listen_timeout": 200,  # shorter than the check's bound (3 x 100 ms)
            "health": check,
        },
    )


def test_a_rolling_reload_waits_for_the_check_and_rolls_back_without_it(pm, tmp_path):
    port = free_port()
    apps = cluster_web(pm, tmp_path, port)
    wait_for(lambda: all(a.ready for a in pm.describe("cweb")), what="both ready")
    old = {a.pid for a in apps}
    (tmp_path / "sick").touch()
    began = time.monotonic()
    with pytest.raises(corral.StateError, match=r"not ready within 0.3 s \(health not passed\)"):
        pm.reload("cweb")
    assert time.monotonic() - began >= 0.3
    now = pm.describe("cweb")
    assert {a.pid for a in now} == old and [a.status for a in now] == ["online"] * 2
    (tmp_path / "sick").unlink()
    pm.reload("cweb")
    new = pm.describe("cweb")
    assert not {a.pid for a in new} & old
    assert all(a.ready and a.ready_by == "ready message and health" for a in new)


def test_ls_and_describe_show_the_health(pm, tmp_path):
    port = free_port()
    check = {"http": f"http://127.0.0.1:{port}/", **FAST}
    pm.start(web(tmp_path, "shown", port, check))
    wait_for(lambda: status_of(pm, "shown").get("status") == "healthy", what="healthy")
    table = run_cli("ls").stdout
    header = next(line for line in table.splitlines() if "│ id" in line)
    assert [c.strip() for c in header.strip("│").split("│")][7:9] == ["status", "health"]
    assert "│ healthy │" in table
    described = run_cli("describe", "shown").stdout.splitlines()
    row = next(line for line in described if line.startswith("│ health "))
    assert f" healthy (http http://127.0.0.1:{port}/: 200 OK, " in row


@pytest.mark.skipif(os.geteuid() != 0, reason="runs an app as another user: root only")
def test_an_exec_check_runs_as_the_app_user(app_user, pm, shared_dir):
    import pwd

    uid = pwd.getpwnam(app_user).pw_uid
    os.chown(shared_dir, uid, -1)
    app = {
        "name": "asuser",
        "script": "/bin/sleep",
        "args": ["3600"],
        "exec_interpreter": "none",
        "uid": app_user,
        "cwd": str(shared_dir),
        "health": {"exec": "id -u >> seen; id -G >> seen", **FAST},
    }
    pm.start(app)
    seen = shared_dir / "seen"
    wait_for(lambda: seen.exists() and len(seen.read_text().split("\n")) > 4, what="two checks")
    lines = seen.read_text().splitlines()
    assert set(lines[0::2]) == {str(uid)}
    assert "0" not in " ".join(lines[1::2]).split()  # not root's group either
    assert seen.stat().st_uid == uid


def test_the_cli_reads_a_check_and_a_port_alone(pm, tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_PLUGINS", "health")  # the CLI's --health flag
    port = free_port()
    script = python_app(tmp_path, "cliweb.py", HEALTH_APP)
    flags = ["--interpreter", PY, "--no-wait", "--env", f"HEALTH_PORT={port}"]
    run_cli(
        "start", script, "--name", "cliweb", *flags, "--health", f'{{tcp: "{port}", interval: 100}}'
    )
    wait_for(lambda: status_of(pm, "cliweb").get("status") == "healthy", what="healthy")
    assert status_of(pm, "cliweb")["check"] == f"tcp 127.0.0.1:{port}"
    refused = run_cli("start", script, "--name", "x", "--health", "{tcp: ", check=False)
    assert refused.returncode != 0 and "cannot read '{tcp: '" in refused.stderr

"""A start that fails says so (issue 12, point 2).

``corral start`` watches the new instances for ``min_uptime``: each one that exits
is named with the telling line of its error log and the fix, and the command
exits 1 when no instance of an app stayed up. ``start()`` returns at once as
PM2's does; ``start(wait=True)`` and ``wait_started()`` give the same verdict.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corral
from corral.client.verdict import StartFailed
from tests.conftest import python_app

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

CRASHER = """
import sys
print("starting", flush=True)
print("loading settings", file=sys.stderr, flush=True)
raise RuntimeError("database at db.invalid:5432 is unreachable")
"""

SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(600)\n"

# a node app as PM2 users write it: listen on a fixed port
NODE_WEB = """
const http = require('http');
http.createServer((req, res) => res.end(`${process.pid}\\n`)).listen(Number(process.argv[2]));
"""


def corral_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> tuple:
    """Run `corral ARGS` as a user would: (exit code, stdout, stderr, seconds)."""
    begun = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )
    return result.returncode, result.stdout, result.stderr, time.monotonic() - begun


@pytest.fixture
def crasher(tmp_path):
    return python_app(tmp_path, "crasher.py", CRASHER)


@pytest.fixture
def sleeper(tmp_path):
    return python_app(tmp_path, "sleeper.py", SLEEPER)


@pytest.fixture
def held_port():
    """A port this test holds, so an app that binds it gets EADDRINUSE."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def cli_home(corral_home):
    """corral_home, with the daemon the CLI started killed at the end (corral_home's
    teardown ends it too: this is for its apps' crash loops to stop first)."""
    yield corral_home
    subprocess.run([sys.executable, "-m", "corral", "kill"], capture_output=True, timeout=60)


# -- the CLI ---------------------------------------------------------------------


def test_a_start_whose_app_dies_exits_1_naming_it_and_its_error(cli_home, crasher):
    code, out, err, _ = corral_cli("start", crasher, "--name", "api")
    assert code == 1, (out, err)
    assert "api (pm_id 0) exited within min_uptime" in err
    assert "last error: RuntimeError: database at db.invalid:5432 is unreachable" in err
    assert "fix: see `corral logs api --err`" in err
    assert "error: no instance of api stayed up" in err
    assert "│ api" in out  # the table is still printed


def test_no_wait_returns_at_once_and_exits_0(cli_home, crasher, sleeper):
    code, out, err, _ = corral_cli("start", crasher, "--name", "api", "--no-wait")
    assert code == 0, (out, err)
    assert "exited" not in err
    # a healthy app is watched for its whole min_uptime without --no-wait, not with it
    code, _, err, waited = corral_cli("start", sleeper, "--name", "calm", "--min-uptime", "4000")
    assert code == 0 and err == "", err
    code, _, err, quick = corral_cli(
        "start", sleeper, "--name", "calm2", "--min-uptime", "4000", "--no-wait"
    )
    assert code == 0 and err == "", err
    assert waited >= 3.9 and quick < waited - 2, (waited, quick)


@needs_node
def test_a_node_app_on_a_taken_port_gets_the_cluster_listen_port_hint(
    cli_home, tmp_path, held_port
):
    web = python_app(tmp_path, "web.js", NODE_WEB)
    code, out, err, _ = corral_cli("start", web, "--name", "web", "--", str(held_port))
    assert code == 1, (out, err)
    assert "web (pm_id 0) exited within min_uptime" in err
    assert f"last error: Error: listen EADDRINUSE: address already in use :::{held_port}" in err
    assert "exec_mode cluster (-x cluster" in err
    assert f"listen (--listen :{held_port})" in err and f"--port {held_port}" in err


@needs_node
def test_fork_instances_on_one_port_name_the_ones_that_died_and_exit_0(cli_home, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = python_app(tmp_path, "web.js", NODE_WEB)
    args = ("start", web, "--name", "web", "-i", "2", "-x", "fork", "--", str(port))
    code, out, err, _ = corral_cli(*args)
    assert code == 0, (out, err)  # one instance serves: the app is up
    # one of the two binds first; the other one collides
    assert err.count("exited within min_uptime") == 1, err
    assert "warning: web (pm_id " in err and "EADDRINUSE" in err
    assert "no instance" not in err


# -- the API -----------------------------------------------------------------------


def test_the_api_start_returns_at_once_and_wait_gives_the_verdict(pm, crasher, sleeper):
    begun = time.monotonic()
    infos = pm.start(crasher, {"name": "api", "min_uptime": 5000})
    assert time.monotonic() - begun < 2.5  # PM2's start: spawned, not watched
    verdict = pm.wait_started(infos)
    assert not verdict.ok and verdict.down == ["api"]
    (exited,) = verdict.exited
    assert (exited.name, exited.pm_id) == ("api", 0)
    assert exited.error_line == "RuntimeError: database at db.invalid:5432 is unreachable"

    pm.delete("api")
    with pytest.raises(StartFailed, match=r"api \(pm_id \d+\) exited within min_uptime") as caught:
        pm.start(crasher, {"name": "api"}, wait=True)
    assert caught.value.verdict.down == ["api"]
    assert isinstance(caught.value, corral.StateError) and corral.StartFailed is StartFailed

    begun = time.monotonic()
    (calm,) = pm.start(sleeper, {"name": "calm", "min_uptime": 1500}, wait=True)
    assert time.monotonic() - begun >= 1.4  # watched for its min_uptime
    assert calm.status == "online" and calm.restart_time == 0


def test_an_app_that_finishes_cleanly_is_no_failure(pm, tmp_path):
    done = python_app(tmp_path, "done.py", "print('done')\n")
    verdict = pm.wait_started(pm.start(done, {"name": "once", "autorestart": False}))
    assert verdict.ok
    assert [(e.name, e.finished) for e in verdict.exited] == [("once", True)]


def test_the_async_client_waits_too(corral_home, crasher):
    async def run() -> None:
        client = await corral.AsyncClient.connect()
        try:
            with pytest.raises(StartFailed, match=r"database at db\.invalid"):
                await client.start(crasher, {"name": "api"}, wait=True)
        finally:
            await client.kill_daemon()

    asyncio.run(run())


def test_an_exit_code_the_app_declares_a_stop_is_no_failure(pm, tmp_path):
    """stop_exit_codes says which exits end the app on purpose (PM2's
    test/e2e/cli/reload.sh starts such an app and expects success)."""
    done = python_app(tmp_path, "done42.py", "raise SystemExit(42)\n")
    verdict = pm.wait_started(pm.start(done, {"name": "once42", "stop_exit_codes": [42]}))
    assert verdict.ok
    assert [(e.name, e.finished) for e in verdict.exited] == [("once42", True)]

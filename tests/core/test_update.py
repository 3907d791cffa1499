"""Safe upgrades: ping tells which corral the daemon runs, a client of another corral
warns once, and `corral update` brings the daemon to the installed code with every
app back under its pm_id (tests run real installs: a copy of the package on
PYTHONPATH, with its own __version__)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import corral
from corral.testing import wait_for
from tests.core.test_node_cluster_accept import listening_flags

ROOT = Path(__file__).resolve().parents[2]


def install_copy(dest: Path, version: str) -> Path:
    """A corral package in ``dest/corral`` (with its plugins) whose __version__ is ``version``;
    returns ``dest``, the PYTHONPATH entry that runs it."""
    package = dest / "corral"
    shutil.copytree(ROOT / "core", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "plugins", package / "plugins", ignore=shutil.ignore_patterns("__pycache__")
    )
    init = package / "__init__.py"
    text = init.read_text()
    init.write_text(
        text.replace(f'__version__ = "{corral.__version__}"', f'__version__ = "{version}"')
    )
    return dest


def run_cli(home: Path, *args: str, pythonpath: Path | None = None, timeout: float = 60):
    env = dict(os.environ, CORRAL_HOME=str(home))
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=env,
        cwd=str(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ping_shows_version_and_install_path(corral_home: Path) -> None:
    done = run_cli(corral_home, "ping", "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["version"] == corral.__version__
    assert reply["install_path"] == os.path.realpath(Path(corral.__file__).parent)
    assert reply["python"] == sys.executable
    assert done.stderr == ""  # the same corral: no warning
    text = run_cli(corral_home, "ping")
    assert f"corral {corral.__version__} from {reply['install_path']}" in text.stdout


def test_a_client_of_another_corral_warns_once(corral_home: Path, tmp_path: Path) -> None:
    other = install_copy(tmp_path / "other", "9.9.9")
    started = run_cli(corral_home, "ping", pythonpath=other)  # the daemon runs 9.9.9
    assert started.returncode == 0, started.stderr
    assert "corral 9.9.9 from" in started.stdout
    for args in (("ls",), ("ping",), ("ping", "--json")):
        done = run_cli(corral_home, *args)  # this checkout's corral
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if "corral update" in line]
        assert lines == [
            f"warning: the daemon runs corral 9.9.9 from {other / 'corral'}, this is corral "
            f"{corral.__version__} from {os.path.realpath(Path(corral.__file__).parent)}: "
            "run `corral update`"
        ], (args, done.stderr)
    assert "corral update" not in run_cli(corral_home, "ls", pythonpath=other).stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    except OSError:
        return None


def jlist(home: Path, pythonpath: Path | None = None) -> list[dict]:
    done = run_cli(home, "jlist", pythonpath=pythonpath)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def serving(home: Path, name: str, count: int, port: int, pythonpath: Path | None = None):
    """The app's instances once all are online and ready and the port answers."""
    procs = [p for p in jlist(home, pythonpath) if p["name"] == name]
    ready = all(p["pm2_env"]["status"] == "online" and p["pm2_env"].get("ready") for p in procs)
    if len(procs) == count and ready and get(port):
        return procs
    return None


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def start_web_cluster(home: Path, install: Path) -> tuple[int, list[dict]]:
    """Two node cluster instances ``web`` on a free port, started by the corral of
    ``install``; the port, and the instances once both serve."""
    port = free_port()
    app = ROOT / "tests" / "apps" / "plain_listen.js"
    started = run_cli(
        home,
        *("start", str(app), "--name", "web", "-i", "2", "--env", f"APP_PORT={port}"),
        pythonpath=install,
    )
    assert started.returncode == 0, started.stderr
    return port, wait_for(lambda: serving(home, "web", 2, port, install), timeout=30)


def test_a_node_cluster_outlives_its_install_and_update_brings_it_back(
    corral_home: Path, tmp_path: Path
) -> None:
    old = install_copy(tmp_path / "old", "0.0.1")
    port, procs = start_web_cluster(corral_home, old)
    assert procs, jlist(corral_home, old)
    shutil.rmtree(old / "corral")  # the install is replaced under the running daemon
    # with its install gone, the old daemon still restarts a cluster instance: its
    # preload is the daemon's own copy (before, `Cannot find module .../preload.js`)
    first = procs[0]
    os.kill(first["pid"], 9)
    wait_for(
        lambda: [
            p
            for p in jlist(corral_home)
            if p["pm_id"] == first["pm_id"]
            and p["pid"] != first["pid"]
            and p["pm2_env"]["status"] == "online"
        ],
        timeout=20,
    )
    procs = wait_for(lambda: serving(corral_home, "web", 2, port), timeout=30)
    assert procs, jlist(corral_home)
    again = next(p for p in procs if p["pm_id"] == first["pm_id"])
    assert again["pm2_env"].get("ready_by") == "listening", again["pm2_env"]
    install_copy(tmp_path / "new", "0.0.2")
    shutil.copytree(tmp_path / "new" / "corral", old / "corral")  # reinstalled: a new version
    counts = {p["pm_id"]: p["pm2_env"]["restart_time"] for p in procs}
    pids = {p["pm_id"]: p["pid"] for p in procs}
    daemon_pid = json.loads(run_cli(corral_home, "ping", "--json").stdout)["pid"]
    assert "corral update" in run_cli(corral_home, "ls").stderr  # the daemon runs 0.0.1

    done = run_cli(corral_home, "update")  # this checkout's corral takes over, in place
    assert done.returncode == 0, done.stderr
    assert "kept running: web (2 instances)" in done.stdout, done.stdout
    after = wait_for(lambda: serving(corral_home, "web", 2, port), timeout=30)
    assert after, jlist(corral_home)
    assert {p["pm_id"]: p["pid"] for p in after} == pids  # the same processes
    assert {p["pm_id"]: p["pm2_env"]["restart_time"] for p in after} == counts
    # the new image watches them: an instance that dies is restarted under its pm_id,
    # on the port the old image bound (the listening socket was handed over too)
    os.kill(pids[first["pm_id"]], 9)
    again = wait_for(
        lambda: [
            p
            for p in (serving(corral_home, "web", 2, port) or [])
            if p["pm_id"] == first["pm_id"] and p["pid"] != pids[first["pm_id"]]
        ],
        timeout=30,
    )
    assert again and again[0]["pm2_env"]["restart_time"] == counts[first["pm_id"]] + 1
    log = (corral_home / "logs" / f"web-out-{first['pm_id']}.log").read_text()
    assert log.count(f"listening on {port}") == 3  # the new image reads its pipes: 3 runs
    reply = json.loads(run_cli(corral_home, "ping", "--json").stdout)
    assert reply["pid"] == daemon_pid  # re-executed in place
    reply = json.loads(run_cli(corral_home, "ping", "--json").stdout)
    assert reply["version"] == corral.__version__
    assert reply["install_path"] == os.path.realpath(Path(corral.__file__).parent)
    assert run_cli(corral_home, "ls").stderr == ""  # no warning any more


def test_an_update_that_cannot_hand_over_restarts_the_apps_and_says_so(
    corral_home: Path, tmp_path: Path
) -> None:
    """An app still waiting for its ready signal has no child that could be handed over
    as it is: the update restarts it (PM2's way), under its pm_id, and says why."""
    app = tmp_path / "slow_ready.py"
    app.write_text("import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(1)\n")
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    env.pop("PYTHONPATH", None)
    flags = ["--name", "slow", "--wait-ready", "--listen-timeout", "60000"]
    starting = subprocess.Popen(  # its start waits for the ready signal: left waiting
        [sys.executable, "-m", "corral", "start", str(app), *flags],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        before = wait_for(
            lambda: [
                p for p in jlist(corral_home) if p["pid"] and p["pm2_env"]["status"] == "launching"
            ],
            timeout=20,
        )
        assert before
        check_restarted(corral_home, before)
    finally:
        starting.kill()
        starting.wait()


def check_restarted(corral_home: Path, before: list[dict]) -> None:
    done = run_cli(corral_home, "update", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["handover"] == "restart"
    assert "slow (pm_id 0)" in result["why_restarted"]
    assert [(a["pm_id"], a["how"]) for a in result["apps"]] == [(0, "restarted")]
    assert result["daemon"]["pid"] != result["previous"]["pid"]
    after = wait_for(lambda: [p for p in jlist(corral_home) if p["pid"]], timeout=20)
    assert after[0]["pm_id"] == 0 and after[0]["pid"] != before[0]["pid"]
    text = run_cli(corral_home, "update")  # still waiting for its ready signal
    assert "restarted: slow" in text.stdout and "no handover in place" in text.stdout


def test_a_new_image_that_fails_to_take_over_restarts_the_apps(
    corral_home: Path, tmp_path: Path
) -> None:
    """The installed corral's take-over breaks (a copy whose adopt() raises): the apps
    are not lost, they are restarted under their pm_ids."""
    broken = install_copy(tmp_path / "broken", corral.__version__)
    adoption = broken / "corral" / "daemon" / "adoption.py"
    text = adoption.read_text()
    broken_text = text.replace(
        '    """The new image takes over what the old one ran',
        '    raise RuntimeError("broken take-over")\n    """The new image',
    )
    assert broken_text != text
    adoption.write_text(broken_text)
    app = tmp_path / "loop.py"
    app.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    assert run_cli(corral_home, "start", str(app), "--name", "loop", "-i", "2").returncode == 0
    before = wait_for(
        lambda: [p for p in jlist(corral_home) if p["pid"]][1:] and jlist(corral_home)
    )
    done = run_cli(corral_home, "update", "--json", pythonpath=broken)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [(a["pm_id"], a["how"]) for a in result["apps"]] == [(0, "restarted"), (1, "restarted")]
    after = wait_for(lambda: [p for p in jlist(corral_home) if p["pid"]][1:] and jlist(corral_home))
    assert {p["pm_id"] for p in after} == {0, 1}
    assert all(p["pid"] not in {b["pid"] for b in before} for p in after)
    for pid in (b["pid"] for b in before):  # the handed-over children were ended
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    log = (corral_home / "corral.log").read_text()
    assert "handover failed: restarting the apps" in log and "broken take-over" in log


def test_a_handed_over_app_still_reads_the_lines_sent_to_its_stdin(
    corral_home: Path, tmp_path: Path
) -> None:
    """`corral send` after an in-place update reaches the same process: the daemon's
    write end of each child's stdin crosses the re-exec with the output pipes."""
    echo = tmp_path / "echo.py"
    echo.write_text(
        "import sys\nprint('up', flush=True)\n"
        "for line in sys.stdin:\n    print('got:', line.strip(), flush=True)\n"
    )
    started = run_cli(corral_home, "start", str(echo), "--name", "echo")
    assert started.returncode == 0, started.stderr
    [before] = jlist(corral_home)
    updated = run_cli(corral_home, "update", timeout=120)
    assert updated.returncode == 0, updated.stderr
    assert "kept running: echo" in updated.stdout
    [after] = jlist(corral_home)
    assert after["pid"] == before["pid"]
    sent = run_cli(corral_home, "send", "0", "hello", "after", "update")
    assert sent.returncode == 0, sent.stderr
    out = Path(after["pm2_env"]["pm_out_log_path"])
    wait_for(lambda: "got: hello after update" in out.read_text(), timeout=10)


def test_the_daemon_still_starts_under_its_first_module_name(corral_home: Path) -> None:
    # a daemon of the corral before the subpackages hands over with
    # `python -m corral.daemon_main` once the new corral is installed
    daemon = subprocess.Popen(
        [sys.executable, "-m", "corral.daemon_main"],
        env={**os.environ, "CORRAL_HOME": str(corral_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = wait_for(lambda: _answering(corral_home), what="the daemon's first ping")
        assert client.ping()["pid"] == daemon.pid
        client.kill_daemon()
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _answering(home: Path) -> corral.Client | None:
    from corral.client.connection import running_client  # deferred: one test's helper

    return running_client(home)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_an_update_makes_a_handed_over_cluster_socket_non_blocking(
    corral_home: Path, tmp_path: Path
) -> None:
    """A corral from before the fix bound the shared cluster socket blocking (an instance
    that lost the race for a connection blocked in accept, its keep-alive requests
    unanswered); the image that takes it over at ``corral update`` makes it non-blocking,
    under the instances that keep running."""
    old = install_copy(tmp_path / "old", "0.0.1")
    share = old / "corral" / "supervisor" / "cluster_share.py"
    text = share.read_text()
    blocking = text.replace("            sock.setblocking(False)\n", "")
    assert blocking != text
    share.write_text(blocking)
    port, procs = start_web_cluster(corral_home, old)
    assert not any(listening_flags(p["pid"], port) & os.O_NONBLOCK for p in procs)

    done = run_cli(corral_home, "update")  # this checkout's corral takes over, in place
    assert done.returncode == 0, done.stderr
    after = wait_for(lambda: serving(corral_home, "web", 2, port), timeout=30)
    assert {p["pid"] for p in after} == {p["pid"] for p in procs}  # the same instances
    for proc in after:
        assert listening_flags(proc["pid"], port) & os.O_NONBLOCK, proc["pid"]

"""``corral runtime`` as a container runs it: PID 1 of its own pid namespace
(``unshare --pid --fork --mount-proc``), its output read from its stdout and stderr,
stopped by the signals ``docker stop`` sends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from corral.testing import wait_for
from tests.conftest import python_app, run_cli

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a pid namespace needs root and unshare",
)

# the apps these tests run: the ones that stay up say goodbye on their stop signal
SERVER = """\
import os, signal, sys, time
def bye(*_):
    print(f"bye {os.environ.get('NODE_APP_INSTANCE')}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, bye)
print(f"hello {os.environ.get('NODE_APP_INSTANCE')}", flush=True)
print("a warning", file=sys.stderr, flush=True)
while True:
    time.sleep(1)
"""
# forks a grandchild that outlives its parent (an orphan, PID 1's to reap): it says
# so in a file, lives a second more, then exits
ORPHANS = """\
import os, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(0.3)
        open(sys.argv[1], "w").write("orphaned")
        time.sleep(1)
        os._exit(0)
    os._exit(0)
while True:
    time.sleep(1)
"""
# many lines as fast as it can, then more on its stop signal
CHATTY = """\
import signal, sys, time
def bye(*_):
    for n in range(1000):
        print(f"late {n}")
    sys.stdout.flush()
    sys.exit(0)
signal.signal(signal.SIGINT, bye)
for n in range(20000):
    print(f"line {n}")
sys.stdout.flush()
print("all written", flush=True)
while True:
    time.sleep(1)
"""


class Container:
    """``corral runtime ARGS`` as PID 1 of a new pid namespace."""

    def __init__(
        self, tmp_path: Path, *args: str, plugins: str = "runtime", bare: bool = False
    ) -> None:
        """``bare``: no cgroupfs in the container (the host's unmounted in its namespace)."""
        self.out_path, self.err_path = tmp_path / "stdout", tmp_path / "stderr"
        env = {**os.environ, "CORRAL_PLUGINS": plugins}
        command = [sys.executable, "-m", "corral", "runtime", *args]
        if bare:
            hide = 'umount -R -l /sys/fs/cgroup && exec "$@"'
            command = ["sh", "-c", hide, "sh", *command]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.unshare = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount", "--mount-proc", *command],
                stdout=out,
                stderr=err,
                env=env,
                cwd=tmp_path,
            )
        self.init = wait_for(self._init, what="the namespace's PID 1")

    def _init(self) -> psutil.Process | None:
        children = psutil.Process(self.unshare.pid).children()
        return children[0] if children else None

    def signal(self, sig: int) -> None:
        self.init.send_signal(sig)  # what `docker stop` and `docker kill -s` do

    def wait(self, timeout: float = 30) -> int:
        return self.unshare.wait(timeout)

    def out(self) -> str:
        return self.out_path.read_text()

    def err(self) -> str:
        return self.err_path.read_text()

    def descendants(self) -> list[psutil.Process]:
        try:
            return self.init.children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def config(tmp_path: Path, *apps: dict) -> str:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps({"apps": list(apps)}))
    return str(path)


def app(tmp_path: Path, name: str, body: str, **options: object) -> dict:
    return {
        "name": name,
        "script": python_app(tmp_path, f"{name}.py", body),
        "exec_interpreter": sys.executable,
        **options,
    }


def test_sigterm_stops_every_app_and_exits_0(corral_home, tmp_path):
    box = Container(tmp_path, config(tmp_path, app(tmp_path, "web", SERVER, instances=2)))
    wait_for(lambda: box.out().count("hello") == 2, what="both instances up")
    assert box.init.pid != box.unshare.pid
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    out = box.out().splitlines()
    assert sorted(line for line in out if "bye" in line) == ["web-0 | bye 0", "web-1 | bye 1"]
    assert sorted(line for line in box.err().splitlines() if "warning" in line) == [
        "web-0 | a warning",
        "web-1 | a warning",
    ]
    assert "SIGTERM: stopping every app" in box.err()
    assert not list((corral_home / "logs").iterdir())  # no log file unless asked


def test_an_orphaned_grandchild_is_reaped(corral_home, tmp_path):
    marker = tmp_path / "orphan"
    orphans = app(tmp_path, "orphans", ORPHANS, args=[str(marker)])
    box = Container(tmp_path, config(tmp_path, orphans))
    wait_for(marker.exists, what="the orphan's word")
    # PID 1's children: the manager and the orphan (the app is the spawner's child)
    (orphan,) = [p for p in box.init.children() if "orphans.py" in " ".join(p.cmdline())]

    def reaped() -> bool:
        try:
            return orphan.status() == "never"  # a zombie stays until it is reaped
        except psutil.NoSuchProcess:
            return True

    wait_for(reaped, what=f"orphan {orphan.pid} reaped", timeout=10)
    box.signal(signal.SIGTERM)
    assert box.wait() == 0


def test_docker_stop_an_app_that_ignores_its_signal_is_killed_in_its_kill_timeout(
    corral_home, tmp_path
):
    stubborn = app(
        tmp_path,
        "stubborn",
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('up', flush=True)\nwhile True: time.sleep(1)\n",
        kill_timeout=800,
    )
    box = Container(tmp_path, config(tmp_path, stubborn))
    wait_for(lambda: "up" in box.out(), what="the app up")
    pids = [p.pid for p in box.descendants()]
    began = time.monotonic()
    box.signal(signal.SIGTERM)
    assert box.wait(timeout=10) == 0  # docker's grace (10 s) never ran out
    assert time.monotonic() - began < 8
    assert not [pid for pid in pids if psutil.pid_exists(pid)]


def test_sigkill_after_the_grace_leaves_nothing_running(corral_home, tmp_path):
    slow = app(
        tmp_path,
        "slow",
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('up', flush=True)\nwhile True: time.sleep(1)\n",
        kill_timeout=60000,
    )
    box = Container(tmp_path, config(tmp_path, slow))
    wait_for(lambda: "up" in box.out(), what="the app up")
    pids = [p.pid for p in box.descendants()]
    box.signal(signal.SIGTERM)
    time.sleep(0.5)  # docker stop's grace, shortened
    box.signal(signal.SIGKILL)
    box.wait()
    wait_for(lambda: not [pid for pid in pids if psutil.pid_exists(pid)], what="all gone")
    # its pid file names a pid of the namespace, which is another process out here
    (corral_home / "corral.pid").unlink(missing_ok=True)


def test_no_line_of_output_is_lost(corral_home, tmp_path):
    box = Container(tmp_path, config(tmp_path, app(tmp_path, "chatty", CHATTY)))
    wait_for(lambda: "all written" in box.out(), what="the lines written", timeout=30)
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    lines = box.out().splitlines()
    expected = [f"line {n}" for n in range(20000)] + ["all written"]
    expected += [f"late {n}" for n in range(1000)]
    assert [line.removeprefix("chatty | ") for line in lines] == expected


def test_json_lines(corral_home, tmp_path):
    box = Container(tmp_path, "--json", config(tmp_path, app(tmp_path, "web", SERVER)))
    wait_for(lambda: "hello" in box.out(), what="the app up")
    box.signal(signal.SIGINT)
    assert box.wait() == 0
    records = [json.loads(line) for line in box.out().splitlines()]
    assert [(r["app"], r["stream"], r["message"]) for r in records] == [
        ("web", "out", "hello 0"),
        ("web", "out", "bye 0"),
    ]
    (warning,) = [json.loads(x) for x in box.err().splitlines() if x.startswith("{")]
    assert warning["message"] == "a warning"


def test_an_app_that_cannot_be_restarted_exits_1(corral_home, tmp_path):
    crash = app(tmp_path, "crash", "import sys\nsys.exit(3)\n", max_restarts=2, min_uptime=5000)
    web = app(tmp_path, "web", SERVER)
    box = Container(tmp_path, config(tmp_path, crash, web))
    assert box.wait() == 1
    assert "crash (pm_id 0) errored: corral will not restart it" in box.err()
    assert "web | bye 0" in box.out()  # the others were stopped first


def test_jobs_that_all_end_well_exit_0_and_one_that_fails_exits_1(corral_home, tmp_path):
    def job(name: str, code: int) -> dict:
        return app(
            tmp_path, name, f"print('{name} ran')\nraise SystemExit({code})\n", autorestart=False
        )

    box = Container(tmp_path, config(tmp_path, job("a", 0), job("b", 0)))
    assert box.wait() == 0
    assert {"a | a ran", "b | b ran"} <= set(box.out().splitlines())
    box = Container(tmp_path, config(tmp_path, job("a", 0), job("c", 4)))
    assert box.wait() == 1
    assert "c (pm_id 1) exited with 4" in box.err()


def test_sighup_reloads_every_app(corral_home, tmp_path):
    box = Container(tmp_path, config(tmp_path, app(tmp_path, "web", SERVER)))
    wait_for(lambda: "hello" in box.out(), what="the app up")
    first = [p.pid for p in box.descendants() if "web.py" in " ".join(p.cmdline())]
    box.signal(signal.SIGHUP)
    wait_for(lambda: box.out().count("hello") == 2, what="the reloaded app up")
    wait_for(lambda: "bye 0" in box.out(), what="the old one gone")
    assert not [pid for pid in first if psutil.pid_exists(pid)]
    box.signal(signal.SIGTERM)
    assert box.wait() == 0


@pytest.fixture
def with_runtime(monkeypatch):
    """The CLI of the tests below has the runtime plugin (corral_home loads none)."""
    monkeypatch.setenv("CORRAL_PLUGINS", "runtime")


def test_only_and_instances_and_a_bad_name(corral_home, with_runtime, tmp_path):
    path = config(
        tmp_path, app(tmp_path, "web", SERVER, instances=4), app(tmp_path, "other", SERVER)
    )
    box = Container(tmp_path, path, "--only", "web", "--instances", "1")
    wait_for(lambda: "web | hello 0" in box.out(), what="one instance of web")
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    assert "other" not in box.out() and "hello 1" not in box.out()
    done = run_cli("runtime", path, "--only", "nope", check=False)
    assert done.returncode == 2
    assert "--only nope: " in done.stderr and "has no app nope; its apps: web, other" in done.stderr


def test_a_bad_config_exits_2_and_starts_nothing(corral_home, with_runtime, tmp_path):
    path = config(tmp_path, {"name": "x", "script": "x.py", "instances": "lots"})
    done = run_cli("runtime", path, check=False)
    assert done.returncode == 2
    assert "instances" in done.stderr


def test_corral_ready_says_when_the_apps_are_ready(corral_home, with_runtime, tmp_path):
    waits = app(
        tmp_path,
        "web",
        "import time, corral.child\ntime.sleep(1.0)\ncorral.child.ready()\n"
        "print('ready', flush=True)\nwhile True: time.sleep(1)\n",
        wait_ready=True,
        listen_timeout=20000,
    )
    with open(tmp_path / "out", "wb") as out:
        runtime = subprocess.Popen(
            [sys.executable, "-m", "corral", "runtime", config(tmp_path, waits)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CORRAL_PLUGINS": "runtime"},
        )
    try:
        wait_for(lambda: (corral_home / "rpc.sock").exists() or list(corral_home.glob("*.sock")))
        early = run_cli("ready", "web", check=False)
        wait_for(lambda: b"ready" in (tmp_path / "out").read_bytes(), what="the app ready")
        assert early.returncode == 1, early.stderr
        wait_for(lambda: run_cli("ready", "web", check=False).returncode == 0, what="ready")
        assert run_cli("ready", "nope", check=False).returncode == 1
    finally:
        runtime.send_signal(signal.SIGTERM)
        assert runtime.wait(30) == 0


def test_a_limit_it_cannot_set_is_left_to_the_container(corral_home, tmp_path):
    """A container without cgroupfs (unmounted in its mount namespace, as some runtimes
    give): memory_max is the container's limit (corral export maps it there), said
    once, and the apps run."""
    web = app(tmp_path, "web", SERVER, memory_max="64M", instances=2)
    box = Container(tmp_path, config(tmp_path, web), plugins="runtime,cgroups", bare=True)
    wait_for(lambda: box.out().count("hello") == 2, what="both instances up")
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    notes = [line for line in box.err().splitlines() if "note:" in line]
    assert notes == [
        "corral runtime: note: memory_max is left to the container "
        "(no cgroup memory controller is mounted on this machine)"
    ]


def test_a_home_a_daemon_serves_already_is_refused(corral_home, with_runtime, tmp_path):
    run_cli("ping")  # a detached daemon in this home
    path = config(tmp_path, app(tmp_path, "web", SERVER))
    done = run_cli("runtime", path, check=False)
    assert done.returncode == 2
    assert "a daemon already serves" in done.stderr and "CORRAL_HOME" in done.stderr
    assert "Traceback" not in done.stderr


def get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
            return answer.read().decode().split()[0]
    except OSError:
        return None


def test_cluster_mode_on_one_port_reloads_on_sighup_without_a_failed_request(
    corral_home, tmp_path, app_path
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    web = {
        "name": "web",
        "script": app_path("web.py"),
        "exec_interpreter": sys.executable,
        "listen": f"127.0.0.1:{port}",
        "instances": 2,
        "exec_mode": "cluster",
    }
    box = Container(tmp_path, config(tmp_path, web))
    first = wait_for(lambda: {get(port) for _ in range(20)} - {None}, what="served")
    wait_for(lambda: len(first | {get(port) for _ in range(20)} - {None}) == 2, what="2 pids")
    answers: list[str | None] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            answers.append(get(port))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        box.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: reloading" in box.err(), what="the reload begun")
        wait_for(lambda: answers and answers[-1] not in (None, *first), what="new pids")
        wait_for(
            lambda: not {a for a in answers[-10:] if a} & first and len(answers) > 10,
            what="only new instances answer",
        )
    finally:
        stop.set()
        asker.join()
    assert None not in answers
    box.signal(signal.SIGTERM)
    assert box.wait() == 0


def test_a_failing_liveness_check_restarts_the_app(corral_home, tmp_path):
    flag = tmp_path / "healthy"
    check = {"exec": f"test -e {flag}", "interval": 200, "failure_threshold": 2}
    web = app(tmp_path, "web", SERVER, health=check)
    box = Container(tmp_path, config(tmp_path, web), plugins="runtime,health")
    wait_for(lambda: box.out().count("hello") >= 2, what="restarted by its check")
    flag.touch()
    box.signal(signal.SIGTERM)
    assert box.wait() == 0


def test_sigusr1_and_sigusr2_are_ignored_not_fatal(corral_home, tmp_path):
    box = Container(tmp_path, config(tmp_path, app(tmp_path, "web", SERVER)))
    wait_for(lambda: "hello" in box.out(), what="the app up")
    box.signal(signal.SIGUSR2)
    box.signal(signal.SIGUSR1)
    wait_for(lambda: "SIGUSR1 ignored" in box.err(), what="said ignored")
    assert box.unshare.poll() is None
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    assert "web | bye 0" in box.out()


def blocked_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("SigBlk:"))
    return int(line.split()[1], 16)


def test_a_signal_sent_while_the_cli_imports_is_not_lost(corral_home, tmp_path):
    """PID 1 has no default action: a SIGTERM sent before the handlers are in place
    would be lost, and docker stop would wait for its SIGKILL. The CLI blocks the
    signals first thing (corral.cli.main): one sent from then on waits for them."""
    box = Container(tmp_path, config(tmp_path, app(tmp_path, "web", SERVER)))
    # python runs (unshare blocks SIGTERM for a moment between its fork and exec)
    running = lambda: "python" in os.readlink(f"/proc/{box.init.pid}/exe")  # noqa: E731
    wait_for(lambda: running() and blocked_signals(box.init.pid), what="blocked", interval=0.001)
    box.signal(signal.SIGTERM)
    assert box.wait(timeout=15) in (0, 143)  # stopped before, or while, the apps start


def test_only_one_app_of_a_file_runs_without_its_dependencies(corral_home, tmp_path):
    """A pod of one app: what it depends on runs in other pods."""
    db = app(tmp_path, "db", SERVER)
    api = app(tmp_path, "api", SERVER, depends_on={"db": "healthy"})
    box = Container(tmp_path, config(tmp_path, db, api), "--only", "api", plugins="runtime,depends")
    wait_for(lambda: "api | hello 0" in box.out(), what="api up")
    assert "api: depends_on db, not in this runtime: not waited for" in box.err()
    box.signal(signal.SIGTERM)
    assert box.wait() == 0


def test_a_file_of_cron_jobs_keeps_running_their_ticks(corral_home, tmp_path):
    job = app(tmp_path, "tick", "print('tick', flush=True)\n", autorestart=False)
    job["cron_restart"] = "* * * * * *"  # every second
    box = Container(tmp_path, config(tmp_path, job), plugins="runtime,cron")
    wait_for(lambda: box.out().count("tick | tick") >= 3, what="three ticks", timeout=10)
    assert box.unshare.poll() is None
    box.signal(signal.SIGTERM)
    assert box.wait() == 0


def test_sighup_does_not_run_a_finished_job_again(corral_home, tmp_path):
    job = app(tmp_path, "job", "print('job ran', flush=True)\n", autorestart=False)
    box = Container(tmp_path, config(tmp_path, job, app(tmp_path, "web", SERVER)))
    wait_for(lambda: "job | job ran" in box.out() and "web | hello 0" in box.out(), what="up")
    box.signal(signal.SIGHUP)
    wait_for(lambda: box.out().count("web | hello 0") == 2, what="web reloaded")
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    assert box.out().count("job ran") == 1


def test_sigterm_during_a_start_that_waits_for_ready_stops_at_once(corral_home, tmp_path):
    never = app(tmp_path, "never", SERVER, wait_ready=True, listen_timeout=30000)
    box = Container(tmp_path, config(tmp_path, never))
    wait_for(lambda: "hello" in box.out(), what="the app spawned")
    began = time.monotonic()
    box.signal(signal.SIGTERM)
    assert box.wait(timeout=20) == 0
    assert time.monotonic() - began < 10  # not the 30 s of its listen_timeout


def test_a_stalled_reader_stalls_no_command(corral_home, with_runtime, tmp_path):
    """Nobody reads the runtime's stdout for a while: the lines wait, the daemon answers."""
    path = config(tmp_path, app(tmp_path, "chatty", CHATTY))
    with open(tmp_path / "stderr", "wb") as err:
        runtime = subprocess.Popen(
            [sys.executable, "-m", "corral", "runtime", path], stdout=subprocess.PIPE, stderr=err
        )
    try:
        wait_for((corral_home / "rpc.sock").exists, what="the runtime's daemon")
        time.sleep(1)  # the app's 20,000 lines fill the pipe and the runtime's queue
        began = time.monotonic()
        listed = run_cli("jlist", check=False)
        assert listed.returncode == 0 and time.monotonic() - began < 5
        psutil.Process(runtime.pid).send_signal(signal.SIGTERM)
        out, _ = runtime.communicate(timeout=30)
    finally:
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()
    lines = out.decode().splitlines()
    assert lines[:1] == ["chatty | line 0"], (tmp_path / "stderr").read_text()
    assert [x for x in lines if x.startswith("chatty | line ")] == [
        f"chatty | line {n}" for n in range(20000)
    ]


def test_a_closed_stdout_is_no_crash(corral_home, with_runtime, tmp_path):
    path = config(tmp_path, app(tmp_path, "job", "print('x' * 100)\n", autorestart=False))
    done = subprocess.run(
        ["bash", "-c", f'exec "$0" -m corral runtime {path} >&-', sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_a_read_only_home_is_one_line(with_runtime, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = config(tmp_path, app(tmp_path, "web", SERVER))
    script = (
        f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
        f'CORRAL_HOME={folder}/home exec "$0" -m corral runtime {path}'
    )
    done = subprocess.run(
        ["unshare", "-m", "bash", "-c", script, sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Read-only file system: set CORRAL_HOME to a writable directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stop_exit_code_is_a_good_end_and_name_needs_one_app(corral_home, with_runtime, tmp_path):
    job = app(tmp_path, "job", "raise SystemExit(3)\n", autorestart=False, stop_exit_codes=[3])
    done = run_cli("runtime", config(tmp_path, job), check=False)
    assert done.returncode == 0, done.stderr
    two = config(tmp_path, app(tmp_path, "a", SERVER), app(tmp_path, "b", SERVER))
    done = run_cli("runtime", two, "--name", "x", check=False)
    assert done.returncode == 2 and "give --name with a script only" in done.stderr


def test_corral_ready_counts_a_finished_job_as_ready(corral_home, with_runtime, tmp_path):
    job = app(tmp_path, "job", "print('done', flush=True)\n", autorestart=False)
    web = app(tmp_path, "web", SERVER)
    box = Container(tmp_path, config(tmp_path, job, web))
    wait_for(lambda: "job | done" in box.out() and "web | hello" in box.out(), what="both ran")
    env = {**os.environ, "CORRAL_HOME": str(corral_home)}
    enter = ["nsenter", "-t", str(box.init.pid), "-p", "-m", "--"]
    ready = lambda: subprocess.run(  # noqa: E731
        [*enter, sys.executable, "-m", "corral", "ready"], env=env, capture_output=True
    )
    wait_for(lambda: ready().returncode == 0, what="ready, the job counted as done")
    box.signal(signal.SIGTERM)
    assert box.wait() == 0

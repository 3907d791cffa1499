"""Cold start (no daemon -> an app online): what runs before what, and what is not loaded.

The figures are in bench/ (cold_start); these tests check the order and the laziness
that make them: the CLI spawns the daemon before it loads pyzmq, the daemon starts its
pipe holder before its own imports, a daemon whose plugins' entry points are in the
cache loads no importlib.metadata, the client that spawned the daemon wakes on the
daemon's ready pipe (no ping), and the daemon runs no ldconfig on its way up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from corral.daemon import homelock
from corral.testing import kill_tree, wait_for

# logs, per process, the spawns and the imports this test watches, in their order
AUDIT = """
import os, sys
_LOG = os.environ.get("COLD_AUDIT_LOG")
_WATCHED = {"zmq", "asyncio", "importlib.metadata", "ctypes.util"}

def _hook(event, args):
    if event == "os.posix_spawn" or event == "subprocess.Popen":
        what = " ".join(map(str, args[1]))
    elif event == "import" and args[0] in _WATCHED:
        what = args[0]
    else:
        return
    with open(_LOG, "a") as f:
        f.write(f"{os.getpid()} {event} {what}\\n")

if _LOG:
    sys.addaudithook(_hook)
"""


def _events(log: Path, pid: int) -> list[str]:
    rows = [line.split(" ", 2) for line in log.read_text().splitlines()]
    return [f"{event} {what}" for who, event, what in rows if int(who) == pid]


def _holders(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "corral.supervisor.fdholder" in cmdline and str(home) in cmdline:
            found.append(proc)
    return found


def loaded_after(setup: str, modules: tuple[str, ...]) -> str:
    """Which of ``modules`` a fresh interpreter has loaded once ``setup`` ran (printed list)."""
    code = f"import sys\n{setup}print(sorted(m for m in {modules!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_cli_path_spawns_the_daemon_before_it_loads_pyzmq(corral_home: Path) -> None:
    setup = "from corral.client.launcher import start_daemon_early\nstart_daemon_early()\n"
    # subprocess too (12 ms): the early spawn is an os.posix_spawn
    assert loaded_after(setup, ("zmq", "typing", "click", "rich", "subprocess")) == "[]"
    # and the daemon it spawned comes up and answers, with no client waiting for it
    wait_for(lambda: homelock.holder(corral_home), what="the daemon holds its home")
    wait_for(lambda: (corral_home / "rpc.sock").exists(), what="the daemon listens")


def test_the_daemon_starts_its_pipe_holder_before_its_imports(
    corral_home: Path, tmp_path: Path
) -> None:
    log = _audited_start(tmp_path)
    daemon = int((corral_home / "corral.pid").read_text())
    events = _events(log, daemon)
    holder = next(i for i, e in enumerate(events) if "corral.supervisor.fdholder" in e)
    assert holder < events.index("import asyncio")
    assert holder < events.index("import zmq")
    assert len(_holders(corral_home)) == 1  # the daemon found it: no second one started


def test_a_daemon_that_fails_at_start_leaves_no_pipe_holder(corral_home: Path) -> None:
    (corral_home / "corral.yaml").write_text("no_such_setting: 1\n")
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    done = subprocess.run(
        [sys.executable, "-m", "corral.daemon.main"],
        env=env, cwd=corral_home, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no_such_setting" in done.stderr
    try:
        # not the 60 s an unused holder otherwise waits for a daemon
        wait_for(lambda: not _holders(corral_home), timeout=5, what="the holder exits")
    finally:
        for proc in _holders(corral_home):
            kill_tree(proc.pid)


def test_a_second_daemon_reads_its_plugins_from_the_cache(
    corral_home: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from corral.daemon.kernel import Daemon\n"
        "daemon = Daemon()\n"
        "print(json.dumps([sorted(daemon.manager.records), 'importlib.metadata' in sys.modules]))\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), CORRAL_PLUGINS="bus")

    def run() -> list:
        done = subprocess.run(
            [sys.executable, "-c", "import json\n" + code],
            env=env, cwd=corral_home, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert run() == [["bus"], True]  # the first scans, and writes the cache
    assert list((tmp_path / "cache" / "corral").glob("entrypoints-*.json"))
    assert run() == [["bus"], False]


def test_the_pipe_holders_process_loads_only_what_it_serves_with() -> None:
    # it boots beside the daemon on every cold start: asyncio and the log writers are
    # the daemon's side of the module (HolderLink, Drain), loaded there when used
    modules = ("asyncio", "subprocess", "threading", "corral.supervisor.logs")
    assert loaded_after("import corral.supervisor.fdholder\n", modules) == "[]"


WAKE = """
import json, os, sys
from pathlib import Path
from corral.client.launcher import ensure_daemon, start_daemon_early
root = Path(os.environ["CORRAL_HOME"])
{setup}
pid = ensure_daemon(root)
print(json.dumps([pid, sorted(m for m in ("zmq", "corral.daemon.upgrade") if m in sys.modules)]))
"""


@pytest.mark.parametrize("setup", ["start_daemon_early()", "pass"], ids=["early", "ensure"])
def test_the_client_that_spawned_the_daemon_wakes_on_its_ready_pipe(
    corral_home: Path, setup: str
) -> None:
    # no ping on a pyzmq socket, no poll of the home: the daemon's one byte wakes it
    done = subprocess.run(
        [sys.executable, "-c", WAKE.format(setup=setup)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pid, loaded = json.loads(done.stdout)
    assert pid == int((corral_home / "corral.pid").read_text())
    assert loaded == []


def test_nothing_the_daemon_starts_inherits_its_ready_pipe(corral_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "start", "--no-wait", "-x", "fork", sys.executable,
         "--name", "idle", "--", "-c", "import time; time.sleep(600)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    daemon = psutil.Process(int((corral_home / "corral.pid").read_text()))
    wait_for(lambda: daemon.children(), what="the app runs")
    for proc in [daemon, *daemon.children(recursive=True), *_holders(corral_home)]:
        pipes = [  # an app's stdin is a pipe it holds alone, read-write (corral.supervisor.stdin)
            os.readlink(f"/proc/{proc.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{proc.pid}/fd")
            if not (fd == "0" and proc != daemon)
        ]
        # the CLI is gone: a write end still open anywhere would be a pipe with no reader
        assert not [p for p in pipes if p.startswith("pipe:") and _no_reader(p)], proc.cmdline()
        if proc != daemon:  # /proc shows the daemon's first environment, not os.environ
            assert "CORRAL_READY_FD" not in proc.environ()


def _no_reader(pipe: str) -> bool:
    """Whether no live process holds ``pipe`` (``pipe:[inode]``) but the one asked about."""
    holders = 0
    for pid in psutil.pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                holders += os.readlink(f"/proc/{pid}/fd/{fd}") == pipe
            except OSError:
                pass
    return holders < 2


def test_a_daemon_that_fails_at_start_is_reported_to_the_client_that_spawned_it(
    corral_home: Path,
) -> None:
    env = dict(os.environ, CORRAL_PLUGINS="no_such_plugin")
    done = subprocess.run(
        [sys.executable, "-c", "import corral; corral.connect()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "the daemon exited at start" in done.stderr
    assert "no_such_plugin" in done.stderr


def test_the_daemon_runs_no_ldconfig_and_loads_no_ctypes_util_on_its_way_up(
    corral_home: Path, tmp_path: Path
) -> None:
    # ctypes.util.find_library("c") forks the daemon and runs `ldconfig -p`
    log = _audited_start(tmp_path)
    events = _events(log, int((corral_home / "corral.pid").read_text()))
    assert "import asyncio" in events  # the audit hook saw the daemon
    assert [e for e in events if "ldconfig" in e or "ctypes.util" in e] == []


ATEXIT = """
import atexit, os
_MARK = os.environ.get("COLD_ATEXIT_MARK")
if _MARK:
    atexit.register(lambda: open(_MARK, "a").write("teardown\\n"))
"""


def test_start_ends_without_the_interpreters_teardown(corral_home: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(ATEXIT)
    mark = tmp_path / "mark"
    env = dict(os.environ, PYTHONPATH=str(site), COLD_ATEXIT_MARK=str(mark))

    def corral(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "corral", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    done = corral("start", "--no-wait", "-x", "fork", sys.executable, "--name", "idle",
                  "--", "-c", "import time; time.sleep(600)")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "started idle" in done.stdout and "online" in done.stdout  # all of it, flushed
    assert not mark.exists()  # no teardown: the process ended once its output was out
    failed = corral("start", str(tmp_path / "no_such_script.py"))
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and "no_such_script.py" in failed.stderr
    assert not mark.exists()
    assert corral("describe", "idle").returncode == 0  # another command: torn down as before
    assert mark.read_text() == "teardown\n"


GC_AUDIT = """
import gc, os, sys
_LOG = os.environ.get("COLD_GC_LOG")
_WATCHED = {"zmq", "corral.plugins.bus.publisher"}

def _hook(event, args):
    if event == "import" and args[0] in _WATCHED:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {args[0]} {gc.isenabled()} {gc.get_freeze_count() > 0}\\n")

if _LOG:
    sys.addaudithook(_hook)
"""


def test_the_daemons_imports_run_without_the_cyclic_collector(
    corral_home: Path, tmp_path: Path
) -> None:
    # what the kernel's imports make lives as long as the daemon: frozen, not scanned
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GC_AUDIT)
    log = tmp_path / "gc.log"
    env = dict(os.environ, PYTHONPATH=str(site), COLD_GC_LOG=str(log), CORRAL_PLUGINS="bus")
    done = subprocess.run(
        [sys.executable, "-m", "corral", "start", "--no-wait", "-x", "fork", sys.executable,
         "--name", "idle", "--", "-c", "import time; time.sleep(600)"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    daemon = (corral_home / "corral.pid").read_text().strip()
    rows = [line.split()[1:] for line in log.read_text().splitlines() if line.split()[0] == daemon]
    # during the kernel's imports: off; the plugins load after, with it on again
    assert rows == [["zmq", "False", "False"], ["corral.plugins.bus.publisher", "True", "True"]]


def _audited_start(tmp_path: Path) -> Path:
    """``corral start`` of an idle app with the AUDIT hook in every Python it starts:
    the audit log's path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "audit.log"
    env = dict(os.environ, PYTHONPATH=str(site), COLD_AUDIT_LOG=str(log))
    done = subprocess.run(
        [sys.executable, "-m", "corral", "start", "--no-wait", "-x", "fork", sys.executable,
         "--name", "idle", "--", "-c", "import time; time.sleep(600)"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return log


def test_the_early_daemon_gets_no_descriptor_of_the_cli_and_runs_in_its_home(
    corral_home: Path, tmp_path: Path
) -> None:
    """As Popen's close_fds: a pipe the CLI inherited (a CI runner's, a shell's fd 3)
    never reaches the daemon, whose working directory is its home, not the CLI's."""
    read, write = os.pipe()
    code = (
        "import os\n"
        f"os.set_inheritable({write}, True)\n"
        "from corral.client.launcher import start_daemon_early\n"
        "assert start_daemon_early()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, pass_fds=(write,), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    os.close(write)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: homelock.holder(corral_home), what="the daemon holds its home")
    daemon = psutil.Process(homelock.holder(corral_home))
    assert os.readlink(f"/proc/{daemon.pid}/cwd") == str(corral_home.resolve())
    pipe = os.readlink(f"/proc/self/fd/{read}")
    for proc in [daemon, *daemon.children(recursive=True), *_holders(corral_home)]:
        fds = f"/proc/{proc.pid}/fd"
        held = [os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)]
        assert pipe not in held, proc.cmdline()
    os.set_blocking(read, False)
    assert os.read(read, 1) == b""  # its end: no process holds the write end
    os.close(read)

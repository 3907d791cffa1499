"""One scale session: N apps started from one file on a fresh daemon, then measured.

The start runs in a thread; meanwhile the bench counts the daemon's children in
``/proc`` (every process exists), a lister on one warm connection lists the apps
every 50 ms (the daemon's answers during the start), and, once all exist, the
CLI listing is polled until all are online. Then, with the apps online: RSS,
idle CPU, the warm API list (and corral's ``list(env=True)``), CLI ``ls`` and
``jlist``. :func:`popen_floor` is the floor every start compares with.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path
from time import perf_counter
from typing import Any

import psutil
from fleet import cpu_seconds, memory
from metrics import require_daemon, shutdown, wait_online
from suite import Row
from tools import TOKEN_VAR, BenchError, Tool, alive, run_command

KIB = 1024
LIST_PAUSE = 0.05  # s between two lists during the start

# (row, unit, about); each becomes "<row>_<N>"
ROW_SPECS = (
    ("start_exist", "s", "start the file -> every app's process exists"),
    ("start_online", "s", "start the file -> the listing shows every app online"),
    ("start_per_app", "ms", "start_online / N"),
    ("list_during_start", "ms", "API list on a warm connection while the start runs (median)"),
    ("list_during_start_max", "ms", "the slowest of those"),
    ("api_list", "ms", "warm API list, median of 10 (corral: list())"),
    ("api_list_env", "ms", "warm API list with every env (corral: list(env=True); PM2: list())"),
    ("list_per_app", "us", "api_list / N"),
    ("cli_ls", "ms", "CLI `ls`, median of 3"),
    ("cli_jlist", "ms", "CLI `jlist` (supervisorctl/circusctl status), median of 3"),
    ("rss_0", "MiB", "daemon RSS with no app"),
    ("rss", "MiB", "daemon RSS with N apps (its helpers included)"),
    ("rss_per_app", "KiB", "(RSS with N - RSS with 0) / N"),
    ("idle_cpu", "CPU ms/s", "daemon CPU while idle with N apps, per second"),
)
GOALS = {"api_list": 0.2, "api_list_env": 0.5, "rss": 0.3}  # corral/PM2, issue 15


def rows_for(count: int) -> list[Row]:
    rows = []
    for name, unit, about in ROW_SPECS:
        key = f"{name}_{count}"
        goal = GOALS.get(name) if count in (100, 1000) or name == "rss" else None
        rows.append(Row(key, key, unit, goal, about.replace("N", f"{count:,}")))
    return rows


def popen_floor(path: Path, token: str) -> float:
    """Python ``Popen`` of the file's scripts, one after the other; each killed by pid after."""
    scripts = [app["script"] for app in json.loads(path.read_text())["apps"]]
    env = {**os.environ, TOKEN_VAR: token}
    children: list[subprocess.Popen] = []
    try:
        t0 = perf_counter()
        for script in scripts:
            children.append(
                subprocess.Popen(
                    [script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env
                )
            )
        return perf_counter() - t0
    finally:
        for child in children:
            child.send_signal(signal.SIGKILL)
        for child in children:
            child.wait()


class Children:
    """The daemon's apps, counted from ``/proc`` (each pid's stat read once): its children,
    and the children of its spawner (corral's apps are the spawner's children)."""

    def __init__(self, ppid: int) -> None:
        self.ppid = ppid
        self.parents = {ppid}
        self.seen: set[int] = set()
        self.kids: set[int] = set()
        self.waiting: dict[int, int] = {}  # pid -> parent, a parent not known yet

    def count(self) -> int:
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.seen:
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            pid = int(name)
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.ppid and _not_execd(pid, self.ppid):
                continue  # forked, not exec'd yet: the spawner or an app? read it again
            self.seen.add(pid)
            if parent == self.ppid and _is_spawner(pid):
                self.parents.add(pid)
                self.kids.update(p for p, pp in self.waiting.items() if pp == pid)
            elif parent in self.parents:
                self.kids.add(pid)
            else:
                self.waiting[pid] = parent
        return len(self.kids)


def _not_execd(pid: int, parent: int) -> bool:
    """Whether ``pid`` still runs its parent's program (between its fork and its exec)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f, open(f"/proc/{parent}/cmdline", "rb") as g:
            return f.read() == g.read()
    except OSError:
        return False


def _is_spawner(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"corral.supervisor.spawnserver" in f.read()
    except OSError:
        return False


def helpers(daemon: int, apps: set[int]) -> list[psutil.Process]:
    """The daemon's descendants that are no app and no app's descendant, from ONE read of
    /proc (fleet.helpers_of asks psutil per app, which reads all of /proc each time)."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    found, todo = [], [p for p in kids.get(daemon, []) if p not in apps]
    while todo:
        pid = todo.pop()
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
        todo += [k for k in kids.get(pid, []) if k not in apps]  # the spawner's are apps
    return found


class Lister(threading.Thread):
    """The tool's own client on one warm connection, asked for a list every LIST_PAUSE."""

    def __init__(self, tool: Tool) -> None:
        super().__init__(daemon=True)
        argv = tool.api_list_argv(0)
        self.proc = subprocess.Popen(
            [*argv[:-1], "stdin"],
            env=tool.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.close()
            raise BenchError(f"{tool.label}: the lister printed {first!r}, not ready")
        self.stop = threading.Event()
        self.ms: list[float] = []
        self.error: str | None = None

    def run(self) -> None:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        try:
            while not self.stop.is_set():
                self.proc.stdin.write("go\n")
                self.proc.stdin.flush()
                answer = self.proc.stdout.readline()
                if not answer:
                    self.error = "the lister exited"
                    return
                self.ms.append(json.loads(answer)["ms"])
                self.stop.wait(LIST_PAUSE)
        except (OSError, ValueError) as exc:
            self.error = str(exc)

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def session(
    tool: Tool, count: int, path: Path, idle: float, timeout: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``count`` apps from ``path`` on a fresh daemon: the figures ({row: value or n/a})."""
    values: dict[str, Any] = {}
    raw: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        values[f"{name}_{count}"] = value

    tool.new_home()
    try:
        tool.ping()
        daemon = require_daemon(tool)
        time.sleep(1.0)
        rss_0 = memory([daemon])[0]
        put("rss_0", rss_0)
        lister = Lister(tool)
        children = Children(daemon.pid)
        failure: list[BaseException] = []

        def start() -> None:
            try:
                _start_file(tool, path, timeout)
            except BaseException as exc:  # handed to the main thread
                failure.append(exc)

        starter = threading.Thread(target=start, daemon=True)
        t0 = perf_counter()
        starter.start()
        lister.start()
        try:
            deadline = time.monotonic() + timeout
            while children.count() < count:
                if failure:
                    raise failure[0]
                if not alive(daemon):  # PM2's God dies of EMFILE past its fd limit
                    raise BenchError(
                        f"{tool.label}: the daemon died {perf_counter() - t0:.0f} s into the "
                        f"start, with {children.count()} of {count} processes (see its log)"
                    )
                if time.monotonic() > deadline:
                    raise BenchError(f"{tool.label}: {children.count()} of {count} in {timeout} s")
                time.sleep(0.005)
            put("start_exist", perf_counter() - t0)
            starter.join(timeout)
            if failure:
                raise failure[0]
            left = max(timeout - (perf_counter() - t0), 1.0)
            processes = wait_online(tool, count, timeout=left)
            put("start_online", perf_counter() - t0)
        finally:
            lister.stop.set()
            lister.join(30)
            if lister.is_alive():  # its list hangs on a dead daemon
                lister.proc.kill()
                lister.join(5)
            lister.close()
        raw["lists_during_start_ms"] = lister.ms
        if lister.ms:
            put("list_during_start", statistics.median(lister.ms))
            put("list_during_start_max", max(lister.ms))
        values[f"start_per_app_{count}"] = values[f"start_online_{count}"] / count * 1000
        time.sleep(1.0)
        pids = {p["pid"] for p in processes if p.get("pid")} or children.kids
        own = [daemon, *helpers(daemon.pid, pids)]
        rss = memory(own)[0]
        put("rss", rss)
        put("rss_per_app", (rss - rss_0) * KIB / count)
        before = cpu_seconds(own)[0]
        time.sleep(idle)
        put("idle_cpu", (cpu_seconds(own)[0] - before) * 1000 / idle)
        api = _api_list(tool, count, False)
        put("api_list", api)
        put("list_per_app", api / count * 1000)
        if tool.label == "pm2":
            put("api_list_env", api)  # PM2's list() carries every env already
        elif tool.label == "corral":
            put("api_list_env", _api_list(tool, count, True))
        else:
            put("api_list_env", "no env in its list")
        if tool.label in ("corral", "pm2"):
            put("cli_ls", _cli(tool, ("ls",), 3) * 1000)
        else:
            put("cli_ls", "its status is its one listing (cli_jlist)")
        put("cli_jlist", _cli(tool, tool.list_args, 3, tool.list_ok) * 1000)
    finally:
        shutdown(tool)
    return values, raw


def _start_file(tool: Tool, path: Path, timeout: float) -> None:
    """``tool.start_file(path)``, with ``timeout`` for the start command instead of 120 s."""
    run = tool.run

    def patient(*args: str, **kwargs: Any) -> str:
        kwargs.setdefault("timeout", timeout)
        return run(*args, **kwargs)

    tool.run = patient  # type: ignore[method-assign]
    try:
        tool.start_file(path)
    finally:
        del tool.run  # type: ignore[misc]


def _api_list(tool: Tool, count: int, env: bool) -> float | str:
    argv = tool.api_list_argv(10) + (["env"] if env else [])
    out = run_command(argv, tool.env(), timeout=600)
    result = json.loads(out.strip().splitlines()[-1])
    if "na" in result:
        return str(result["na"])
    if result["apps"] != count:
        raise BenchError(f"{tool.label}: the API listed {result['apps']} apps, not {count}")
    return statistics.median(result["ms"])


def _cli(tool: Tool, args: tuple[str, ...], calls: int, ok: tuple[int, ...] = (0,)) -> float:
    spent = []
    for _ in range(calls):
        t0 = perf_counter()
        tool.run(*args, ok=ok, timeout=600)
        spent.append(perf_counter() - t0)
    return statistics.median(spent)

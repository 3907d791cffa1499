"""The process managers under test, driven through their command lines.

Each :class:`Tool` runs in a home of its own (a temp dir: ``CORRAL_HOME``,
``PM2_HOME``, or the config file, socket and logs of supervisor and circus) and
stamps every command it runs with ``CORRAL_BENCH_TOKEN``; daemons and apps
inherit it, so :func:`sweep` can find what this run started, and only that, if
a daemon ever dies without taking its apps along. corral and PM2 are here;
supervisor and circus, installed with pip, are in :mod:`peers`.

Every tool answers the same questions the metrics ask: start a script, start an
ecosystem file (PM2's JSON, which corral reads and the peers translate), list the
apps in the shape of ``pm2 jlist`` (``name``, ``pid``, ``pm2_env.status``), the
pids of one app, reload one, and stop everything. What a tool cannot do is in
its ``unsupported`` table, metric -> the reason, which the results print as n/a.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

TOKEN_VAR = "CORRAL_BENCH_TOKEN"
APPS = Path(__file__).resolve().parent / "apps"


class BenchError(Exception):
    """A tool misbehaved: the message names the command and what it printed."""


class Unsupported(BenchError):
    """The tool has no way to do what a metric asks."""


class Tool:
    """One process manager: its CLI, its home, its daemon."""

    label = ""  # the --peers name
    home_var = ""
    pid_name = ""  # the daemon's pid file, in the home
    list_args: tuple[str, ...] = ("jlist",)  # the listing a user's script reads
    list_ok: tuple[int, ...] = (0,)  # its exit codes that are no error
    unsupported: dict[str, str] = {}  # metric -> why this tool cannot do it
    poll_period = 0.0  # s between the daemon's looks for dead children (0: told at once)
    restart_kills: int | None = None  # kills per run of restart_after_sigkill, if not --kills
    memory_period = 1.0  # s between two looks at an app's memory, with the bench's settings

    def __init__(self, argv: list[str], root: Path, token: str, python: str) -> None:
        self.argv = argv
        self.root = root
        self.token = token
        self.python = python
        self.home: Path | None = None
        self.features: tuple[str, ...] = ()
        self.seen: dict[int, psutil.Process] = {}
        self.jlists = 0  # listing calls so far, each one a request the daemon answers

    # -- homes and commands ------------------------------------------------

    def new_home(self, features: tuple[str, ...] = ()) -> Path:
        """A fresh, empty home: every measurement starts from nothing.

        ``features`` names what the session needs beyond the basics ("memory",
        "watch"): corral loads those plugins; the others have them built in.
        """
        self.home = Path(tempfile.mkdtemp(prefix=f"{self.label}-home-", dir=self.root))
        self.features = features
        return self.home

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.home_var:
            env[self.home_var] = str(self.home)
        env[TOKEN_VAR] = self.token
        return env

    def cli(self) -> list[str]:
        """The command line every CLI call starts with."""
        return self.argv

    def run(
        self,
        *args: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> str:
        """Run one CLI command to its end; its stdout, or BenchError naming the command.

        ``env`` adds variables to the command's environment (and so to its apps');
        ``ok`` are the exit codes that are no error.
        """
        return run_command([*self.cli(), *args], {**self.env(), **(env or {})}, timeout, ok)

    def start_script(self, script: Path, name: str) -> None:
        raise NotImplementedError

    def start_file(self, path: Path) -> None:
        """Start the apps of an ecosystem file (the daemon too, if none runs)."""
        self.run("start", str(path))

    def start_cluster(self, script: Path, name: str, instances: int, port: int) -> None:
        """``instances`` of a node app in cluster mode, all serving ``port``."""
        raise Unsupported(self.unsupported.get("reload_under_load", "no cluster mode"))

    def start_cluster_plain(self, script: Path, name: str, instances: int, port: int) -> None:
        """``instances`` of an unchanged node app that listens on $PORT itself, as a
        PM2 user starts it: the tool's cluster mode and nothing else."""
        raise Unsupported(self.unsupported.get("reload_plain", "no cluster mode"))

    def reload(self, name: str) -> None:
        """Replace every instance of ``name`` without dropping a request."""
        self.run("reload", name)

    def ping(self) -> None:
        """Start the daemon (with no app) and wait until it answers."""
        self.run("ping")

    def jlist(self) -> list[dict[str, Any]]:
        """The apps, as ``pm2 jlist`` shows them (or translated to that shape)."""
        self.jlists += 1
        return self.parse_list(self.run(*self.list_args, ok=self.list_ok))

    def parse_list(self, out: str) -> list[dict[str, Any]]:
        try:
            return json.loads(out[out.index("[") :])
        except ValueError as exc:
            raise BenchError(f"`{self.label} jlist` printed no JSON list: {_tail(out)}") from exc

    def pids(self, name: str) -> list[int]:
        """The pids of the online instances of ``name``."""
        return sorted(
            p["pid"]
            for p in self.jlist()
            if p.get("name") == name and p.get("pid") and _status(p) == "online"
        )

    def api_list_argv(self, calls: int) -> list[str]:
        """A program that lists the apps ``calls`` times over one connection (a JSON line)."""
        raise NotImplementedError

    # -- the daemon and its processes ----------------------------------------

    def daemon(self) -> psutil.Process | None:
        """The daemon of the current home, if it runs and is ours."""
        if self.home is None:
            return None
        try:
            pid = int((self.home / self.pid_name).read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or not _carries(proc, self.token):
                return None
        except (OSError, ValueError, psutil.Error):
            return None
        self.seen.setdefault(proc.pid, proc)
        return proc

    def track(self, pids: Any) -> None:
        """Remember processes of this tool, to kill them should the daemon fail to."""
        for pid in pids:
            if pid and pid not in self.seen:
                try:
                    self.seen[pid] = psutil.Process(pid)
                except psutil.Error:
                    pass

    def shutdown(self) -> str | None:
        """Stop the daemon and every app, by pid; the home is removed. A problem, or None."""
        problem = None
        daemon = self.daemon()
        if daemon is not None:
            self.seen.update({p.pid: p for p in _tree(daemon)})
            try:
                self.kill()
            except BenchError as exc:
                problem = str(exc)
        survivors = _wait_gone(list(self.seen.values()), 10)
        if survivors:
            pids = sorted(p.pid for p in survivors)
            problem = problem or f"{self.label}: pids {pids} outlived the daemon; killed them"
            for proc in survivors:
                _kill(proc)
            _wait_gone(survivors, 5)
        self.seen.clear()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None
        return problem

    def kill(self) -> None:
        """Stop every app and the daemon, through the CLI."""
        self.run("kill", timeout=30)

    def version(self) -> str:
        raise NotImplementedError


class Corral(Tool):
    label = "corral"
    home_var = "CORRAL_HOME"
    pid_name = "corral.pid"

    def __init__(self, root: Path, token: str, python: str) -> None:
        super().__init__([python, "-m", "corral"], root, token, python)

    def env(self) -> dict[str, str]:
        # PM2 runs with no module, so corral runs with only the plugins a metric needs:
        # with every plugin, logrotate would rotate the log metric's file at 10M
        env = super().env()
        plugins = [p for p in os.environ.get("CORRAL_PLUGINS", "bus").split(",") if p]
        env["CORRAL_PLUGINS"] = ",".join(dict.fromkeys([*plugins, *self.features]))
        return env

    # `corral start` watches new apps for min_uptime (1 s) and names any that died; PM2's
    # start returns at spawn, so corral is measured with that watch off (--no-wait)
    START = ("start", "--no-wait")

    def start_file(self, path: Path) -> None:
        self.run(*self.START, str(path))

    def start_script(self, script: Path, name: str) -> None:
        # a .py script runs under the daemon's own Python, which is `python`
        self.run(*self.START, str(script), "--name", name)

    def start_cluster(self, script: Path, name: str, instances: int, port: int) -> None:
        # the daemon binds the port once; node's listen(PORT) becomes listen({fd: 3})
        self.run(
            *self.START, str(script), "--name", name, "-x", "cluster", "-i", str(instances),
            "--port", str(port),
        )  # fmt: skip

    def start_cluster_plain(self, script: Path, name: str, instances: int, port: int) -> None:
        # no --port: the app's listen(PORT) asks the daemon, which binds PORT once
        self.run(
            *self.START, str(script), "--name", name, "-x", "cluster", "-i", str(instances),
            env={"PORT": str(port)},
        )  # fmt: skip

    def api_list_argv(self, calls: int) -> list[str]:
        return [self.python, str(APPS / "api_list.py"), "corral", "-", str(calls)]

    def version(self) -> str:
        done = subprocess.run([*self.argv, "--version"], capture_output=True, text=True)
        if done.returncode != 0:
            return f"unavailable ({_tail(done.stderr, 1)})"
        return done.stdout.split()[-1]  # "corral, version 0.1.0"


class PM2(Tool):
    label = "pm2"
    home_var = "PM2_HOME"
    pid_name = "pm2.pid"
    memory_period = 30.0  # its worker checks max_memory_restart every 30 s

    def __init__(self, prefix: Path, root: Path, token: str, python: str) -> None:
        self.prefix = prefix
        super().__init__([str(prefix / "node_modules" / ".bin" / "pm2")], root, token, python)

    def start_script(self, script: Path, name: str) -> None:
        args = ["start", str(script), "--name", name]
        if script.suffix == ".py":
            args += ["--interpreter", self.python]
        self.run(*args)

    def start_cluster(self, script: Path, name: str, instances: int, port: int) -> None:
        # node's cluster module: PM2's daemon is the primary and hands connections out
        self.run(
            "start", str(script), "--name", name, "-i", str(instances), env={"PORT": str(port)}
        )

    def start_cluster_plain(self, script: Path, name: str, instances: int, port: int) -> None:
        self.start_cluster(script, name, instances, port)

    def api_list_argv(self, calls: int) -> list[str]:
        module = str(self.prefix / "node_modules" / "pm2")
        return ["node", str(APPS / "pm2_list.js"), module, str(calls)]

    def version(self) -> str:
        package = self.prefix / "node_modules" / "pm2" / "package.json"
        return json.loads(package.read_text())["version"]


def install_pm2(prefix: Path, spec: str = "pm2@7") -> Path:
    """``npm install --prefix <prefix> pm2@7`` unless PM2 is there already."""
    if (prefix / "node_modules" / ".bin" / "pm2").exists():
        return prefix
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is not on PATH: install node and npm to compare with PM2")
    prefix.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", spec]
    print(f"installing PM2: {_show(argv)}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"`{_show(argv)}` exited {done.returncode}: {_tail(done.stderr)}")
    return prefix


def run_command(
    argv: list[str], env: dict[str, str], timeout: float, ok: tuple[int, ...] = (0,)
) -> str:
    """Run ``argv`` to its end; its stdout, or BenchError naming the command."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`{_show(argv)}` did not finish in {timeout:g} s") from exc
    except OSError as exc:
        raise BenchError(f"`{_show(argv)}` could not run: {exc}") from exc
    if done.returncode not in ok:
        raise BenchError(
            f"`{_show(argv)}` exited {done.returncode}: "
            f"{_tail(done.stderr) or _tail(done.stdout) or '(no output)'}"
        )
    return done.stdout


def sweep(token: str) -> list[int]:
    """Kill any process still carrying this run's token (a daemon that died uncleanly)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.uids().real == os.getuid() and _carries(proc, token):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except psutil.Error:
            continue
    for proc in found:
        _kill(proc)
    _wait_gone(found, 5)
    return [p.pid for p in found]


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (our daemons are reparented to an init that may not reap)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _status(entry: dict[str, Any]) -> str | None:
    return entry.get("pm2_env", {}).get("status")


def _carries(proc: psutil.Process, token: str) -> bool:
    try:
        return proc.environ().get(TOKEN_VAR) == token
    except psutil.Error:
        return False


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def _kill(proc: psutil.Process) -> None:
    try:
        proc.send_signal(signal.SIGKILL)  # psutil refuses if the pid was reused
    except psutil.Error:
        pass


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = [p for p in procs if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def _show(argv: list[str]) -> str:
    return " ".join(argv)


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


_STARTED = time.monotonic()


def log(message: str) -> None:
    """A progress line on stderr, with the minutes and seconds since the bench began."""
    elapsed = int(time.monotonic() - _STARTED)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def exit_on_term(signum: int, frame: Any) -> None:
    """SIGTERM: unwind through the finally blocks that stop the daemons."""
    raise SystemExit(128 + signum)


def tear_down(tools: list[Tool], token: str, root: Path) -> None:
    """The end of a bench run, after an error too: each tool's daemon stopped, any
    process still carrying the run's token killed by pid, the run's directory removed."""
    for tool in tools:
        tool.shutdown()
    leftovers = sweep(token)
    if leftovers:
        log(f"warning: killed leftover processes of this run: {leftovers}")
    shutil.rmtree(root, ignore_errors=True)


def app_parents(daemon: psutil.Process) -> set[int]:
    """The pids whose children are the daemon's apps: the daemon, and corral's spawner
    (corral.supervisor.spawnserver forks corral's apps)."""
    parents = {daemon.pid}
    for child in daemon.children():
        try:
            if "corral.supervisor.spawnserver" in child.cmdline():
                parents.add(child.pid)
        except psutil.Error:
            continue
    return parents


def app_children(daemon: psutil.Process) -> list[psutil.Process]:
    """The processes the daemon (or its spawner) forked, the spawner left out."""
    found = []
    for pid in app_parents(daemon):
        try:
            found += psutil.Process(pid).children()
        except psutil.Error:
            continue
    return [c for c in found if c.pid not in app_parents(daemon)]

"""supervisor and circus, the Python process managers, driven through their own CLIs.

Both are installed with pip into ONE venv of their own (:data:`PINS`), created
with the ``--python`` interpreter, and run from it; their apps run under
``--python``, as corral's and PM2's do. Each measurement gets a home of its own
(a temp dir): the main config file written by the bench, the control channel on
a unix socket in the home, the daemon's pid file and log, and the apps' logs in
``logs/``. Nothing listens on a TCP port but the cluster app's socket.

An ecosystem file (PM2's JSON, which corral reads) becomes one config file in the
home's ``conf.d/``, which the main config includes: ``[program:x]`` sections for
supervisor, ``[watcher:x]`` (and ``[socket:x]``, ``[plugin:x]``) for circus.
With the daemon running, ``supervisorctl update`` / ``circusctl reloadconfig``
starts what the new file adds, as a user adding apps to a running daemon does;
with none, the daemon starts with them (``supervisord -c``, ``circusd --daemon``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools import APPS, BenchError, Tool, Unsupported, run_command

# supervisor 4.3.0 and circus 0.19.0 are the current releases. circus declares only
# lower bounds (tornado>=5.0.2, pyzmq>=17): tornado and pyzmq are pinned to the
# versions it was checked with here on Python 3.11 (circusd, circusctl, sockets,
# plugins), so that a later major release of either cannot change what is measured.
PINS = {
    "supervisor": ("supervisor==4.3.0",),
    "circus": ("circus==0.19.0", "tornado==6.6.1", "pyzmq==27.3.0"),
}
DAEMON_TIMEOUT = 30.0
APP_KEYS = {"name", "script", "interpreter", "args", "cwd", "max_restarts", "max_memory_restart"}

NO_BUS = "no event bus to subscribers"
PLAIN_CIRCUS = (
    "the app must take the socket's fd as its argument (an unchanged listen(PORT) app collides)"
)


def install_peer(label: str, venv: Path, python: str) -> None:
    """``pip install`` the peer's pinned packages into ``venv`` (created if missing)."""
    if (venv / "bin" / _DAEMONS[label]).exists():
        return
    if not (venv / "bin" / "python").exists():
        _install_step([python, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    _install_step([*pip, "-q", *PINS[label]])


def _install_step(argv: list[str]) -> None:
    print(f"installing: {' '.join(argv)}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "WARNING" not in line]
        raise BenchError(f"`{' '.join(argv)}` exited {done.returncode}: {' | '.join(lines[-3:])}")


class _Peer(Tool):
    """What supervisor and circus share: a venv, a config file per home, a daemon to start."""

    daemon_name = ""  # in the venv's bin
    config_name = ""  # the main config file, in the home

    def __init__(self, venv: Path, ctl: str, root: Path, token: str, python: str) -> None:
        self.venv = venv
        super().__init__([str(venv / "bin" / ctl)], root, token, python)

    def new_home(self, features: tuple[str, ...] = ()) -> Path:
        home = super().new_home(features)
        (home / "conf.d").mkdir()
        (home / "logs").mkdir()
        (home / self.config_name).write_text(self.main_config(home))
        return home

    @property
    def config(self) -> Path:
        assert self.home is not None
        return self.home / self.config_name

    # -- what each peer writes -------------------------------------------------

    def main_config(self, home: Path) -> str:
        raise NotImplementedError

    def app_sections(self, app: dict[str, Any]) -> str:
        raise NotImplementedError

    def launch_args(self) -> list[str]:
        raise NotImplementedError

    def load_added(self) -> None:
        """Ask the running daemon to start what conf.d gained."""
        raise NotImplementedError

    # -- the Tool interface --------------------------------------------------------

    def ping(self) -> None:
        self._launch()

    def start_script(self, script: Path, name: str) -> None:
        # no daemon yet: the daemon starts with the app in its config, as a user's would
        self._write(name, [{"name": name, "script": str(script)}])
        self._start()

    def start_file(self, path: Path) -> None:
        self._write(path.stem, json.loads(path.read_text())["apps"])
        self._start()

    def _write(self, stem: str, apps: list[dict[str, Any]]) -> None:
        assert self.home is not None
        text = "\n".join(self.app_sections(app) for app in apps)
        (self.home / "conf.d" / f"{stem}.ini").write_text(text)

    def _start(self) -> None:
        if self.daemon() is None:
            self._launch()
        else:
            self.load_added()

    def _launch(self) -> None:
        """Start the daemon (it forks into the background) and wait until it answers."""
        run_command(
            [str(self.venv / "bin" / self.daemon_name), *self.launch_args()], self.env(), 60
        )
        deadline = time.monotonic() + DAEMON_TIMEOUT
        while True:
            try:
                self.run(*self.list_args, ok=self.list_ok, timeout=DAEMON_TIMEOUT)
                return
            except BenchError as exc:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.label}: no answer {DAEMON_TIMEOUT:g} s after start: {exc}"
                    ) from exc
            time.sleep(0.01)

    def command(self, app: dict[str, Any]) -> list[str]:
        """The app's argv: interpreter (``--python`` for a .py), script, args."""
        unknown = set(app) - APP_KEYS
        if unknown:
            raise BenchError(f"{self.label}: the bench cannot translate {sorted(unknown)}")
        script = str(app["script"])
        interpreter = app.get("interpreter")
        if interpreter is None:
            interpreter = self.python if script.endswith(".py") else "node"
        args = [str(a) for a in app.get("args", [])]
        return [script, *args] if interpreter == "none" else [interpreter, script, *args]

    def log_path(self, name: str, stream: str) -> Path:
        assert self.home is not None
        return self.home / "logs" / f"{name}-{stream}.log"

    def version(self) -> str:
        daemon = str(self.venv / "bin" / self.daemon_name)
        done = subprocess.run([daemon, "--version"], capture_output=True, text=True)
        return done.stdout.strip() or f"unavailable ({done.stderr.strip()[-80:]})"


class Supervisor(_Peer):
    """``supervisord -c <home>/supervisord.conf``, driven with ``supervisorctl -c ...``."""

    label = "supervisor"
    pid_name = "supervisord.pid"
    daemon_name = "supervisord"
    config_name = "supervisord.conf"
    list_args = ("status",)
    list_ok = (0, 3)  # 3: some program is not running (LSB status codes)
    # restart_after_sigkill is about 1 s whenever the crash comes: the dead child's
    # pipes wake its poll() and it is reaped, but the respawn waits for the next turn
    # of the loop, after poll()'s 1 s timeout (SIGCHLD does not interrupt it)
    unsupported = {
        "rps_cluster": "no shared socket (fcgi-program shares one, for FastCGI apps only)",
        "reload_under_load": "no rolling reload (and no shared socket: `supervisorctl "
        "restart` stops the instances, then starts them)",
        "rps_cluster_plain": "no shared socket",
        "reload_plain": "no shared socket",
        "memory_limit_latency": "no built-in memory limit (superlance's memmon is a separate "
        "package, on TICK events)",
        "watch_restart_latency": "no file watching",
        "bus_throughput": NO_BUS + " (event listeners get PROCESS_LOG events on a pipe)",
        "bus_latency": NO_BUS,
    }

    def __init__(self, venv: Path, root: Path, token: str, python: str) -> None:
        super().__init__(venv, "supervisorctl", root, token, python)

    def cli(self) -> list[str]:
        return [*self.argv, "-c", str(self.config)]

    def socket(self) -> Path:
        assert self.home is not None
        return self.home / "supervisor.sock"

    def main_config(self, home: Path) -> str:
        sock = home / "supervisor.sock"
        return "\n".join([
            "[unix_http_server]", f"file = {sock}", "chmod = 0700", "",
            "[supervisord]", f"logfile = {home}/supervisord.log",
            f"pidfile = {home}/supervisord.pid", f"childlogdir = {home}/logs", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]", f"serverurl = unix://{sock}", "",
            "[include]", f"files = {home}/conf.d/*.ini", "",
        ])  # fmt: skip

    def app_sections(self, app: dict[str, Any]) -> str:
        if "max_memory_restart" in app:
            raise Unsupported(self.unsupported["memory_limit_latency"])
        name = app["name"]
        lines = [
            f"[program:{name}]",
            f"command = {_escape(shlex.join(self.command(app)))}",
            # RUNNING as soon as it is spawned, as PM2's and corral's "online" (the
            # default 1 s is a minimum uptime, which PM2's min_uptime is too)
            "startsecs = 0",
            "autorestart = true",  # any exit, as PM2 and corral
            f"stdout_logfile = {_escape(str(self.log_path(name, 'out')))}",
            "stdout_logfile_maxbytes = 0",  # no rotation: corral and PM2 run without
            f"stderr_logfile = {_escape(str(self.log_path(name, 'err')))}",
            "stderr_logfile_maxbytes = 0",
        ]
        if "cwd" in app:
            lines.append(f"directory = {_escape(str(app['cwd']))}")
        return "\n".join(lines) + "\n"

    def launch_args(self) -> list[str]:
        return ["-c", str(self.config)]

    def load_added(self) -> None:
        self.run("update")

    def kill(self) -> None:
        # `shutdown` alone stops the programs one group (here: one program) per turn of
        # its main loop (26 s for 100 here); `stop all` stops them together
        self.run("stop", "all", timeout=60)
        self.run("shutdown", timeout=30)

    def parse_list(self, out: str) -> list[dict[str, Any]]:
        """``name  RUNNING  pid 123, uptime 0:00:01`` -> jlist's shape."""
        apps = []
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) < 2:
                continue
            rest = parts[2] if len(parts) > 2 else ""
            pid = int(rest[4:].split(",")[0]) if rest.startswith("pid ") else None
            status = "online" if parts[1] == "RUNNING" else parts[1].lower()
            apps.append({"name": parts[0], "pid": pid, "pm2_env": {"status": status}})
        return apps

    def api_list_argv(self, calls: int) -> list[str]:
        python = str(self.venv / "bin" / "python")
        return [python, str(APPS / "api_list.py"), "supervisor", str(self.socket()), str(calls)]


class Circus(_Peer):
    """``circusd --daemon <home>/circus.ini``, driven with ``circusctl --endpoint ...``."""

    label = "circus"
    pid_name = "circusd.pid"
    daemon_name = "circusd"
    config_name = "circus.ini"
    list_args = ("status",)
    # circusd reaps and respawns every check_delay (5 s in circusd's config default);
    # 5 kills a run, each at a random moment of that cycle, keep the run short
    poll_period = 5.0
    restart_kills = 5
    unsupported = {
        "rps_cluster_plain": PLAIN_CIRCUS,
        "reload_plain": PLAIN_CIRCUS,
        "watch_restart_latency": "no file watching (command_reloader only restarts when the "
        "watcher's executable changes: for a Python app, the interpreter)",
        "bus_throughput": NO_BUS + " of app output (its pubsub carries process events)",
        "bus_latency": NO_BUS + " of app messages",
    }

    def __init__(self, venv: Path, root: Path, token: str, python: str) -> None:
        super().__init__(venv, "circusctl", root, token, python)

    def endpoint(self) -> str:
        return f"ipc://{self.home}/endpoint.sock"

    def cli(self) -> list[str]:
        return [*self.argv, "--endpoint", self.endpoint()]

    def main_config(self, home: Path) -> str:
        return "\n".join([
            "[circus]", f"endpoint = ipc://{home}/endpoint.sock",
            f"pubsub_endpoint = ipc://{home}/pubsub.sock",
            f"pidfile = {home}/circusd.pid", f"logoutput = {home}/circusd.log",
            f"include = {home}/conf.d/*.ini", "",
        ])  # fmt: skip

    def app_sections(self, app: dict[str, Any]) -> str:
        name = app["name"]
        argv = self.command(app)
        lines = [f"[watcher:{name}]", *self._watcher(name, argv)]
        if "cwd" in app:
            lines.append(f"working_dir = {app['cwd']}")
        if "max_restarts" in app:
            lines.append("max_retry = -1")
        out = "\n".join(lines) + "\n"
        if "max_memory_restart" in app:
            out += self._memory_plugin(name, str(app["max_memory_restart"]))
        return out

    def _watcher(self, name: str, argv: list[str]) -> list[str]:
        return [
            f"cmd = {shlex.quote(argv[0])}",
            f"args = {shlex.join(argv[1:])}",
            "copy_env = true",  # else the apps get an empty environment
            "stdout_stream.class = FileStream",
            f"stdout_stream.filename = {self.log_path(name, 'out')}",
            "stderr_stream.class = FileStream",
            f"stderr_stream.filename = {self.log_path(name, 'err')}",
        ]

    def _memory_plugin(self, name: str, limit: str) -> str:
        # resource_watcher samples every loop_rate s (default 60) and restarts the watcher
        # after more than max_count samples over (default 3); set to act as corral's memory
        # plugin does (1 s, the first sample over), on memory alone (cpu and health off)
        return "\n".join([
            f"[plugin:memory-{name}]",
            "use = circus.plugins.resource_watcher.ResourceWatcher",
            f"watcher = {name}", f"max_mem = {limit}", "loop_rate = 1", "max_count = 0",
            "max_cpu = 0", "health_threshold = 0", "",
        ])  # fmt: skip

    def start_cluster(self, script: Path, name: str, instances: int, port: int) -> None:
        # circus binds the socket once; each instance gets its fd as an argument
        lines = [
            f"[socket:{name}]", "host = 127.0.0.1", f"port = {port}", "",
            f"[watcher:{name}]",
            *self._watcher(name, ["node", str(script), f"$(circus.sockets.{name})"]),
            "use_sockets = true", f"numprocesses = {instances}",
            "stop_signal = INT",  # the app closes its server on SIGINT, as PM2 stops it
        ]  # fmt: skip
        assert self.home is not None
        (self.home / "conf.d" / f"{name}.ini").write_text("\n".join(lines) + "\n")
        self._start()

    def launch_args(self) -> list[str]:
        return ["--daemon", str(self.config)]

    def load_added(self) -> None:
        self.run("reloadconfig")

    def kill(self) -> None:
        self.run("quit", timeout=60)

    def parse_list(self, out: str) -> list[dict[str, Any]]:
        """``name: active`` per watcher -> jlist's shape (no pid: see :meth:`pids`)."""
        apps = []
        for line in out.splitlines():
            name, sep, status = line.partition(": ")
            if sep and not name.startswith("plugin:"):  # a plugin runs as a watcher
                status = "online" if status.strip() == "active" else status.strip()
                apps.append({"name": name.strip(), "pid": None, "pm2_env": {"status": status}})
        return apps

    def pids(self, name: str) -> list[int]:
        out = self.run("list", name, ok=(0, 1, 2, 3))
        return sorted(int(pid) for pid in out.strip().split(",") if pid.strip().isdigit())

    def api_list_argv(self, calls: int) -> list[str]:
        python = str(self.venv / "bin" / "python")
        return [python, str(APPS / "api_list.py"), "circus", self.endpoint(), str(calls)]


_DAEMONS = {"supervisor": "supervisord", "circus": "circusd"}
PEERS = {"supervisor": Supervisor, "circus": Circus}


def _escape(value: str) -> str:
    """supervisor expands ``%(name)s`` in values: a literal ``%`` is written ``%%``."""
    return value.replace("%", "%%")

"""The manager of ``corral runtime``: a daemon in this process, the apps started, the
signals acted on, and an exit code the orchestrator can read.

The daemon runs on a thread of this process (``corral.connect(no_daemon=True)``)
with the installed plugins and :class:`~corral.plugins.runtime.output.Output`, and
serves its home as any daemon does, so ``corral ls``, ``corral reload`` and
``corral ready`` work from ``docker exec``. The apps write no log file unless their
options name one: their output is the runtime's. The start and the reloads run on
threads of their own (:class:`Job`), so the main thread always answers a signal:

- SIGTERM, SIGINT, SIGQUIT: every app is stopped at once, each with its own
  ``kill_signal`` and ``kill_timeout`` (SIGKILL after it), then exit 0.
- SIGHUP: a graceful reload of every app that runs (0-downtime in cluster mode).
- SIGUSR1, SIGUSR2: ignored, and said.
- An app errored (corral will not restart it: ``max_restarts`` reached): the
  others are stopped, exit 1, so the orchestrator restarts the container.
- Every app ended and none waits (for a restart, a dependency or a cron tick):
  exit 0 when each ended well (0, or one of its ``stop_exit_codes``), else 1.

Exit 2: the command line or the file is wrong, and nothing was started.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import corral
from corral import api

from .output import Output

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POLL = 0.2  # seconds between two looks at the apps (a signal wakes the wait at once)
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
IGNORED = (signal.SIGUSR1, signal.SIGUSR2)
_ENDED = ("stopped", "errored")
# the log options and their aliases, snake_case (camelCase keys are compared so too)
_OUT_KEYS = frozenset(("out_file", "out", "output", "out_log", "log_file", "log"))
_ERR_KEYS = frozenset(("error_file", "error", "err", "err_file", "err_log", "log_file", "log"))
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass
class Signals:
    """What the signal handlers saw, for the main thread to act on."""

    wake: threading.Event = field(default_factory=threading.Event)
    stop: int | None = None  # the first stopping signal
    reloads: int = 0

    def handle(self, sig: int, _frame: Any = None) -> None:
        if sig == signal.SIGHUP:
            self.reloads += 1
        elif self.stop is None:
            self.stop = sig
        self.wake.set()

    def install(self) -> None:
        """The handlers, then every signal unblocked: PID 1 blocked them at its start
        (corral.cli.main), and the apps must not inherit a blocked SIGTERM."""
        for sig in (*STOPPING, signal.SIGHUP):
            signal.signal(sig, self.handle)
        for sig in IGNORED:  # their default ends the process, and PID 1 passes them on
            signal.signal(sig, _ignored)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())


def _ignored(sig: int, _frame: Any = None) -> None:
    say(f"{signal.Signals(sig).name} ignored (SIGTERM stops, SIGHUP reloads)")


class Job:
    """A call to the daemon on a thread of its own (a start that waits for readiness,
    a rolling reload), so that the main thread still answers a stopping signal."""

    def __init__(self, work: Any, wake: threading.Event) -> None:
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._work, self._wake = work, wake
        threading.Thread(target=self._run, name="runtime-job", daemon=True).start()

    def _run(self) -> None:
        try:
            client = api.running_client(api.corral_home())  # its own: a socket per thread
            if client is None:
                raise corral.DaemonError("the runtime's daemon is gone")
            with client:
                self._work(client)
        except BaseException as exc:  # told to the main thread
            self.error = exc
        finally:
            self.done.set()
            self._wake.set()


def runtime_apps(
    target: str,
    *,
    only: list[str] | None = None,
    instances: int | None = None,
    name: str | None = None,
) -> list[dict[str, Any]]:
    """The apps to run: a config file's (those named in ``only``), or one script;
    each writes no log file unless its options name one. Raises ConfigError."""
    if api.is_config_file(target):
        apps = api.load_config(target)
    else:
        apps = [{"script": os.path.abspath(target) if os.path.exists(target) else target}]
    if name:
        if len(apps) > 1:
            raise corral.ConfigError(
                f"--name {name}: {target} has {len(apps)} apps, and they would all be "
                f"{name}: give --name with a script only (or --only NAME for one app)"
            )
        apps = [{**apps[0], "name": name}]
    if only is not None:
        apps = _only(apps, only, target)
    return [_quiet(app, instances) for app in apps]


def _only(apps: list[dict[str, Any]], only: list[str], target: str) -> list[dict[str, Any]]:
    """The apps ``only`` names, every name known; a dependency left out of them is the
    orchestrator's (another container, another pod): the kept apps no longer wait."""
    names = [str(app.get("name")) for app in apps]
    unknown = [n for n in only if n not in names]
    if not only or unknown:
        raise corral.ConfigError(
            f"--only {','.join(only) or repr('')}: {target} has no app "
            f"{', '.join(unknown) or 'of no name'}; its apps: {', '.join(names)}"
        )
    chosen = [app for app in apps if str(app.get("name")) in only]
    return [_without_outside_dependencies(app, set(only)) for app in chosen]


def _without_outside_dependencies(app: dict[str, Any], kept: set[str]) -> dict[str, Any]:
    key = next((k for k in ("depends_on", "dependsOn") if k in app), None)
    needs = app.get(key) if key else None
    if not needs or not isinstance(needs, (list, dict)):
        return app
    outside = sorted(str(n) for n in needs if str(n) not in kept)
    if not outside:
        return app
    say(f"{app.get('name')}: depends_on {', '.join(outside)}, not in this runtime: not waited for")
    if isinstance(needs, dict):
        inside: Any = {n: c for n, c in needs.items() if str(n) in kept}
    else:
        inside = [n for n in needs if str(n) in kept]
    return {**app, key: inside}


def _quiet(app: dict[str, Any], instances: int | None) -> dict[str, Any]:
    given = {_SNAKE.sub("_", str(key)).lower() for key in app}
    app = dict(app)
    if not given & _OUT_KEYS:
        app["out_file"] = "/dev/null"
    if not given & _ERR_KEYS:
        app["error_file"] = "/dev/null"
    if instances is not None:
        app = {k: v for k, v in app.items() if k not in ("instances", "i")}
        app["instances"] = instances
    return app


def run(apps: list[dict[str, Any]], *, env_name: str | None = None, as_json: bool = False) -> int:
    """Run ``apps`` until a signal or their end; the exit code (see the module)."""
    signals = Signals()
    signals.install()  # before the daemon: a SIGTERM during the start is not lost
    os.environ["CORRAL_RUNTIME"] = "1"  # plugins leave what they cannot do to the container
    names = api.plugin_names()
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # as the daemon's own main
    output = Output(as_json=as_json)
    try:
        pm = corral.connect(no_daemon=True, plugins=[*names, output])
    except corral.CorralError as exc:  # a daemon serves this home already
        say(f"{exc}".split(": use connect()")[0] + ": set CORRAL_HOME to another directory")
        return EXIT_USAGE
    try:
        return _serve(pm, apps, env_name, signals)
    finally:
        pm.disconnect()  # the in-process daemon stops every app, each as its options say
        output.close()


def _serve(pm: Any, apps: list[dict[str, Any]], env_name: str | None, signals: Signals) -> int:
    start = Job(lambda client: client.start(apps, env_name=env_name), signals.wake)
    while not start.done.is_set():
        if _stopping(signals):
            return EXIT_OK
        signals.wake.wait(POLL)
        signals.wake.clear()
    if isinstance(start.error, corral.CorralError):
        say(f"cannot start: {start.error}")
        return EXIT_USAGE
    if start.error is not None:
        raise start.error
    return _watch(pm, signals)


def _stopping(signals: Signals) -> bool:
    if signals.stop is None:
        return False
    say(f"{signal.Signals(signals.stop).name}: stopping every app")
    return True


def _watch(pm: Any, signals: Signals) -> int:
    reloaded, reload = 0, None
    while True:
        signals.wake.wait(POLL)
        signals.wake.clear()
        if _stopping(signals):
            return EXIT_OK
        if signals.reloads != reloaded and (reload is None or reload.done.is_set()):
            reloaded = signals.reloads
            say("SIGHUP: reloading every app that runs")
            reload = Job(_reload, signals.wake)
        if reload is not None and reload.done.is_set() and reload.error is not None:
            say(f"reload failed: {reload.error}")
            reload.error = None
        verdict = _verdict(pm.list())
        if verdict is not None:
            return verdict


def _reload(client: Any) -> None:
    """A graceful reload of each app that runs: a finished job is not run again."""
    running = sorted({info.name for info in client.list() if info.status == "online"})
    for name in running:
        client.graceful_reload(name)


def _verdict(infos: list[Any]) -> int | None:
    """EXIT_FAILED once an app errored; once every app ended and none waits (for a
    restart, a dependency or its next cron tick), EXIT_OK if each ended well (exit 0,
    or one of its ``stop_exit_codes``); else None: keep running."""
    for info in infos:
        if info.status == "errored":
            say(f"{info.name} (pm_id {info.pm_id}) errored: corral will not restart it")
            return EXIT_FAILED
    if any(info.status not in _ENDED or _waits(info) for info in infos):
        return None
    failed = [info for info in infos if not ended_well(info)]
    for info in failed:
        say(f"{info.name} (pm_id {info.pm_id}) exited with {info.pm2_env.get('exit_code')}")
    return EXIT_FAILED if failed else EXIT_OK


def ended_well(info: Any) -> bool:
    """Its last exit was 0 or one of its ``stop_exit_codes`` (or it never ran)."""
    code = info.pm2_env.get("exit_code")
    return code in (0, None) or code in (info.pm2_env.get("stop_exit_codes") or ())


def _waits(info: Any) -> bool:
    """Stopped only until a plugin starts it: the depends plugin's wait, or the cron
    plugin's next tick."""
    return _held(info) or bool(info.pm2_env.get("cron_restart"))


def _held(info: Any) -> bool:
    """Stopped only until a plugin starts it (the depends plugin's wait)."""
    status = info.pm2_env.get("depends_status")
    return bool(isinstance(status, dict) and status.get("waiting_for"))


def say(text: str) -> None:
    """A line of the runtime's own, on stderr."""
    sys.stderr.write(f"corral runtime: {text}\n")
    sys.stderr.flush()


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "ended_well", "run", "runtime_apps", "say"]

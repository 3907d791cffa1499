"""The manager of ``corral runtime``: a daemon in this process, the apps started, the
signals acted on, and an exit code the orchestrator can read.

The daemon runs on a thread of this process (``corral.connect(no_daemon=True)``)
with every installed plugin and :class:`~corral.plugins.runtime.output.Output`,
and serves its home as any daemon does, so ``corral ls``, ``corral reload`` and
``corral logs`` work from ``docker exec``. The apps write no log file unless their
options name one; their output is the runtime's. The main thread waits for a
signal or for the apps' end:

- SIGTERM, SIGINT, SIGQUIT: every app is stopped at once, each with its own
  ``kill_signal`` and ``kill_timeout`` (SIGKILL after it), then exit 0.
- SIGHUP: a graceful reload of every app (0-downtime in cluster mode).
- An app errored (corral will not restart it: ``max_restarts`` reached): the
  others are stopped, exit 1, so the orchestrator restarts the container.
- Every app ended and none will restart (jobs, ``autorestart: false``): exit 0
  when each last exit code was 0, else 1.

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
        for sig in (*STOPPING, signal.SIGHUP):
            signal.signal(sig, self.handle)


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
        apps = [{**app, "name": name} for app in apps]
    if only:
        apps = [app for app in apps if str(app.get("name")) in only]
        if not apps:
            raise corral.ConfigError(f"--only {','.join(only)}: no app of {target} has that name")
    return [_quiet(app, instances) for app in apps]


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
    names = list(api.load_plugins().records)
    try:
        pm = corral.connect(no_daemon=True, plugins=[*names, Output(as_json=as_json)])
    except corral.CorralError as exc:  # a daemon serves this home already
        say(str(exc))
        return EXIT_USAGE
    try:
        try:
            pm.start(apps, env_name=env_name)
        except corral.CorralError as exc:
            say(f"cannot start: {exc}")
            return EXIT_USAGE
        return _watch(pm, signals)
    finally:
        pm.disconnect()  # the in-process daemon stops every app, each as its options say


def _watch(pm: Any, signals: Signals) -> int:
    reloaded = 0
    while True:
        signals.wake.wait(POLL)
        signals.wake.clear()
        if signals.stop is not None:
            say(f"{signal.Signals(signals.stop).name}: stopping every app")
            return EXIT_OK
        if signals.reloads != reloaded:
            reloaded = signals.reloads
            say("SIGHUP: reloading every app")
            _reload(pm)
        verdict = _verdict(pm.list())
        if verdict is not None:
            return verdict


def _reload(pm: Any) -> None:
    try:
        pm.graceful_reload("all")
    except corral.CorralError as exc:
        say(f"reload failed: {exc}")


def _verdict(infos: list[Any]) -> int | None:
    """EXIT_FAILED once an app errored; once every app ended and none waits (for a
    restart or a dependency), EXIT_OK if each exited 0; else None: keep running."""
    for info in infos:
        if info.status == "errored":
            say(f"{info.name} (pm_id {info.pm_id}) errored: corral will not restart it")
            return EXIT_FAILED
    if any(info.status not in _ENDED or _held(info) for info in infos):
        return None
    failed = [info for info in infos if info.pm2_env.get("exit_code") not in (0, None)]
    for info in failed:
        say(f"{info.name} (pm_id {info.pm_id}) exited with {info.pm2_env.get('exit_code')}")
    return EXIT_FAILED if failed else EXIT_OK


def _held(info: Any) -> bool:
    """Stopped only until a plugin starts it (the depends plugin's wait)."""
    status = info.pm2_env.get("depends_status")
    return bool(isinstance(status, dict) and status.get("waiting_for"))


def say(text: str) -> None:
    """A line of the runtime's own, on stderr."""
    sys.stderr.write(f"corral runtime: {text}\n")
    sys.stderr.flush()


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "run", "runtime_apps", "say"]

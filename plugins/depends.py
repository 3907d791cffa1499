"""depends: start an app only once the apps it needs are up, as docker compose's
``depends_on`` and systemd's ``After=``/``Requires=`` do.

Option (per app)::

    depends_on: [db, cache]                 # each must be started (online)
    depends_on: {db: healthy, migrate: completed, cache: started}

- ``started``: every instance of the app is ``online``.
- ``healthy``: every instance is ready: its readiness signal came (``wait_ready``)
  and, with the health plugin's readiness check, the check passed.
- ``completed``: the app ran and exited with code 0 (a one-shot job, with
  ``autorestart: false``) and is ``stopped``.

A ``start`` (of a script, or a config file's apps), and a ``resurrect``, launch at
once every app whose dependencies are met (the ones with none, in parallel) and
hold the others back: they stay ``stopped``, registered, ``describe`` says what
each waits for (``pm2_env.depends_status``), and each is started the moment its
dependencies are met (a ``start`` event with the reason). An app named in
``depends_on`` must be in the same start or already known to the daemon; a cycle
or an unknown name is an error that names the apps, and nothing starts. A start
of a stopped app (``start NAME``, ``start all``) holds it the same way. A ``stop``
of several apps (``stop all``, a config file's) stops each app before the apps it
depends on, wave by wave; a stop of a held app ends its wait.

RPC: ``depends`` -> ``{"<pm_id>": {"name", "waiting_for": [...]}}`` for the held apps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import corral

# Its hooks only look at loop state and start tasks.
corral_runs_on_loop = True

CONDITIONS = ("started", "healthy", "completed")
SHOWN_KEY = "depends_status"
STATE_KEY = "depends.waiting"


def normalize(value: Any) -> dict[str, str]:
    """``depends_on`` as ``{name: condition}``: a list or a name means ``started``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        value = dict.fromkeys(value, "started") if all(isinstance(v, str) for v in value) else None
    if not isinstance(value, dict):
        raise ValueError(
            "give a list of app names, or a mapping of names to "
            f"{' | '.join(CONDITIONS)}, e.g. {{db: healthy}}"
        )
    result = {}
    for name, condition in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"an app name must be a non-empty string, got {name!r}")
        if condition not in CONDITIONS:
            raise ValueError(
                f"{name}: the condition is one of {', '.join(CONDITIONS)}, got {condition!r}"
            )
        result[name] = condition
    return result


def _error(message: str) -> corral.OptionError:
    return corral.OptionError(f"depends_on: {message}", field="depends_on")


def check_graph(
    batch: Mapping[str, Mapping[str, str]], known: Mapping[str, Mapping[str, str]]
) -> None:
    """OptionError for a name neither in the batch nor known, or for a cycle, naming apps."""
    graph = {**known, **batch}
    for name, needs in batch.items():
        missing = sorted(set(needs) - set(graph))
        if missing:
            raise _error(
                f"{name} needs {', '.join(missing)}, which is in neither this start nor the "
                "daemon's apps: start it in the same file, or remove it from depends_on"
            )
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for start in graph:
        if state.get(start):
            continue
        path, stack = [start], [iter(graph.get(start, {}))]
        state[start] = 1
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(following) == 1:
                cycle = [*path[path.index(following) :], following]
                raise _error(f"a cycle: {' -> '.join(cycle)}; break it, nothing was started")
            if not state.get(following):
                state[following] = 1
                path.append(following)
                stack.append(iter(graph.get(following, {})))


def met(daemon: Any, name: str, condition: str) -> bool:
    """Whether every instance of the app ``name`` meets ``condition`` now."""
    procs = [p for p in daemon.processes() if p.name == name]
    if not procs:
        return False
    for proc in procs:
        state = proc.state
        if condition == "completed":
            last = proc.pm2_env(with_env=False).get("last_exit") or {}
            if state is not corral.ProcessState.STOPPED or last.get("code") != 0:
                return False
        elif state is not corral.ProcessState.ONLINE:
            return False
        elif condition == "healthy":
            fields = proc.pm2_env(with_env=False)
            health = fields.get("health_status")
            if not fields.get("ready") or (health and health.get("status") != "healthy"):
                return False
    return True


class Waiting:
    """Each daemon's held apps, on its loop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.held: dict[int, Any] = {}  # pm_id -> the held process
        self.starting: set[int] = set()

    def hold(self, app: Any) -> str | None:
        raw = app.options.get("depends_on")
        if not raw:
            return None  # the common case, once per app of a start: nothing to look at
        needs = normalize(raw)
        waiting = self.unmet(needs)
        if not waiting:
            return None
        self.held[app.pm_id] = app
        self.daemon.show(app, SHOWN_KEY, {"waiting_for": waiting})
        return f"waiting for {', '.join(waiting)}"

    def unmet(self, needs: Mapping[str, str]) -> list[str]:
        waiting = [(n, c) for n, c in needs.items() if not met(self.daemon, n, c)]
        if not waiting:
            return []
        names = {p.name for p in self.daemon.processes()}
        gone = ": no such app, start it or change depends_on"
        return [f"{n} ({c})" + ("" if n in names else gone) for n, c in waiting]

    def review(self) -> None:
        """Start each held app whose dependencies are met now; forget the deleted."""
        for pm_id, app in list(self.held.items()):
            if pm_id in self.starting:
                continue
            if self.daemon.process(pm_id) is not app:
                del self.held[pm_id]
                continue
            if app.state is not corral.ProcessState.STOPPED:  # a user started it
                self.release(app)
                continue
            needs = normalize(app.options.get("depends_on") or {})
            waiting = self.unmet(needs)
            if waiting:
                self.daemon.show(app, SHOWN_KEY, {"waiting_for": waiting})
                continue
            self.starting.add(pm_id)
            met_words = ", ".join(f"{n} ({c})" for n, c in needs.items())
            task = self.daemon.loop.create_task(
                self.daemon.start_process(app, reason=f"dependencies met: {met_words}")
            )
            task.add_done_callback(lambda t, app=app: self._started(app, t))

    def _started(self, app: Any, task: Any) -> None:
        self.starting.discard(app.pm_id)
        self.release(app)
        if not task.cancelled() and task.exception() is not None:
            self.daemon.log.error(
                "depends: start failed", name=app.name, error=repr(task.exception())
            )

    def release(self, app: Any) -> None:
        self.held.pop(app.pm_id, None)
        if self.daemon.process(app.pm_id) is app:
            self.daemon.show(app, SHOWN_KEY, None)

    def stats(self) -> dict[str, Any]:
        return {
            str(pm_id): {
                "name": app.name,
                "waiting_for": self.unmet(normalize(app.options.get("depends_on") or {})),
            }
            for pm_id, app in sorted(self.held.items())
        }


def waiting(daemon: Any) -> Waiting:
    return daemon.state(STATE_KEY, lambda: Waiting(daemon))


def _graph(apps: Iterable[tuple[str, Any]]) -> dict[str, dict[str, str]]:
    graph: dict[str, dict[str, str]] = {}
    for name, options in apps:
        graph.setdefault(name, {}).update(normalize(options.get("depends_on") or {}))
    return graph


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "depends_on",
            "any",
            help="start only once these apps are up: [db, cache], or "
            "{db: healthy, migrate: completed, cache: started}",
            validate=normalize,
        )
    ]


@corral.hookimpl
def corral_validate_start(daemon: Any, apps: list[dict[str, Any]]) -> None:
    batch = _graph((app["name"], app["options"]) for app in apps)
    names = set(batch)
    known = _graph((p.name, p.options) for p in daemon.processes() if p.name not in names)
    check_graph(batch, known)


@corral.hookimpl
def corral_hold_launch(daemon: Any, app: Any) -> str | None:
    return waiting(daemon).hold(app)


def stop_waves(apps: list[Any]) -> list[list[Any]]:
    """``apps`` in waves for a stop: each app before every app it depends on (among
    ``apps``), the apps nothing left depends on first; the rest, in a cycle, last."""
    needs = {id(a): set(normalize(a.options.get("depends_on") or {})) for a in apps}
    left, waves = list(apps), []
    while left:
        needed = {name for a in left for name in needs[id(a)]}
        wave = [a for a in left if a.name not in needed]
        if not wave:  # a cycle among the rest (made before the plugin came): together
            wave = left
        waves.append(wave)
        left = [a for a in left if a not in wave]
    return waves


@corral.hookimpl
def corral_stop_order(daemon: Any, apps: list[Any]) -> list[list[Any]] | None:
    held = waiting(daemon)
    for app in apps:  # a user's stop ends a wait: the app stays stopped
        if app.pm_id in held.held:
            held.release(app)
    if not any(a.options.get("depends_on") for a in apps):
        return None
    return stop_waves(apps)


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    held = waiting(daemon)
    if held.held:
        held.review()


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"depends": lambda daemon: waiting(daemon).stats()}

"""``ProcessInfo``: what ``list()`` and ``describe()`` return.

``describe()`` (and a daemon from before the compact list) gives each process as a
``pm2 jlist`` entry. ``list()`` asks for the compact form instead (``list`` with
``form="rows"``, :mod:`corral.daemon.commands.listing`): the field names once per
shape, one row of values per process, the environment left out unless ``env=True``;
a ``ProcessInfo`` reads its row in place and builds the ``pm2 jlist`` entry only
when asked for it, fetching the environment then (one ``describe`` of its pm_id).
"""

from __future__ import annotations

from corral.errors import NotFoundError, ProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING: `corral ls` reads rows without typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    EnvFetch = Callable[[int, str], dict[str, str]]  # (pm_id, name) -> the process's env

# pm2_env fields that describe the process, not its options
RUNTIME_FIELDS = frozenset(
    {
        "pm_id",
        "status",
        "pm_uptime",
        "created_at",
        "restart_time",
        "unstable_restarts",
        "prev_restart_delay",
        "exit_code",
        "last_exit",
        "unique_id",
        "env",
        "exec_interpreter",
        "pm_exec_path",
        "pm_cwd",
        "pm_out_log_path",
        "pm_err_log_path",
        "pm_log_path",
        "pm_pid_path",
        "NODE_APP_INSTANCE",
        "username",
        "version",
        "versioning",
        "vizion_running",
        "km_link",
        "exec_mode",
        "log_drops",
        "ready",
        "ready_by",
        "ready_at",
        "health_status",  # the health plugin's (corral.plugins.health)
        "depends_status",  # the depends plugin's (corral.plugins.depends)
        "cgroup_status",  # the cgroups plugin's (corral.plugins.cgroups)
    }
)


# a compact list's live row: pid, memory, cpu, then the runtime values
PID, MEMORY, CPU = 0, 1, 2


class Shape:
    """The field names of the rows of one shape, and where each value is: its position
    in the live row (>= 0), or from the end of the fixed row (< 0)."""

    __slots__ = ("fixed", "index", "runtime", "skipped")

    def __init__(self, names: list[list[str]], with_env: bool) -> None:
        self.fixed, self.runtime = names
        self.skipped = frozenset(self.runtime)  # env copies PM2's pm2_env leaves out
        end = len(self.fixed) + with_env  # the fixed row: [shape, value..., (env)]
        self.index = {key: j - end for j, key in enumerate(self.fixed)}
        self.index.update((key, 3 + i) for i, key in enumerate(self.runtime))

    def items(self, live: list[Any], row: list[Any]) -> list[tuple[str, Any]]:
        """The fields and values, fixed then runtime (``pm2_env``'s order)."""
        fixed = row[1 : 1 + len(self.fixed)]
        return [*zip(self.fixed, fixed, strict=True), *zip(self.runtime, live[3:], strict=True)]


def from_rows(reply: dict[str, Any], fetch: EnvFetch | None) -> list[ProcessInfo]:
    """The ProcessInfo of each process of a compact ``list`` reply (the shapes decoded
    once; each process's live and fixed rows read in place)."""
    with_env = bool(reply.get("env"))
    shapes = [Shape(names, with_env) for names in reply["shapes"]]
    new = ProcessInfo.from_row
    return [
        new(shapes[row[0]], live, row, with_env, fetch)
        for live, row in zip(reply["live"], reply["rows"], strict=True)
    ]


def env_of(infos: list[ProcessInfo], pm_id: int, name: str) -> dict[str, str]:
    """The env of process ``pm_id`` in a ``describe`` reply; NotFoundError if that pm_id
    now names another app (deleted since the list, and its id taken by a new one)."""
    for info in infos:
        if info.pm_id == pm_id and info.name == name:
            return info.env
    raise NotFoundError(
        f"process {pm_id} ({name}) is not the one listed any more (deleted since): list again"
    )


def old_daemon(exc: ProtocolError) -> bool:
    """Whether ``list``'s compact form was refused by a daemon from before it (the
    client then sends the old form)."""
    return str(exc).startswith("bad arguments for 'list'")


_NO_ENV: Any = object()  # the env of a row that left it out, not fetched yet


class ProcessInfo:
    """One process as ``pm2 jlist`` shows it; ``to_dict()`` gives that shape back.

    From ``list()``, the environment comes on first use of :attr:`env`,
    :attr:`pm2_env`, ``to_dict()``, ``info["pm2_env"]`` or ``==`` (one ``describe``
    of this pm_id), unless ``list(env=True)`` brought it; every other property
    reads the row the daemon sent, with no request.
    """

    __slots__ = ("_data", "_env", "_fetch", "_live", "_row", "_shape")

    def __init__(self, data: dict[str, Any]) -> None:
        self._data: dict[str, Any] | None = data
        self._shape: Shape | None = None
        self._live: list[Any] = []
        self._row: list[Any] = []
        self._env: Any = None
        self._fetch: EnvFetch | None = None

    @classmethod
    def from_row(
        cls,
        shape: Shape,
        live: list[Any],
        row: list[Any],
        with_env: bool,
        fetch: EnvFetch | None,
    ) -> ProcessInfo:
        """A process of the compact list: its rows, read in place (see from_rows)."""
        info = cls.__new__(cls)
        info._data = None
        info._shape = shape
        info._live = live
        info._row = row
        info._env = row[-1] if with_env else _NO_ENV
        info._fetch = fetch
        return info

    def field(self, key: str, default: Any = None) -> Any:
        """One ``pm2_env`` field (an option, path, counter; not the env's copies),
        read without building ``pm2_env`` or fetching the environment."""
        if self._data is not None:
            return self._data["pm2_env"].get(key, default)
        position = self._shape.index.get(key)  # type: ignore[union-attr]
        if position is None:
            return default
        return self._live[position] if position >= 0 else self._row[position]

    @property
    def pm2_env(self) -> dict[str, Any]:
        return self._full()["pm2_env"]

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def pm_id(self) -> int:
        return self["pm_id"]

    @property
    def pid(self) -> int | None:
        return self["pid"] or None

    @property
    def status(self) -> str:
        return self.field("status")

    @property
    def ready(self) -> bool:
        """Whether the current instance said it is ready (``ready_by``), apart from its
        status: an app without ``wait_ready`` is ``online`` from its spawn, ready or not."""
        return bool(self.field("ready"))

    @property
    def ready_by(self) -> str | None:
        """What ended the wait for readiness: ``"spawned"`` (an app that sends no signal:
        fork mode without ``wait_ready``), ``"ready message"`` (``process.send('ready')``,
        ``corral.child.ready()``), ``"sd_notify READY=1"``, ``"listening"`` (the node
        preload), or ``"listen_timeout"`` (none came in time: ``ready`` is false). None
        while it waits, and when no instance runs."""
        return self.field("ready_by")

    @property
    def ready_at(self) -> int | None:
        """When ``ready_by`` happened, epoch ms (``pm_uptime`` is the spawn)."""
        return self.field("ready_at")

    @property
    def namespace(self) -> str:
        return self.field("namespace", "default")

    @property
    def exec_mode(self) -> str:
        return self.field("exec_mode", "fork_mode")

    @property
    def restart_time(self) -> int:
        return self.field("restart_time", 0)

    @property
    def unstable_restarts(self) -> int:
        return self.field("unstable_restarts", 0)

    @property
    def pm_uptime(self) -> int:
        return self.field("pm_uptime", 0)

    @property
    def created_at(self) -> int | None:
        return self.field("created_at")

    @property
    def exit_code(self) -> int | None:
        return self.field("exit_code")

    @property
    def memory(self) -> int:
        return self["monit"]["memory"] if self._data is not None else self._live[MEMORY]

    @property
    def cpu(self) -> float:
        return self["monit"]["cpu"] if self._data is not None else self._live[CPU]

    @property
    def out_log(self) -> str | None:
        return self.field("pm_out_log_path")

    @property
    def err_log(self) -> str | None:
        return self.field("pm_err_log_path")

    @property
    def pid_path(self) -> str | None:
        return self.field("pm_pid_path")

    @property
    def log_drops(self) -> list[dict[str, Any]]:
        """The log files that lost lines or cannot be written now: ``path``, ``error``
        (None once writing again), ``lines`` and ``bytes`` dropped, ``failing_since`` (ms)."""
        return self.field("log_drops", [])

    @property
    def env(self) -> dict[str, str]:
        """The app's environment; from ``list()``, fetched on first use (one ``describe``)."""
        if self._data is not None:
            return self._data["pm2_env"].get("env", {})
        return self._fetched_env()

    @property
    def options(self) -> dict[str, Any]:
        """The app's options (canonical names), without runtime fields and env copies."""
        if self._data is None:  # a row holds no env copies: no need to fetch the env
            items = self._shape.items(self._live, self._row)  # type: ignore[union-attr]
            return {k: v for k, v in items if k not in RUNTIME_FIELDS}
        env = self.env  # a field with the env's value of its name is the env's copy
        return {
            k: v
            for k, v in self.pm2_env.items()
            if k not in RUNTIME_FIELDS
            and (k not in env or env[k] != v or k in ("name", "namespace"))
        }

    def to_dict(self) -> dict[str, Any]:
        import copy  # deferred: `corral ls` never copies a row

        return copy.deepcopy(self._full())

    def __getitem__(self, key: str) -> Any:
        if self._data is not None:
            return self._data[key]
        if key == "pid":
            return self._live[PID]
        if key in ("name", "pm_id"):
            return self.field(key)
        return self._full()[key]

    def __repr__(self) -> str:
        return f"<ProcessInfo {self.pm_id} {self.name!r} {self.status} pid={self.pid}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessInfo) and other._full() == self._full()

    __hash__ = None  # type: ignore[assignment]  # as before: equal by value, so unhashable

    def _fetched_env(self) -> dict[str, str]:
        if self._env is _NO_ENV:
            if self._fetch is None:
                raise LookupError("this ProcessInfo has no client to fetch its env from")
            self._env = self._fetch(self.pm_id, self.name)
        return self._env

    def _full(self) -> dict[str, Any]:
        """The ``pm2 jlist`` entry: built from the row (the env fetched) on first use."""
        if self._data is None:
            env = self._fetched_env()
            shape, live, row = self._shape, self._live, self._row
            assert shape is not None
            # as PM2, every variable at the top level too (as ManagedProcess.to_json orders
            # them: the env's copies, the fixed fields, env, the runtime fields)
            pm2_env = {k: v for k, v in env.items() if k not in shape.skipped}
            pm2_env.update(zip(shape.fixed, row[1 : 1 + len(shape.fixed)], strict=True))
            pm2_env["env"] = env
            pm2_env.update(zip(shape.runtime, live[3:], strict=True))
            self._data = {
                "pid": live[PID],
                "name": pm2_env["name"],
                "pm_id": pm2_env["pm_id"],
                "monit": {"memory": live[MEMORY], "cpu": live[CPU]},
                "pm2_env": pm2_env,
            }
        return self._data

"""``ProcessInfo``: what ``list()`` and ``describe()`` return."""

from __future__ import annotations

import copy
from typing import Any

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
    }
)


class ProcessInfo:
    """One process as ``pm2 jlist`` shows it; ``to_dict()`` gives that shape back."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def pm2_env(self) -> dict[str, Any]:
        return self._data["pm2_env"]

    @property
    def name(self) -> str:
        return self._data["name"]

    @property
    def pm_id(self) -> int:
        return self._data["pm_id"]

    @property
    def pid(self) -> int | None:
        return self._data.get("pid") or None

    @property
    def status(self) -> str:
        return self.pm2_env["status"]

    @property
    def ready(self) -> bool:
        """Whether the current instance said it is ready (``ready_by``), apart from its
        status: an app without ``wait_ready`` is ``online`` from its spawn, ready or not."""
        return bool(self.pm2_env.get("ready"))

    @property
    def ready_by(self) -> str | None:
        """What ended the wait for readiness: ``"spawned"`` (an app that sends no signal:
        fork mode without ``wait_ready``), ``"ready message"`` (``process.send('ready')``,
        ``corral.child.ready()``), ``"sd_notify READY=1"``, ``"listening"`` (the node
        preload), or ``"listen_timeout"`` (none came in time: ``ready`` is false). None
        while it waits, and when no instance runs."""
        return self.pm2_env.get("ready_by")

    @property
    def ready_at(self) -> int | None:
        """When ``ready_by`` happened, epoch ms (``pm_uptime`` is the spawn)."""
        return self.pm2_env.get("ready_at")

    @property
    def namespace(self) -> str:
        return self.pm2_env.get("namespace", "default")

    @property
    def exec_mode(self) -> str:
        return self.pm2_env.get("exec_mode", "fork_mode")

    @property
    def restart_time(self) -> int:
        return self.pm2_env.get("restart_time", 0)

    @property
    def unstable_restarts(self) -> int:
        return self.pm2_env.get("unstable_restarts", 0)

    @property
    def pm_uptime(self) -> int:
        return self.pm2_env.get("pm_uptime", 0)

    @property
    def created_at(self) -> int | None:
        return self.pm2_env.get("created_at")

    @property
    def exit_code(self) -> int | None:
        return self.pm2_env.get("exit_code")

    @property
    def memory(self) -> int:
        return self._data["monit"]["memory"]

    @property
    def cpu(self) -> float:
        return self._data["monit"]["cpu"]

    @property
    def out_log(self) -> str | None:
        return self.pm2_env.get("pm_out_log_path")

    @property
    def err_log(self) -> str | None:
        return self.pm2_env.get("pm_err_log_path")

    @property
    def pid_path(self) -> str | None:
        return self.pm2_env.get("pm_pid_path")

    @property
    def log_drops(self) -> list[dict[str, Any]]:
        """The log files that lost lines or cannot be written now: ``path``, ``error``
        (None once writing again), ``lines`` and ``bytes`` dropped, ``failing_since`` (ms)."""
        return self.pm2_env.get("log_drops", [])

    @property
    def env(self) -> dict[str, str]:
        return self.pm2_env.get("env", {})

    @property
    def options(self) -> dict[str, Any]:
        """The app's options (canonical names), without runtime fields and env copies."""
        env = self.env
        return {
            k: v
            for k, v in self.pm2_env.items()
            if k not in RUNTIME_FIELDS and (k not in env or k in ("name", "namespace"))
        }

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __repr__(self) -> str:
        return f"<ProcessInfo {self.pm_id} {self.name!r} {self.status} pid={self.pid}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessInfo) and other._data == self._data

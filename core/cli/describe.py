"""What ``corral describe`` shows: everything an instance was started with, its
readiness, its last exit, its counters and log files, and the plugins acting on it
(watch, cron, memory), as a rich panel or as one JSON document (``--json``).

The panel and the document are built from plain values: a ``ProcessInfo`` (or
anything with its attributes and ``to_dict()``), and what the plugins answer
(:func:`plugin_facts`), so both are tested without a daemon.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from corral.cli.render import (
    human_bytes,
    human_cpu,
    human_duration,
    mode_word,
    now_ms,
    printable,
    status_text,
    uptime_of,
)
from corral.cli.words import health_word
from corral.options.secrets import mask, mask_args, mask_data, secret_values
from corral.options.table import CORE_OPTIONS

# Options shown in the first part of the panel, or as the env section: not repeated
# among the settings that differ from their default.
SHOWN_ABOVE = frozenset(
    {"name", "namespace", "script", "args", "node_args", "exec_interpreter", "cwd", "env"}
    | {"depends_on"}
)
# Option values that say "not set" when an option has no declared default.
UNSET = (None, False, "", [], {})


def _env(info: Any) -> dict:
    env = getattr(info, "pm2_env", None)
    return env if isinstance(env, dict) else info.to_dict().get("pm2_env", {})


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _words(value: Any) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _ms(ms: int) -> str:
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:g} s"


def last_exit_text(info: Any, now: int) -> str:
    """``exit code 3, 2026-12-03 16:01:02 (5m ago)``, ``killed by SIGKILL, ...`` or ``-``."""
    last = _env(info).get("last_exit")
    if not last:
        code = _env(info).get("exit_code")
        return "-" if code is None else f"exit code {code}"  # a daemon that keeps no time
    how = f"killed by {last['signal']}" if last.get("signal") else f"exit code {last.get('code')}"
    if last.get("reason"):  # a plugin ended it (a failed liveness check)
        how = f"{how}: {last['reason']}"
    at = last.get("at")
    if not at:
        return how
    return f"{how}, {_when(at)} ({human_duration(now - at)} ago)"


def describe_rows(
    info: Any, now: int, *, show_secrets: bool = False
) -> list[tuple[str, str | Text]]:
    """The fields ``corral describe`` shows first, in order, as (label, value); secrets
    in the script's and interpreter's arguments masked unless ``show_secrets``."""
    env = _env(info)
    opts = info.options or {}

    def shown(value: Any) -> str:
        if show_secrets:
            return _words(value)
        if isinstance(value, (list, tuple)):
            return _words(mask_args(value))
        return " ".join(mask_args(_words(value).split(" ")))  # a command line, as typed

    return [
        ("status", status_text(info.status)),
        ("ready", ready_text(info)),
        *(
            (("health", health_text(env["health_status"], now)),)
            if env.get("health_status")
            else ()
        ),
        *((("depends on", depends_text(opts, env)),) if opts.get("depends_on") else ()),
        *((("limits", limits_text(env["cgroup_status"])),) if env.get("cgroup_status") else ()),
        ("name", info.name),
        ("namespace", info.namespace),
        ("id", str(info.pm_id)),
        ("pid", str(info.pid or "-")),
        ("exec mode", mode_word(info.exec_mode)),
        ("restarts", str(info.restart_time)),
        ("unstable restarts", str(info.unstable_restarts)),
        ("last exit", last_exit_text(info, now)),
        ("uptime", uptime_of(info, now)),
        ("created at", _when(info.created_at)),
        ("cpu", human_cpu(info.cpu)),
        ("memory", human_bytes(info.memory)),
        ("user", _words(env.get("uid") or env.get("username"))),
        ("script path", shown(env.get("pm_exec_path", opts.get("script")))),
        ("script args", shown(opts.get("args"))),
        ("interpreter", _words(env.get("exec_interpreter", opts.get("exec_interpreter")))),
        ("interpreter args", shown(opts.get("node_args"))),
        ("exec cwd", _words(env.get("pm_cwd", opts.get("cwd")))),
        ("autorestart", _words(opts.get("autorestart", True))),
        ("out log path", info.out_log or "-"),
        ("error log path", info.err_log or "-"),
        ("combined log path", _words(env.get("pm_log_path"))),
        ("pid path", _words(env.get("pm_pid_path"))),
        *(("log drops", _log_drop(drop)) for drop in env.get("log_drops") or []),
    ]


def health_text(health: dict[str, Any], now: int) -> str:
    """The health plugin's ``health_status``: ``healthy (http http://...: 200 OK, 2s
    ago)``, ``unhealthy 2/3 (...)``, ``unknown (...)``."""
    status = health_word(health)
    seen = [str(health.get("check") or "")]
    if health.get("last"):
        seen[0] += f": {health['last']}"
    if health.get("checked_at"):
        seen.append(f"{human_duration(max(0, now - health['checked_at']))} ago")
    return f"{status} ({', '.join(s for s in seen if s)})"


def depends_text(options: dict[str, Any], env: dict[str, Any]) -> str:
    """The depends plugin's edges: ``db (healthy), cache (started)``, and what the app
    still waits for: ``; waiting for db (healthy)``."""
    needs = options.get("depends_on")
    if isinstance(needs, dict):
        words = ", ".join(f"{name} ({condition})" for name, condition in needs.items())
    else:
        words = _words(needs)
    waiting = (env.get("depends_status") or {}).get("waiting_for")
    return f"{words}; waiting for {', '.join(waiting)}" if waiting else words


def limits_text(status: dict[str, Any]) -> str:
    """The cgroups plugin's kernel limits: ``memory_max 52428800, pids_max 20``, and the
    last OOM kill they made."""
    limits = status.get("limits") or {}
    words = ", ".join(f"{key} {value}" for key, value in limits.items())
    return f"{words}; {status['last_oom']}" if status.get("last_oom") else words


def ready_text(info: Any) -> str:
    """The instance's readiness, beside its status: ``yes (ready message, 1.2 s after
    spawn)``, ``no: listen_timeout (3 s) passed without a signal``, ``waiting (up to
    3 s)``, or ``-`` when no instance runs."""
    env = _env(info)
    by, at = env.get("ready_by"), env.get("ready_at")
    timeout = _ms(int((info.options or {}).get("listen_timeout") or 3000))
    if by is None:
        return f"waiting (up to {timeout})" if info.pid else "-"
    if by == "spawned":
        return "yes (at spawn: no signal awaited)"
    if by == "listen_timeout":
        if env.get("health_status"):  # the health plugin's readiness check held it
            return "no: its readiness signal or health check did not come in time"
        return f"no: listen_timeout ({timeout}) passed without a signal"
    spawned = info.pm_uptime
    after = f", {_ms(at - spawned)} after spawn" if at and spawned else ""
    return f"yes ({by}{after})"


def _log_drop(drop: dict[str, Any]) -> str:
    """``/logs/web-out.log: 120 lines (12.0 KB) dropped; No space left on device``."""
    lost = f"{drop.get('lines', 0)} lines ({human_bytes(drop.get('bytes', 0))}) dropped"
    now = f"; {drop['error']}" if drop.get("error") else "; writing again"
    return f"{drop.get('path')}: {lost}{now}"


def declared_defaults() -> dict[str, Any]:
    """Every declared option's default, core's and the installed plugins'."""
    try:
        # deferred: pluggy and the entry points, only for the defaults
        from corral.hooks import load_plugins

        declared = load_plugins().app_options()
    except Exception:  # a broken plugin must not hide the core settings
        declared = list(CORE_OPTIONS)
    return {option.name: option.default for option in declared}


def _is_default(value: Any, default: Any) -> bool:
    if default is None:
        return value in UNSET
    if isinstance(default, tuple):
        default = list(default)
    return value == default


def settings_rows(
    info: Any, defaults: Mapping[str, Any], *, show_secrets: bool = False
) -> list[tuple[str, str]]:
    """Every option the instance runs with that differs from its default (the ones the
    first rows show aside), sorted by name, secrets masked unless ``show_secrets``."""
    rows = []
    for key, value in sorted((info.options or {}).items()):
        if key in SHOWN_ABOVE or key.startswith("env_"):
            continue
        if _is_default(value, defaults.get(key)):
            continue
        if not show_secrets:
            value = mask_data(mask(key, value))
        rows.append((key, json.dumps(value) if not isinstance(value, str) else value))
    return rows


def divergent_env(
    info: Any, local: Mapping[str, str], *, show_secrets: bool = False
) -> list[tuple[str, str]]:
    """The app's variables whose value differs from ``local`` (PM2's "divergent env
    variables from local env"), sorted, secret values masked unless ``show_secrets``."""
    env = _env(info).get("env") or {}
    rows = [(k, v) for k, v in sorted(env.items()) if local.get(k) != v]
    if show_secrets:
        return [(k, str(v)) for k, v in rows]
    return [(k, str(mask(k, v))) for k, v in rows]


# -- the plugins acting on an instance ------------------------------------------


def plugin_facts(client: Any) -> dict[str, Any]:
    """What the watch, cron and memory plugins of the daemon say about every app:
    ``{"watch": [...], "cron": [...], "memory": {...}}``; a plugin not loaded is left out."""
    facts: dict[str, Any] = {}
    for key, command in (
        ("watch", "watch_status"),
        ("cron", "cron_jobs"),
        ("memory", "memory_stats"),
    ):
        try:
            facts[key] = client.call(command)
        except Exception:  # not loaded, or not answering: describe shows the rest
            continue
    return facts


def plugins_of(info: Any, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The plugins acting on this instance: ``watch`` (on/off, paths, ignore, restarts),
    ``cron`` (expression, next run in epoch ms, error), ``memory`` (limit, last sample)."""
    env, found = _env(info), {}
    opts = info.options or {}
    watch = next((w for w in facts.get("watch") or [] if w.get("name") == info.name), None)
    if env.get("watch") or watch is not None:
        found["watch"] = {
            "enabled": bool(env.get("watch")),
            "watching": bool(watch and watch.get("watching") and info.pm_id in watch["pm_ids"]),
            "paths": (watch or {}).get("paths") or [],
            "ignore": (watch or {}).get("ignore") or opts.get("ignore_watch") or [],
            "restarts": (watch or {}).get("restarts", 0),
            "error": (watch or {}).get("error"),
        }
    job = next((j for j in facts.get("cron") or [] if j.get("pm_id") == info.pm_id), None)
    if opts.get("cron_restart") or job is not None:
        found["cron"] = {
            "cron_restart": opts.get("cron_restart"),
            "tz": (job or {}).get("tz"),
            "next": (job or {}).get("next"),
            "error": (job or {}).get("error"),
        }
    sample = (facts.get("memory") or {}).get(str(info.pm_id))
    if opts.get("max_memory_restart") or sample is not None:
        found["memory"] = {
            "max_memory_restart": opts.get("max_memory_restart"),
            "rss": (sample or {}).get("rss"),
            "sampled_at": (sample or {}).get("sampled_at"),
        }
    return found


def plugin_rows(acting: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if "watch" in acting:
        w = acting["watch"]
        text = "off"
        if w["enabled"]:
            paths = ", ".join(w["paths"]) or "-"
            ignore = ", ".join(map(str, w["ignore"])) or "-"
            text = f"on, paths {paths}, ignore {ignore}, {w['restarts']} restarts"
        rows.append(("watch", text + (f"; {w['error']}" if w.get("error") else "")))
    if "cron" in acting:
        c = acting["cron"]
        when = f"next {_when(c['next'])}" if c.get("next") else (c.get("error") or "not armed")
        tz = f" ({c['tz']})" if c.get("tz") else ""
        rows.append(("cron", f"{c['cron_restart']}{tz}, {when}"))
    if "memory" in acting:
        m = acting["memory"]
        seen = f", last sample {human_bytes(m['rss'])}" if m.get("rss") is not None else ""
        limit = m["max_memory_restart"]
        limit = human_bytes(limit) if isinstance(limit, int) else _words(limit)
        rows.append(("memory limit", f"{limit}{seen}"))
    return rows


# -- the panel and the document ---------------------------------------------------


def describe_panel(
    info: Any,
    now: int | None = None,
    *,
    local_env: Mapping[str, str] | None = None,
    show_secrets: bool = False,
    defaults: Mapping[str, Any] | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Panel:
    """The ``corral describe`` panel: the first rows, the plugins acting on it (with
    ``facts``), the settings that differ from ``defaults``, and with ``local_env`` the
    app's variables that differ from it (secret values masked unless ``show_secrets``)."""
    now = now_ms() if now is None else now
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()

    def section(title: str, rows: Iterable[tuple[str, str]]) -> None:
        rows = list(rows)
        if rows:
            grid.add_row(Text(title, style="dim"), "")
        for label, value in rows:
            grid.add_row(Text(f"  {printable(label)}", style=""), Text(printable(value)))

    for label, value in describe_rows(info, now, show_secrets=show_secrets):
        grid.add_row(label, Text(printable(value)) if isinstance(value, str) else value)
    if facts is not None:
        section("plugins acting on it", plugin_rows(plugins_of(info, facts)))
    if defaults is not None:
        rows = settings_rows(info, defaults, show_secrets=show_secrets)
        section("settings (differ from the default)", rows)
    if local_env is not None:
        section(
            "env (differs from here)", divergent_env(info, local_env, show_secrets=show_secrets)
        )
    title = Text(f"{printable(info.name)} (id {info.pm_id})")
    return Panel(grid, title=title, title_align="left", expand=False)


def describe_document(
    info: Any, facts: Mapping[str, Any] | None = None, *, show_secrets: bool = False
) -> dict[str, Any]:
    """One instance for ``describe --json``: its ``jlist`` entry (``pm2_env`` keeps
    ``last_exit``, readiness, counters and log paths), plus ``plugins``: what the
    plugins acting on it say. Secret values masked unless ``show_secrets``."""
    document = info.to_dict()
    document["plugins"] = plugins_of(info, facts or {})
    if show_secrets:
        return document
    return mask_data(document, secret_values(_env(info).get("env") or {}))


def describe_json(
    infos: Sequence[Any], facts: Mapping[str, Any] | None = None, *, show_secrets: bool = False
) -> str:
    """``describe --json``: a list of documents, one per instance, by pm_id."""
    documents = [
        describe_document(info, facts, show_secrets=show_secrets)
        for info in sorted(infos, key=lambda i: i.pm_id)
    ]
    return json.dumps(documents, default=str)

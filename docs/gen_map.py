"""Regenerate the module map in CONTRIBUTING.md: every module of core/ and plugins/,
grouped by layer, each with the first line of its docstring.

python docs/gen_map.py          # rewrite CONTRIBUTING.md in place
python docs/gen_map.py --check  # exit 1 if the map is stale or a module has no group

The docstrings are the only source of the descriptions; GROUPS below says where
each module sits. A new module fails the check until it is placed in a group.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
BEGIN, END = "<!-- map:begin -->", "<!-- map:end -->"

# layer -> the modules of core/ in it (paths relative to core/), top of the stack first
GROUPS: dict[str, list[str]] = {
    "The contract with plugins": [
        "hookspecs.py",
        "hookspecs_lifecycle.py",
        "hookspecs_daemon.py",
        "hookspecs_client.py",
        "hooks.py",
        "offload.py",
        "api.py",
    ],
    "The CLI": [
        "cli.py",
        "cli_base.py",
        "cli_commands.py",
        "cli_session.py",
        "cli_start.py",
        "cli_process.py",
        "cli_inspect.py",
        "cli_daemon.py",
        "cli_flags.py",
        "cli_render.py",
        "cli_table.py",
        "cli_describe.py",
        "cli_actions.py",
        "cli_reconcile.py",
        "cli_targets.py",
        "cli_logs.py",
        "cli_logfiles.py",
        "cli_monit.py",
        "cli_stdin.py",
        "cli_extra.py",
        "cli_import.py",
        "cli_update.py",
        "completion.py",
        "ecosystem.py",
        "report.py",
        "logtail.py",
        "logwake.py",
        "monit_log.py",
        "__main__.py",
    ],
    "The client": [
        "__init__.py",
        "command_table.py",
        "client.py",
        "client_connect.py",
        "client_sync.py",
        "client_aio.py",
        "client_calls.py",
        "client_requests.py",
        "client_remote.py",
        "launcher.py",
        "updater.py",
        "info.py",
        "actions.py",
        "verdict.py",
        "targets.py",
        "rpc.py",
        "fastrpc.py",
        "testing.py",
        "event_recorder.py",
        "child.py",
    ],
    "The daemon: kernel and RPC": [
        "daemon.py",
        "recovery.py",
        "statefile.py",
        "daemon_main.py",
        "commands.py",
        "cmd_launch.py",
        "cmd_control.py",
        "cmd_listing.py",
        "cmd_dumps.py",
        "cmd_signals.py",
        "cmd_admin.py",
        "cmd_creation.py",
        "rpc_async.py",
        "replywait.py",
        "selection.py",
        "reconcile.py",
        "changes.py",
        "rollout.py",
        "handover.py",
        "upgrade.py",
        "state.py",
        "settings.py",
        "daemonlog.py",
        "homelock.py",
        "events.py",
        "fanout.py",
    ],
    "The daemon: one process slot and its children": [
        "process.py",
        "slot.py",
        "reaper.py",
        "stopper.py",
        "strays.py",
        "system.py",
        "spawn.py",
        "kill.py",
        "channel.py",
        "notify.py",
        "stdin.py",
        "listen.py",
        "cluster_share.py",
        "output.py",
        "lines.py",
        "logs.py",
        "logfile.py",
        "pidfile.py",
        "fdholder.py",
        "fdreserve.py",
        "cgroup.py",
        "cgroup_home.py",
        "monitor.py",
        "asuser.py",
        "credentials.py",
    ],
    "Pure logic (no processes, no I/O beyond reading a file)": [
        "lifecycle.py",
        "options.py",
        "option_table.py",
        "convert.py",
        "typos.py",
        "config.py",
        "config_formats.py",
        "config_paths.py",
        "apps.py",
        "datefmt.py",
        "secrets.py",
        "errors.py",
        "paths.py",
        "imports/__init__.py",
        "imports/supervisor.py",
        "imports/circus.py",
        "imports/ecosystem.py",
    ],
}


def first_line(path: Path) -> str:
    """The first sentence line of ``path``'s module docstring, or '' without one."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    if not lines:
        return ""
    text = lines[0]
    for line in lines[1:]:  # a first sentence wrapped over lines ends at a blank line
        if not line or text.endswith("."):
            break
        text += " " + line
    return text


def modules(top: Path) -> list[str]:
    """Every module under ``top``, relative to it."""
    return sorted(
        str(p.relative_to(top)) for p in top.rglob("*.py") if "__pycache__" not in p.parts
    )


def render() -> tuple[str, list[str]]:
    """The map's markdown, and the core modules no group places."""
    core = ROOT / "core"
    placed = {name for names in GROUPS.values() for name in names}
    unplaced = [m for m in modules(core) if m not in placed]
    missing = sorted(placed - set(modules(core)))
    out = [BEGIN]
    for group, names in GROUPS.items():
        out += ["", f"**{group}** (`core/`)", ""]
        for name in names:
            if name in missing:
                continue
            out.append(f"- `{name}`: {first_line(core / name)}")
    out += ["", "**First-party plugins** (`plugins/`, installed as `corral.plugins`)", ""]
    plugins = ROOT / "plugins"
    for name in modules(plugins):
        if name == "__init__.py":
            continue
        out.append(f"- `{name}`: {first_line(plugins / name)}")
    out += ["", END]
    return "\n".join(out), unplaced + [f"{m} (gone)" for m in missing]


def main(argv: list[str]) -> int:
    text = CONTRIBUTING.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new_map, problems = render()
    if problems:
        print("place these modules in docs/gen_map.py GROUPS:", ", ".join(problems))
        return 1
    new = text[:start] + new_map + text[end:]
    if "--check" in argv:
        if new != text:
            print("CONTRIBUTING.md's module map is stale: run python docs/gen_map.py")
            return 1
        return 0
    CONTRIBUTING.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

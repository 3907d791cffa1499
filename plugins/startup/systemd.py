"""Boot script for systemd: a unit that runs ``corral resurrect`` at boot.

``corral startup systemd`` (also ``ubuntu``, ``centos``, ``redhat``, ``arch``,
``oracle``) writes ``/etc/systemd/system/<service>.service`` (service
``corral-<user>``) and runs ``systemctl daemon-reload`` and ``systemctl enable``.
``corral startup systemd --user`` writes a user unit instead, in
``~/.config/systemd/user/corral.service``, enabled with ``systemctl --user``;
it needs no root, and starts at boot once lingering is on (``loginctl
enable-linger <user>``).

Why ``Type=forking``: ``corral resurrect`` starts the daemon detached (its own
session) and returns once the daemon answers and has replayed the dump, with
the daemon's pid already in ``$CORRAL_HOME/corral.pid``. That is the forking
contract: systemd waits for ExecStart to exit, reads ``PIDFile=`` and watches
that pid as the main process, so ``Restart=on-failure`` brings a crashed daemon
back (it recovers its apps from ``state.json``). ``Type=oneshot`` with
``RemainAfterExit`` would track nothing after ExecStart returns: a dead daemon
would leave the unit "active". ExecStart carries systemd's ``-`` prefix: with
no dump yet, ``corral resurrect`` exits 1 but the daemon is up, and that is a
started service; if the daemon itself failed there is no pid file and the unit
fails anyway. ExecStop runs ``corral kill`` (no dump, as PM2), ExecReload
``corral reload all``.
"""

from __future__ import annotations

from pathlib import Path

import corral

from .context import StartupContext, StartupScript

SYSTEM_DIR = Path("/etc/systemd/system")

TEMPLATE = """\
# Written by `corral startup {platform}`; remove it with `corral unstartup {platform}`.
[Unit]
Description=corral process manager ({user})
After=network.target

[Service]
Type=forking
{user_line}LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
Environment={env_path}
Environment={env_home}
PIDFile={pid_file}
Restart=on-failure
# `corral resurrect` starts the daemon detached and returns; with no dump yet it
# exits 1 while the daemon runs, which is still a started service (hence the "-")
ExecStart=-{corral} resurrect
ExecReload={corral} reload all
ExecStop={corral} kill

[Install]
WantedBy={wanted_by}
"""


def quote(value: str, *, command: bool = False) -> str:
    """One word of a unit file: specifiers (%) escaped, quoted if needed; in a command
    (``command``: ExecStart= and the like, the only lines systemd expands variables in)
    ``$`` too. Elsewhere ``$$`` would stay two dollars."""
    value = value.replace("%", "%%")
    if command:
        value = value.replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in value):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def unit(context: StartupContext) -> str:
    platform = "systemd --user-mode" if context.user_mode else "systemd"
    return TEMPLATE.format(
        platform=platform,
        user=context.user,
        user_line="" if context.user_mode else f"User={context.user}\n",
        env_path=quote(f"PATH={context.path_env}"),
        env_home=quote(f"CORRAL_HOME={context.home}"),
        pid_file=quote(str(context.home / "corral.pid")),
        corral=quote(context.corral_bin, command=True),
        wanted_by="default.target" if context.user_mode else "multi-user.target",
    )


def system_unit(context: StartupContext) -> StartupScript:
    name = context.service(f"corral-{context.user}").removesuffix(".service")
    notes = []
    if not Path("/run/systemd/system").is_dir():
        notes.append(
            "systemd is not running on this machine (a container?): "
            "the unit starts only on a host booted with systemd"
        )
    return StartupScript(
        init_system="systemd",
        path=SYSTEM_DIR / f"{name}.service",
        content=unit(context),
        enable=[["systemctl", "daemon-reload"], ["systemctl", "enable", name]],
        disable=[["systemctl", "stop", name], ["systemctl", "disable", name]],
        notes=notes,
    )


def user_unit(context: StartupContext) -> StartupScript:
    name = context.service("corral").removesuffix(".service")
    notes = [
        f"a running daemon is not handed over: `corral kill && systemctl --user start {name}` "
        "does it now, or it starts at the next boot"
    ]
    if not Path("/var/lib/systemd/linger", context.user).exists():
        notes.append(
            f"user units start at boot only with lingering on: `loginctl enable-linger "
            f"{context.user}` (as root, or as {context.user} where polkit allows it)"
        )
    systemctl = ["systemctl", "--user"]
    return StartupScript(
        init_system="systemd",
        path=context.user_home / ".config/systemd/user" / f"{name}.service",
        content=unit(context),
        enable=[[*systemctl, "daemon-reload"], [*systemctl, "enable", name]],
        disable=[[*systemctl, "stop", name], [*systemctl, "disable", name]],
        notes=notes,
        needs_root=False,
    )


@corral.hookimpl
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    if init_system != "systemd":
        return None
    return user_unit(context) if context.user_mode else system_unit(context)

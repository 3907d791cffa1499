"""Boot script for OpenRC (Alpine, Gentoo): an ``openrc-run`` script in /etc/init.d.

``corral startup openrc`` (also ``gentoo``) writes ``/etc/init.d/<service>``
(``corral-<user>``, mode 0755; PM2 always names it ``pm2``, so one user per
machine) and runs ``rc-update add <service> default``.

The script needs ``net`` and ``localmount``. It runs corral as the user through
``su -l -s /bin/sh`` with the service's PATH and CORRAL_HOME: ``start`` runs
``corral resurrect`` and succeeds when the daemon runs; ``stop`` runs
``corral dump`` then ``corral kill``, as PM2's OpenRC script does (a dump of
an empty list is refused and the previous dump kept); ``reload`` runs
``corral reload all``. ``corral unstartup`` runs ``rc-service <service> stop``
and ``rc-update delete <service> default``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import corral

from .context import StartupContext, StartupScript

TEMPLATE = """\
#!/sbin/openrc-run
# Written by `corral startup openrc`; remove it with `corral unstartup openrc`.

name="corral ({user})"
description="corral process manager: the daemon as {user}, and the apps saved by corral dump"
extra_started_commands="reload"

corral_user={user_q}
corral_cmd={command}
corral_pidfile={pid_file}

depend() {{
    need net localmount
    after bootmisc
}}

run_corral() {{
    # /bin/sh rather than the user's login shell, which may be nologin
    su -l -s /bin/sh "$corral_user" -c "$corral_cmd $*"
}}

running() {{
    [ -r "$corral_pidfile" ] && kill -0 "$(cat "$corral_pidfile")" 2>/dev/null
}}

start() {{
    ebegin "Starting corral as $corral_user"
    # with no dump yet resurrect fails, but a running daemon is a started service
    run_corral resurrect
    running
    eend $? "corral's daemon did not start: see {log}"
}}

stop() {{
    ebegin "Stopping corral"
    if running; then
        # as PM2: save the list first (an empty list is refused, the old dump kept)
        run_corral dump
        run_corral kill
    fi
    eend $?
}}

reload() {{
    ebegin "Reloading corral's apps"
    run_corral reload all
    eend $?
}}
"""


@corral.hookimpl
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    if init_system != "openrc":
        return None
    name = context.service(f"corral-{context.user}")
    content = TEMPLATE.format(
        user=context.user,
        user_q=shlex.quote(context.user),
        command=shlex.quote(context.command()),
        pid_file=shlex.quote(str(context.home / "corral.pid")),
        log=context.home / "corral.log",
    )
    return StartupScript(
        init_system="openrc",
        path=Path("/etc/init.d") / name,
        content=content,
        mode=0o755,
        enable=[["rc-update", "add", name, "default"]],
        disable=[["rc-service", name, "stop"], ["rc-update", "delete", name, "default"]],
    )

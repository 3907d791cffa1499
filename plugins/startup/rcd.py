"""Boot script for FreeBSD's rc.d: a script in /usr/local/etc/rc.d.

``corral startup rcd`` (also ``freebsd``) writes ``/usr/local/etc/rc.d/<service>``
(``corral_<user>``, PM2's ``pm2_<user>``: rc.subr needs a shell variable name,
so other characters become ``_``; mode 0755) and runs
``sysrc <service>_enable=YES``.

The script runs after ``LOGIN`` and is stopped at shutdown. It runs corral as
the user with ``su -m`` (FreeBSD's su has no ``-s``, and ``-m`` keeps a usable
shell for a nologin user), so HOME, USER and LOGNAME are set explicitly along
with PATH and CORRAL_HOME: ``start`` runs ``corral resurrect`` and succeeds
when the daemon runs; ``stop`` runs ``corral kill``; ``reload`` ``corral reload
all``; ``status`` prints ``corral ls``, or exits 1 when the daemon is not running.
``corral unstartup`` stops it and runs ``sysrc -x <service>_enable``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import corral

from .context import StartupContext, StartupScript

RC_DIR = Path("/usr/local/etc/rc.d")

TEMPLATE = """\
#!/bin/sh
# Written by `corral startup rcd`; remove it with `corral unstartup rcd`.
#
# PROVIDE: {name}
# REQUIRE: LOGIN
# KEYWORD: shutdown
#
# Enabled by: sysrc {name}_enable=YES

. /etc/rc.subr

name="{name}"
rcvar="{name}_enable"
start_cmd="corral_start"
stop_cmd="corral_stop"
status_cmd="corral_status"
reload_cmd="corral_reload"
extra_commands="reload status"

corral_user={user_q}
corral_cmd={command}
corral_pidfile={pid_file}

run_corral() {{
    su -m "$corral_user" -c "$corral_cmd $*"
}}

running() {{
    [ -r "$corral_pidfile" ] && kill -0 "$(cat "$corral_pidfile")" 2>/dev/null
}}

corral_start() {{
    echo "Starting $name."
    # with no dump yet resurrect fails, but a running daemon is a started service
    run_corral resurrect
    running
}}

corral_stop() {{
    running || return 0
    echo "Stopping $name."
    run_corral kill
}}

corral_reload() {{
    run_corral reload all
}}

corral_status() {{
    if running; then
        echo "$name is running as pid $(cat "$corral_pidfile")."
        run_corral ls
    else
        echo "$name is not running."
        return 1
    fi
}}

load_rc_config "$name"
: "${{{name}_enable:=NO}}"
run_rc_command "$1"
"""


def service_name(context: StartupContext) -> str:
    if context.service_name is None:
        return "corral_" + re.sub(r"[^A-Za-z0-9_]", "_", context.user)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", context.service_name):
        raise corral.OptionError(
            f"an rc.d service name is a shell variable name (letters, digits, '_'), "
            f"got {context.service_name!r} (--service-name)",
            field="service_name",
        )
    return context.service_name


@corral.hookimpl
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    if init_system != "rcd":
        return None
    name = service_name(context)
    path = RC_DIR / name
    login = {"HOME": str(context.user_home), "USER": context.user, "LOGNAME": context.user}
    content = TEMPLATE.format(
        name=name,
        user_q=shlex.quote(context.user),
        command=shlex.quote(context.command(env=login)),
        pid_file=shlex.quote(str(context.home / "corral.pid")),
    )
    return StartupScript(
        init_system="rcd",
        path=path,
        content=content,
        mode=0o755,
        enable=[["sysrc", f"{name}_enable=YES"]],
        disable=[[str(path), "onestop"], ["sysrc", "-x", f"{name}_enable"]],
    )

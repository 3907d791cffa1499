"""Boot script for Debian-style init (PM2's ``upstart``): an LSB script in /etc/init.d.

``corral startup upstart`` (also ``ubuntu12``, ``ubuntu14``) writes
``/etc/init.d/<service>`` (``corral-<user>``, mode 0755) and runs
``update-rc.d <service> defaults``. As PM2's ``upstart`` platform, this is an
LSB init script registered with ``update-rc.d``, not an Upstart job file, which
is what those Ubuntu releases run at boot through their SysV compatibility.

The script runs corral as the user through ``su -l -s /bin/sh`` (the user's
login shell may be nologin) with the service's PATH and CORRAL_HOME: ``start``
runs ``corral resurrect`` and succeeds when the daemon runs (with no dump yet
resurrect fails, but the daemon is up); ``stop`` runs ``corral kill``;
``reload`` ``corral reload all``; ``status`` exits 0 with ``corral ls``, or 3
(LSB's "not running") when the pid file names no live process.
``/etc/default/<service>`` may set ``MAX_OPEN_FILES``. ``corral unstartup``
stops it and runs ``update-rc.d -f <service> remove``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import corral

from .context import StartupContext, StartupScript

TEMPLATE = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:    $local_fs $remote_fs $network
# Required-Stop:     $local_fs $remote_fs $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: corral process manager ({user})
# Description:       Starts corral's daemon as {user} and the apps saved by corral dump.
### END INIT INFO
# Written by `corral startup upstart`; remove it with `corral unstartup upstart`.

NAME={name}
CORRAL_USER={user_q}
CORRAL_CMD={command}
PIDFILE={pid_file}

# /etc/default/$NAME may set MAX_OPEN_FILES, the open files limit of the daemon and its apps
MAX_OPEN_FILES=
[ -r "/etc/default/$NAME" ] && . "/etc/default/$NAME"
[ -n "$MAX_OPEN_FILES" ] && ulimit -n "$MAX_OPEN_FILES"

run_corral() {{
    # /bin/sh rather than the user's login shell, which may be nologin
    su -l -s /bin/sh "$CORRAL_USER" -c "$CORRAL_CMD $*"
}}

running() {{
    [ -r "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}}

do_start() {{
    echo "Starting $NAME"
    # with no dump yet resurrect fails, but a running daemon is a started service
    run_corral resurrect
    running
}}

do_stop() {{
    echo "Stopping $NAME"
    running || return 0
    run_corral kill
}}

case "$1" in
    start)
        do_start
        ;;
    stop)
        do_stop
        ;;
    restart)
        do_stop
        do_start
        ;;
    reload|force-reload)
        if running; then run_corral reload all; else do_start; fi
        ;;
    status)
        if running; then
            echo "$NAME is running (pid $(cat "$PIDFILE"))"
            run_corral ls
            exit 0
        fi
        echo "$NAME is not running"
        exit 3
        ;;
    *)
        echo "Usage: $0 {{start|stop|restart|reload|force-reload|status}}" >&2
        exit 2
        ;;
esac
"""


@corral.hookimpl
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    if init_system != "upstart":
        return None
    name = context.service(f"corral-{context.user}")
    path = Path("/etc/init.d") / name
    content = TEMPLATE.format(
        name=name,
        user=context.user,
        user_q=shlex.quote(context.user),
        command=shlex.quote(context.command()),
        pid_file=shlex.quote(str(context.home / "corral.pid")),
    )
    return StartupScript(
        init_system="upstart",
        path=path,
        content=content,
        mode=0o755,
        enable=[["update-rc.d", name, "defaults"]],
        disable=[[str(path), "stop"], ["update-rc.d", "-f", name, "remove"]],
    )

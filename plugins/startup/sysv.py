"""Boot script for System V init with chkconfig (PM2's ``systemv``: Amazon Linux 1, CentOS 6).

``corral startup systemv`` (also ``amazon``, ``centos6``, ``sysv``) writes
``/etc/init.d/<service>`` (``corral-<user>``, mode 0755) with a ``chkconfig:``
header (runlevels 2345, start 95, stop 05) and LSB headers, then runs
``chkconfig --add <service>`` and ``chkconfig <service> on``.

The script runs corral as the user through ``su -l -s /bin/sh`` with the
service's PATH and CORRAL_HOME: ``start`` runs ``corral resurrect`` and
touches ``/var/lock/subsys/<service>`` once the daemon runs (Red Hat's rc runs
the stop scripts at shutdown only for services holding that lock, which is why
PM2 creates it by hand); ``stop`` runs ``corral kill`` and removes the lock;
``reload`` ``corral reload all``; ``status`` exits 0 with ``corral ls``, else 3.
``/etc/sysconfig/<service>`` may set ``MAX_OPEN_FILES``. ``corral unstartup``
stops it, then ``chkconfig <service> off`` and ``chkconfig --del <service>``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import corral

from .context import StartupContext, StartupScript

TEMPLATE = """\
#!/bin/sh
#
# {name}: corral process manager ({user})
#
# chkconfig:   2345 95 05
# description: Starts corral's daemon as {user} and the apps saved by corral dump.
# pidfile:     {pid_path}
#
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:    $local_fs $network
# Required-Stop:     $local_fs $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: corral process manager ({user})
### END INIT INFO
# Written by `corral startup systemv`; remove it with `corral unstartup systemv`.

NAME={name}
CORRAL_USER={user_q}
CORRAL_CMD={command}
PIDFILE={pid_file}
LOCKFILE="/var/lock/subsys/$NAME"

# /etc/sysconfig/$NAME may set MAX_OPEN_FILES, the open files limit of the daemon and its apps
MAX_OPEN_FILES=
[ -r "/etc/sysconfig/$NAME" ] && . "/etc/sysconfig/$NAME"
[ -n "$MAX_OPEN_FILES" ] && ulimit -n "$MAX_OPEN_FILES"

run_corral() {{
    # /bin/sh rather than the user's login shell, which may be nologin
    su -l -s /bin/sh "$CORRAL_USER" -c "$CORRAL_CMD $*"
}}

running() {{
    [ -r "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}}

start() {{
    echo "Starting $NAME"
    # with no dump yet resurrect fails, but a running daemon is a started service
    run_corral resurrect
    if running; then
        if [ -d /var/lock/subsys ]; then touch "$LOCKFILE"; fi
        return 0
    fi
    return 1
}}

stop() {{
    echo "Stopping $NAME"
    status=0
    if running; then
        run_corral kill
        status=$?
    fi
    rm -f "$LOCKFILE"
    return $status
}}

case "$1" in
    start)
        start
        ;;
    stop)
        stop
        ;;
    restart)
        stop
        start
        ;;
    reload|force-reload)
        if running; then run_corral reload all; else start; fi
        ;;
    condrestart|try-restart)
        if running; then stop; start; fi
        ;;
    status)
        if running; then
            echo "$NAME is running (pid $(cat "$PIDFILE"))"
            run_corral ls
            exit 0
        fi
        echo "$NAME is stopped"
        exit 3
        ;;
    *)
        echo "Usage: $0 {{start|stop|restart|reload|force-reload|condrestart|status}}" >&2
        exit 2
        ;;
esac
"""


@corral.hookimpl
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    if init_system != "systemv":
        return None
    name = context.service(f"corral-{context.user}")
    path = Path("/etc/init.d") / name
    pid_path = context.home / "corral.pid"
    content = TEMPLATE.format(
        name=name,
        user=context.user,
        user_q=shlex.quote(context.user),
        command=shlex.quote(context.command()),
        pid_path=pid_path,
        pid_file=shlex.quote(str(pid_path)),
    )
    return StartupScript(
        init_system="systemv",
        path=path,
        content=content,
        mode=0o755,
        enable=[["chkconfig", "--add", name], ["chkconfig", name, "on"]],
        disable=[[str(path), "stop"], ["chkconfig", name, "off"], ["chkconfig", "--del", name]],
    )

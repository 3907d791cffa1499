"""corral-example-hook: one line per process event in $CORRAL_HOME/events.log."""

import corral

events_log = None  # the file to append to, known once the daemon is up


@corral.hookimpl
def corral_daemon_start(daemon):
    global events_log
    events_log = daemon.home / "events.log"


@corral.hookimpl
def corral_process_event(event):
    if events_log is not None:
        with open(events_log, "a") as log:
            log.write(f"{event.name}: {event.event}\n")

"""A job: writes one report line and exits (``autorestart: false``, run by ``cron_restart``)."""

import datetime
import os

now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
print(f"report for {os.environ.get('REPORT_SCOPE', 'all')} at {now}: done", flush=True)

"""The ``corral cron`` command: the cron jobs and their next tick."""

from __future__ import annotations

import time
from typing import Any

import corral


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click  # deferred: click loads in the CLI only, never in the daemon

    @click.command("cron")
    def cron_command() -> None:
        """List the cron jobs (cron_restart) and their next tick."""
        client = corral.connect()
        try:
            jobs = client.call("cron_jobs")
        finally:
            client.disconnect()
        if not jobs:
            click.echo("no cron jobs")
            return
        for job in jobs:
            when = job["error"] or time.strftime(
                "%Y-%m-%d %H:%M:%S", time.localtime(job["next"] / 1000)
            )
            zone_name = f" ({job['tz']})" if job["tz"] else ""
            click.echo(f"{job['pm_id']:>3} {job['name']}  {job['cron']}{zone_name}  next: {when}")

    group.add_command(cron_command)

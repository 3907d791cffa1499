"""``corral startup [PLATFORM]`` and ``corral unstartup``, added through ``corral_cli``.

Generated in the CLI process, never by the daemon. No client is connected (root
must not start a daemon in someone's home); a daemon already running for that
home is asked to dump its list.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .boot import report, startup, unstartup

NO_VALUE = "\x00"  # what `--user` alone parses to


def boot_flags(command: Any) -> Any:
    """The flags `corral startup` and `corral unstartup` share."""
    for decorator in reversed(
        (
            click.argument("platform", required=False),
            click.option(
                "-u",
                "--user",
                is_flag=False,
                flag_value=NO_VALUE,
                metavar="[NAME]",
                help="Run the daemon as NAME (PM2's -u); alone, a systemd --user unit.",
            ),
            click.option(
                "--hp", metavar="HOME", help="The user's home; CORRAL_HOME is HOME/.corral."
            ),
            click.option("--service-name", metavar="NAME", help="The service's name."),
            click.option(
                "--user-mode", is_flag=True, help="A systemd --user unit (no root needed)."
            ),
            click.option(
                "--print",
                "print_only",
                is_flag=True,
                help="Print the file and the command to install it; change nothing.",
            ),
        )
    ):
        command = decorator(command)
    return command


@click.command("startup")
@boot_flags
def startup_command(**flags: Any) -> None:
    """Install a boot script that starts the daemon and `corral resurrect` at boot.

    PLATFORM: systemd, launchd, openrc, upstart, systemv, rcd, or PM2's names
    (ubuntu, centos, redhat, gentoo, darwin, amazon, freebsd, ...); detected
    when left out. Not root, it prints the file and the command to run as root.
    Give PLATFORM before a bare --user (--user NAME runs as NAME).
    """
    _boot("startup", **flags)


@click.command("unstartup")
@boot_flags
def unstartup_command(**flags: Any) -> None:
    """Disable the boot script of `corral startup` and delete it."""
    _boot("unstartup", **flags)


def _boot(
    verb: str, platform: str | None, user: str | None, print_only: bool, **flags: Any
) -> None:
    if user == NO_VALUE:  # `--user` alone: a systemd --user unit, for the caller
        user, flags["user_mode"] = None, True
    if verb == "startup":
        client = click.get_current_context().find_root().obj  # a test's, else None
        result = startup(platform, user=user, print_only=print_only, client=client, **flags)
    else:
        result = unstartup(platform, user=user, print_only=print_only, **flags)
    lines = "\n".join(report(result, verb)) + "\n"
    if verb == "startup" and print_only:
        # the file alone on stdout, so `--print > corral.service` works
        sys.stdout.write(result.script.content)
        sys.stderr.write(lines)
    elif verb == "startup" and result.written is None:
        sys.stdout.write(result.script.content + "\n" + lines)
    else:
        sys.stdout.write(lines)

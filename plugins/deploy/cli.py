"""``corral deploy [CONFIG] ENV [COMMAND [ARGS]]``, added through ``corral_cli``.

Runs in the CLI process: the daemon is not involved. Prints each host's output as it
comes, then one summary line a host; exits 1 when any host failed.
"""

from __future__ import annotations

import sys

import click

from .commands import deploy, is_config_word


@click.command(
    "deploy",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("words", nargs=-1, required=True, metavar="[CONFIG] ENV [COMMAND [ARGS]]")
def deploy_command(words: tuple[str, ...]) -> None:
    """Deploy a git repository to the hosts of a config's deploy section, as `pm2 deploy`.

    CONFIG: the file (default: ecosystem.config.js, .json, ... here). COMMAND: setup,
    update (the default), revert [N], curr[ent], prev[ious], list, exec|run CMD,
    ref REF. Every host at once over ssh; one summary line a host.
    """
    path, rest = (words[0], words[1:]) if is_config_word(words[0]) else (None, words)
    if not rest:
        raise click.UsageError("give the deploy environment: corral deploy [CONFIG] ENV setup")
    results = deploy(path, rest[0], rest[1:], say=_say)
    for result in results:
        _say(result.summary())
    if not all(result.ok for result in results):
        sys.exit(1)


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()  # a host's lines as they come, piped or not

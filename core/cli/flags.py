"""Flags that many commands share, declared once."""

from __future__ import annotations

from typing import Any

import click

JSON_HELP = "Print one JSON document (see README, JSON output)."


def json_flag(command: Any) -> Any:
    """``--json`` (``as_json``): one JSON document on stdout, nothing else there."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(command)


def print_json(document: Any) -> None:
    """The one JSON document a command prints with ``--json``."""
    import json
    import sys

    sys.stdout.write(json.dumps(document, default=str) + "\n")


def show_secrets_flag(command: Any) -> Any:
    """``--show-secrets`` of describe and env: secret values shown, not ``****``."""
    return click.option(
        "--show-secrets",
        is_flag=True,
        help="Show the values of secret variables (*_KEY, *_TOKEN, *SECRET*, *PASSWORD*, "
        "URL passwords) instead of ****.",
    )(command)

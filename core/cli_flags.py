"""Flags that many commands share, declared once."""

from __future__ import annotations

from typing import Any

import click

JSON_HELP = "Print one JSON document (see README, JSON output)."


def json_flag(command: Any) -> Any:
    """``--json`` (``as_json``): one JSON document on stdout, nothing else there."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(command)

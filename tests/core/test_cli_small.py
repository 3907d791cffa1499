"""The small promises of the CLI: exit codes as documented, a closed pipe is not an
error, help texts read as sentences, warnings print as one clean line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import run_cli as corral

SLEEP = shutil.which("sleep") or "/bin/sleep"


def _help_problems(command: click.Command, ctx: click.Context, path: str) -> list[str]:
    problems = []
    for param in command.get_params(ctx):
        text = (getattr(param, "help", None) or "").strip()
        if not text:
            continue
        starts = text[0].isupper() or text[0] in "`'\"-0123456789"
        if not starts or not text.endswith((".", ")", "?", "!")):
            problems.append(f"{path} {'/'.join(param.opts)}: {text!r}")
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            problems += _help_problems(sub, ctx, f"{path} {name}")
    else:
        first = (command.help or "").strip().split("\n\n")[0].rstrip()
        if not first or not first[0].isupper() or not first.endswith((".", ")")):
            problems.append(f"{path}: help {first[:60]!r}")
    return problems


def test_every_help_text_reads_as_a_sentence() -> None:
    """Every command's and flag's help (plugins' too) starts with a capital and ends
    with a full stop; a negated flag reads "Do not ...", not "do not: ..."."""
    from corral.cli.commands import build_cli

    cli = build_cli()
    ctx = click.Context(cli)
    assert _help_problems(cli, ctx, "corral") == []
    start = cli.get_command(ctx, "start")
    assert start is not None
    helps = {p.opts[0]: p.help for p in start.get_params(ctx) if getattr(p, "help", None)}
    assert helps["--no-autorestart"] == "Do not restart the app when it exits."


@pytest.mark.parametrize(
    "args", [("ls",), ("jlist",), ("prettylist",), ("describe", "sleeper"), ("plugins",)]
)
def test_a_reader_that_closes_the_pipe_early_is_not_an_error(pm: object, args: tuple) -> None:
    """`corral show x | head -1`: the command ends quietly with 0, no traceback."""
    corral("start", SLEEP, "--name", "sleeper", "--no-wait", "--", "3600")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        result = subprocess.run(
            [sys.executable, "-m", "corral", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=60,
        )
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (0, "")


def test_usage_errors_exit_2_and_command_errors_exit_1(pm: object) -> None:
    """As the README's "Exit codes" says: 2 for a usage error (click's), 1 for a refusal."""
    unknown = corral("no-such-command", check=False)
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
    missing = corral("describe", check=False)
    assert missing.returncode == 2 and "Missing argument" in missing.stderr
    refused = corral("stop", "no-such-app", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1


def test_a_pm2_only_key_warns_in_one_clean_line(pm: object, tmp_path: Path) -> None:
    """An ignored PM2 key: one `warning:` line per key, no source line after it."""
    config = tmp_path / "ecosystem.json"
    app = {"name": "w", "script": SLEEP, "args": ["3600"], "vizion": False}
    config.write_text(json.dumps({"apps": [app]}))
    result = corral("start", str(config), "--no-wait")
    assert result.stderr.splitlines() == [
        "warning: ignoring PM2 option 'vizion': corral has no use for it"
    ]

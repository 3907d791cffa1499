"""`--json` on every command that prints something: one JSON document on stdout,
nothing else there (README, "JSON output")."""

from __future__ import annotations

import json
import shutil

import click

from tests.conftest import run_cli as corral

SLEEP = shutil.which("sleep") or "/bin/sleep"

# commands without --json, and why
NO_JSON = {
    "attach": "a live conversation with an app",
    "completion": "prints a shell script",
    "jlist": "prints JSON already",
    "prettylist": "prints JSON already",
    "monit": "a screen",
    "startup": "prints a boot file and the command to install it",
    "unstartup": "the same",
    "keys add": "prints a key file's path",
    "keys new": "prints a key file's path",
    "logrotate flush": "a plugin's command",
    "logrotate rotate": "a plugin's command",
    "logrotate set": "a plugin's command",
    "watch start": "a plugin's command",
    "watch stop": "a plugin's command",
    "cron": "a plugin's command",
    "deploy": "each host's output as it comes, then a line per host",
    "export kubernetes": "prints the manifests, YAML",
    "export systemd": "prints the unit files",
    "ready": "its answer is its exit code (a readiness probe)",
    "web start": "prints a login URL",
    "web stop": "a plugin's command",
    "web url": "prints a login URL",
}


def _commands(command: click.Command, ctx: click.Context, path: str = "") -> dict[str, list]:
    if not isinstance(command, click.Group):
        return {path: [o for p in command.get_params(ctx) for o in getattr(p, "opts", [])]}
    found: dict[str, list] = {}
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        assert sub is not None
        found.update(_commands(sub, ctx, f"{path} {name}".strip()))
    return found


def test_every_command_that_prints_takes_json() -> None:
    from corral.cli.commands import build_cli

    cli = build_cli()
    missing = [
        name
        for name, flags in _commands(cli, click.Context(cli)).items()
        if "--json" not in flags and name not in NO_JSON
    ]
    assert missing == []


def _one_document(*args: str) -> object:
    result = corral(*args, "--json")
    return json.loads(result.stdout)  # one document, nothing else on stdout


def test_the_small_commands_print_one_json_document(corral_home, monkeypatch) -> None:
    monkeypatch.setenv("CORRAL_PLUGINS", "logrotate")  # reload-logs is its
    corral("start", SLEEP, "--name", "nap", "--no-wait", "--", "3600")
    [pid] = _one_document("pid", "nap")
    assert isinstance(pid, int) and pid > 0
    assert _one_document("sendSignal", "SIGCONT", "nap") == {"signal": "SIGCONT", "pm_ids": [0]}
    flushed = _one_document("flush", "nap")
    assert flushed["deleted"] == [] and any(p.endswith("nap-out.log") for p in flushed["flushed"])
    assert len(_one_document("reload-logs")["reopened"]) >= 2
    saved = _one_document("dump")
    assert saved["count"] == 1 and saved["path"].endswith("dump.corral")
    resurrected = _one_document("resurrect")
    assert resurrected["action"] == "resurrect" and resurrected["ok"]
    assert [app["name"] for app in resurrected["apps"]] == ["nap"]
    assert _one_document("kill") == {"killed": True}
    assert _one_document("kill") == {"killed": False}

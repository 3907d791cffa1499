"""`corral env`, `info`, `id`, `cleardump`, `report` and the PM2 spellings of commands,
run as a user types them against a real daemon."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corral import paths
from corral.daemon.homelock import holder
from tests.conftest import run_cli as corral

SLEEP = shutil.which("sleep") or "/bin/sleep"
SECRET = "s3cr3t-value-42"


def _sleeper(name: str, *flags: str) -> None:
    corral("start", SLEEP, "--name", name, *flags, "--no-wait", "--", "3600")


def test_env_prints_the_start_environment_with_secrets_masked(pm: object) -> None:
    _sleeper("web", "--env", f"API_KEY={SECRET}", "--env", "GREETING=hello")
    [info] = pm.list()  # type: ignore[attr-defined]
    lines = corral("env", str(info.pm_id)).stdout.splitlines()
    assert "GREETING=hello" in lines
    assert "API_KEY=****" in lines
    assert SECRET not in "\n".join(lines)
    assert lines == sorted(lines)
    assert f"API_KEY={SECRET}" in corral("env", "web", "--show-secrets").stdout.splitlines()
    as_json = json.loads(corral("env", "0", "--json").stdout)
    assert as_json["GREETING"] == "hello" and as_json["API_KEY"] == "****"


def test_env_refuses_an_unknown_id_and_a_name_of_many_instances(pm: object) -> None:
    corral("start", SLEEP, "--name", "many", "-i", "2", "--no-wait", "--", "3600")
    unknown = corral("env", "7", check=False)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "no process matches '7'" in unknown.stderr
    many = corral("env", "many", check=False)
    assert many.returncode == 1
    assert "2 instances (ids 0, 1): give one pm_id" in many.stderr


def test_info_and_desc_are_describe(pm: object) -> None:
    _sleeper("web")
    described = corral("describe", "web").stdout
    assert "web (id 0)" in described
    for alias in ("info", "desc"):
        assert corral(alias, "web").stdout.splitlines()[0] == described.splitlines()[0]


def test_id_prints_the_ids_as_pm2(pm: object) -> None:
    corral("start", SLEEP, "--name", "api", "-i", "2", "--no-wait", "--", "3600")
    _sleeper("worker")
    assert corral("id", "api").stdout == "[ 0, 1 ]\n"
    assert corral("id", "worker").stdout == "[ 2 ]\n"
    assert corral("id", "nope").stdout == "[]\n"  # PM2: an empty list, exit 0
    assert json.loads(corral("id", "api", "--json").stdout) == [0, 1]
    assert corral("id", SLEEP).stdout == "[ 0, 1, 2 ]\n"  # the script's path, as PM2


def test_cleardump_empties_the_dump_and_keeps_the_previous_as_bak(pm: object) -> None:
    _sleeper("web")
    corral("dump")
    dump = paths.dump_file(paths.home())
    saved = json.loads(dump.read_text())
    assert [a["name"] for a in saved["apps"]] == ["web"]
    out = corral("cleardump").stdout
    assert out == f"emptied the dump {dump} (the previous one is now {dump}.bak)\n"
    assert json.loads(dump.read_text())["apps"] == []
    assert json.loads(Path(f"{dump}.bak").read_text()) == saved
    assert dump.stat().st_mode & 0o777 == 0o600
    corral("delete", "all")
    corral("resurrect")
    assert pm.list() == []  # type: ignore[attr-defined]


def test_cleardump_needs_no_daemon(corral_home: Path) -> None:
    assert corral("cleardump").stdout == f"emptied the dump {corral_home / 'dump.corral'}\n"
    assert holder(corral_home) is None
    said = json.loads(corral("cleardump", "--json").stdout)
    dump = corral_home / "dump.corral"
    assert said == {"path": str(dump), "backup": f"{dump}.bak"}


def test_pm2_camel_case_and_kebab_case_spellings(
    with_logrotate: None, pm: object, tmp_path: Path
) -> None:
    assert corral("reloadLogs").stdout == corral("reload-logs").stdout
    _sleeper("web")
    corral("gracefulReload", "web")
    corral("send-signal", "SIGCONT", "web")
    config = tmp_path / "ecosystem.json"
    config.write_text(json.dumps({"apps": [{"name": "cfg", "script": SLEEP, "args": ["3600"]}]}))
    corral("start-or-restart", str(config), "--no-wait", cwd=tmp_path)
    corral("start-or-reload", str(config), "--no-wait", cwd=tmp_path)
    corral("start-or-graceful-reload", str(config), "--no-wait", cwd=tmp_path)
    restarts = {p.name: p.pm2_env["restart_time"] for p in pm.list()}  # type: ignore[attr-defined]
    assert restarts == {"web": 1, "cfg": 2}


def test_report_without_a_daemon_says_so_and_starts_none(
    corral_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    out = corral("report").stdout
    assert "daemon: not running (corral report starts none)" in out
    assert "DB_PASSWORD=****" in out and SECRET not in out
    for word in ("corral:", "python:", "psutil:", "pyzmq:", "node:", f"CORRAL_HOME: {corral_home}"):
        assert word in out
    assert holder(corral_home) is None
    assert not (corral_home / "rpc.sock").exists()
    found = json.loads(corral("report", "--json").stdout)
    assert found["daemon"] is None and found["env"]["DB_PASSWORD"] == "****"


def test_report_of_a_running_daemon(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import corral as corral_api

    monkeypatch.setenv("STRIPE_KEY", SECRET)
    monkeypatch.setenv("CORRAL_PLUGINS", "memory")
    _sleeper("web")  # starts the daemon, with the plugin memory
    pm = corral_api.connect()
    [info] = pm.list()  # type: ignore[attr-defined]
    pong = pm.ping()  # type: ignore[attr-defined]
    out = corral("report").stdout
    assert f"daemon: pid {pong['pid']}, version {pong['version']}" in out
    assert f"  0 web online 0 {info.pid}" in out
    assert "  memory " in out and "corral.log (last 50 lines)" in out
    assert SECRET not in out
    found = json.loads(corral("report", "--json").stdout)
    assert found["daemon"]["pid"] == pong["pid"]
    assert found["processes"] == [
        {"name": "web", "pm_id": 0, "status": "online", "restart_time": 0, "pid": info.pid}
    ]
    assert {"name", "version", "errors"} <= set(found["plugins"][0])
    assert 0 < len(found["daemon_log"]) <= 50
    assert found["env"]["STRIPE_KEY"] == "****"
    pm.kill_daemon()
    pm.disconnect()


def test_report_text_lists_each_plugin_error_under_its_plugin() -> None:
    from corral.cli.report import text

    found = {
        "date": "2026-01-01T00:00:00+0000",
        "versions": {"corral": "0.1.0", "node": None},
        "home": "/h",
        "daemon": {"pid": 9, "version": "0.1.0", "uptime_ms": 3_723_000, "apps": 0},
        "processes": [],
        "plugins": [{"name": "memory", "version": "0.1.0", "errors": ["on_start: ValueError: x"]}],
        "daemon_log": [],
        "env": {},
    }
    lines = text(found).splitlines()
    assert "  node: not found" in lines
    assert "daemon: pid 9, version 0.1.0, uptime 1h 2m 3s, 0 apps" in lines
    at = lines.index("  memory 0.1.0")
    assert lines[at + 1] == "    error: on_start: ValueError: x"

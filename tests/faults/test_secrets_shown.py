"""Secret env values never reach what a person reads, and the files holding them are 0600.

Real daemon, real CLI in a subprocess: ``corral describe`` masks them unless
``--show-secrets``; ``jlist`` keeps PM2's shape (tools read it); an error that
quotes one (an edited dump that no longer validates) is masked in the client's
message and in corral.log; and every file under CORRAL_HOME that holds a
secret value is readable by its owner only.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import corral
from corral import paths
from corral.daemon.log import DaemonLog
from corral.errors import OptionError
from tests.conftest import PY, python_app, wait_for

TOKEN = "tok-3f9a1c2e77"  # distinctive, so a search of a file finds nothing else
DB_PASSWORD = "dbpw-82b1d4e9"
ARG_PASSWORD = "argpw-5c0e7a13"
SECRETS = (TOKEN, DB_PASSWORD, ARG_PASSWORD)
APP = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(1)\n"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "DATABASE_URL")}
    env["CORRAL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_secret_app(pm: corral.Client, tmp_path: Path) -> corral.ProcessInfo:
    script = python_app(tmp_path, "app.py", APP)
    env = {"API_TOKEN": TOKEN, "DATABASE_URL": f"postgres://app:{DB_PASSWORD}@db/app"}
    options = {"name": "web", "env": env, "args": [f"--password={ARG_PASSWORD}"]}
    pm.start(script, options)
    return wait_for(lambda: next(iter(pm.describe("web")), None), what="web listed")


def test_describe_masks_secrets_unless_asked(corral_home, pm, tmp_path):
    start_secret_app(pm, tmp_path)
    shown = cli(corral_home, "describe", "web")
    assert shown.returncode == 0, shown.stderr
    for secret in SECRETS:
        assert secret not in shown.stdout
    assert "API_TOKEN" in shown.stdout and "****" in shown.stdout
    assert "postgres://app:****@db/app" in shown.stdout
    assert "--password=****" in shown.stdout

    revealed = cli(corral_home, "describe", "web", "--show-secrets")
    assert revealed.returncode == 0, revealed.stderr
    for secret in SECRETS:
        assert secret in revealed.stdout

    # jlist is PM2's shape, read by tools: the values stay as they are
    listed = json.loads(cli(corral_home, "jlist").stdout)
    assert listed[0]["pm2_env"]["env"]["API_TOKEN"] == TOKEN


def test_an_error_quoting_a_secret_is_masked_everywhere(corral_home, pm, tmp_path):
    start_secret_app(pm, tmp_path)
    pm.dump()
    # a dump edited by hand, no longer valid: increment_var names a non-integer variable
    dump = paths.dump_file(corral_home)
    saved = json.loads(dump.read_text())
    saved["apps"][0]["options"]["increment_var"] = "API_TOKEN"
    dump.write_text(json.dumps(saved))
    pm.delete("all")
    pm.resurrect()
    log = paths.log_file(corral_home)
    wait_for(lambda: "cannot restore app" in log.read_text(), what="the restore error logged")
    text = log.read_text()
    assert "API_TOKEN='****'" in text
    for secret in SECRETS:
        assert secret not in text

    # the same check, asked by a client: its error message masks the value too
    script = python_app(tmp_path, "other.py", APP)
    with pytest.raises(OptionError) as caught:
        pm.start(script, {"name": "bad", "increment_var": "API_TOKEN", "env": {"API_TOKEN": TOKEN}})
    assert TOKEN not in str(caught.value) and "API_TOKEN='****'" in str(caught.value)


def test_files_holding_secrets_are_0600(corral_home, pm, tmp_path):
    start_secret_app(pm, tmp_path)
    pm.dump()
    pm.dump()  # a second dump keeps the first as .bak
    pm.restart("web")
    wait_for(lambda: paths.state_file(corral_home).exists(), what="state file")
    holding = []
    for path in sorted(p for p in corral_home.rglob("*") if p.is_file()):
        if any(secret.encode() in path.read_bytes() for secret in SECRETS):
            holding.append(path.name)
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} holds a secret and is {oct(mode)}"
    assert {"state.json", "dump.corral", "dump.corral.bak"} <= set(holding)
    assert stat.S_IMODE(paths.log_file(corral_home).stat().st_mode) == 0o600


def test_corral_log_masks_what_it_is_given(tmp_path):
    """The structlog processor: fields under secret names, URL passwords, known values."""
    log = DaemonLog(tmp_path / "corral.log")
    log.known_secrets = lambda: {TOKEN}
    try:
        log.logger.error(
            f"plugin failed: KeyError: {TOKEN!r}",
            options={"env": {"STRIPE_KEY": "sk_live_1", "URL": f"redis://:{DB_PASSWORD}@h"}},
            password=ARG_PASSWORD,
        )
    finally:
        log.close()
    text = (tmp_path / "corral.log").read_text()
    for secret in (*SECRETS, "sk_live_1"):
        assert secret not in text
    record = json.loads(text)
    assert record["options"]["env"] == {"STRIPE_KEY": "****", "URL": "redis://:****@h"}
    assert stat.S_IMODE((tmp_path / "corral.log").stat().st_mode) == 0o600


def test_a_failed_daemon_start_writes_corral_log_0600(tmp_path):
    """The record of a daemon that cannot start: 0600 under the usual umask, masked."""
    home = tmp_path / "home"
    code = (
        "import os, pathlib\n"
        "from corral.daemon.kernel import _record_failure\n"
        "os.umask(0o022)\n"
        f"_record_failure(pathlib.Path({str(home)!r}), RuntimeError('API_KEY={TOKEN}'))\n"
    )
    subprocess.run([PY, "-c", code], check=True, timeout=60)
    log = home / "corral.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert TOKEN not in log.read_text() and "API_KEY=****" in log.read_text()

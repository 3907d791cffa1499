"""Surprises: values that meant something other than what they say, or failed oddly.

- ``kill_timeout: 0`` keeps PM2's meaning (the default, 1600 ms), and says so.
- The arguments after ``--`` reach a command-line script (``"printf ..." -- a b``).
- An app cannot be named ``all`` or ``5``: those are targets (every app, pm_id 5).
- ``reload(parallel=0)`` is a one-line OptionError, not an internal TypeError.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corral
from corral.errors import OptionError
from tests.conftest import python_app, wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"

DEAF = """\
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60
    )


# -- kill_timeout 0 -------------------------------------------------------------


def test_kill_timeout_zero_warns_that_it_means_the_default(pm):
    with pytest.warns(corral.CorralWarning, match="kill_timeout 0 means the default, 1600 ms"):
        pm.start(SLEEP, {"name": "zero", "args": ["3600"], "kill_timeout": 0})
    with pytest.warns(corral.CorralWarning, match="kill_timeout 0"):
        pm.start(SLEEP, {"name": "zero-s", "args": ["3600"], "kill_timeout": "0s"})


def test_kill_timeout_one_does_not_warn(pm, recwarn):
    pm.start(SLEEP, {"name": "one", "args": ["3600"], "kill_timeout": 1})
    assert not [w for w in recwarn if issubclass(w.category, corral.CorralWarning)]


@pytest.mark.parametrize(("timeout", "low", "high"), [(0, 1.5, 5.0), (1, 0.0, 1.0)])
def test_kill_timeout_zero_is_pm2s_default_grace(pm, tmp_path, timeout, low, high):
    """PM2's rule (`kill_timeout || 1600`): 0 is 1600 ms of grace, 1 is 1 ms."""
    app = python_app(tmp_path, "deaf.py", DEAF)
    with pytest.warns(corral.CorralWarning) if timeout == 0 else contextlib.nullcontext():
        (info,) = pm.start(app, {"name": "deaf", "kill_timeout": timeout})
    wait_for(lambda: "ready" in Path(info.out_log).read_text())
    began = time.monotonic()
    pm.stop("deaf")
    took = time.monotonic() - began
    assert low <= took < high, f"kill_timeout {timeout}: the stop took {took:.2f} s"


# -- arguments after -- ---------------------------------------------------------------


def out_of(pm, name: str) -> str:
    (info,) = pm.describe(name)
    path = Path(info.out_log)
    return path.read_text() if path.exists() else ""


def test_a_command_line_script_gets_the_arguments_after_the_dashes(pm):
    result = cli("start", "printf [%s]", "--name", "cmd", "--no-autorestart", "--", "a", "b c")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: "[a][b c]" in out_of(pm, "cmd"), what="printf's output")


def test_a_command_line_script_without_arguments_runs_as_written(pm):
    result = cli("start", "printf [%s] x y", "--name", "plain", "--no-autorestart")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: "[x][y]" in out_of(pm, "plain"), what="printf's output")


def test_a_script_file_gets_the_arguments_after_the_dashes(pm, tmp_path):
    script = tmp_path / "args.sh"
    script.write_text('#!/bin/sh\nprintf "[%s]" "$@"\necho\nexec sleep 3600\n')
    script.chmod(0o755)
    result = cli("start", str(script), "--name", "file", "--", "--name", "z")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: "[--name][z]" in out_of(pm, "file"), what="the script's output")


# -- names that are targets -----------------------------------------------------------


@pytest.mark.parametrize("name", ["all", "5", "0", "007"])
def test_a_name_that_is_a_target_is_refused(pm, name):
    with pytest.raises(OptionError, match="choose") as caught:
        pm.start(SLEEP, {"name": name, "args": ["3600"]})
    assert caught.value.field == "name"
    assert pm.list() == []


def test_a_script_named_by_digits_needs_a_name(pm, tmp_path):
    script = tmp_path / "5.sh"
    script.write_text("#!/bin/sh\nexec sleep 3600\n")
    script.chmod(0o755)
    with pytest.raises(OptionError, match="app-5"):
        pm.start(str(script))
    (info,) = pm.start(str(script), {"name": "app-5"})
    assert info.name == "app-5" and pm.describe("app-5")[0].pm_id == info.pm_id


def test_the_cli_refuses_a_name_that_is_a_target(corral_home):
    result = cli("start", SLEEP, "--name", "all", "--", "3600")
    assert result.returncode != 0
    assert "name 'all' is reserved" in result.stderr + result.stdout


# -- reload(parallel=...) -----------------------------------------------------------------


@pytest.mark.parametrize("parallel", [0, -1, "x", 1.5, True, None])
def test_reload_parallel_must_be_a_positive_integer(pm, parallel):
    pm.start(SLEEP, {"name": "app", "args": ["3600"]})
    (before,) = pm.describe("app")
    with pytest.raises(OptionError, match="parallel must be an integer >= 1") as caught:
        pm.reload("app", parallel=parallel)
    assert caught.value.field == "parallel"
    (after,) = pm.describe("app")
    assert (after.pid, after.status) == (before.pid, "online")

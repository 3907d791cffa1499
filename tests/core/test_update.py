"""Safe upgrades: ping tells which corral the daemon runs, a client of another corral
warns once, and `corral update` brings the daemon to the installed code with every
app back under its pm_id (tests run real installs: a copy of the package on
PYTHONPATH, with its own __version__)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import corral
from corral.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]


def install_copy(dest: Path, version: str) -> Path:
    """A corral package in ``dest/corral`` (with its plugins) whose __version__ is ``version``;
    returns ``dest``, the PYTHONPATH entry that runs it."""
    package = dest / "corral"
    shutil.copytree(ROOT / "core", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "plugins", package / "plugins", ignore=shutil.ignore_patterns("__pycache__")
    )
    init = package / "__init__.py"
    text = init.read_text()
    init.write_text(
        text.replace(f'__version__ = "{corral.__version__}"', f'__version__ = "{version}"')
    )
    return dest


def run_cli(home: Path, *args: str, pythonpath: Path | None = None, timeout: float = 60):
    env = dict(os.environ, CORRAL_HOME=str(home))
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=env,
        cwd=str(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ping_shows_version_and_install_path(corral_home: Path) -> None:
    done = run_cli(corral_home, "ping", "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["version"] == corral.__version__
    assert reply["install_path"] == os.path.realpath(Path(corral.__file__).parent)
    assert reply["python"] == sys.executable
    assert done.stderr == ""  # the same corral: no warning
    text = run_cli(corral_home, "ping")
    assert f"corral {corral.__version__} from {reply['install_path']}" in text.stdout


def test_a_client_of_another_corral_warns_once(corral_home: Path, tmp_path: Path) -> None:
    other = install_copy(tmp_path / "other", "9.9.9")
    started = run_cli(corral_home, "ping", pythonpath=other)  # the daemon runs 9.9.9
    assert started.returncode == 0, started.stderr
    assert "corral 9.9.9 from" in started.stdout
    for args in (("ls",), ("ping",), ("ping", "--json")):
        done = run_cli(corral_home, *args)  # this checkout's corral
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if "corral update" in line]
        assert lines == [
            f"warning: the daemon runs corral 9.9.9 from {other / 'corral'}, this is corral "
            f"{corral.__version__} from {os.path.realpath(Path(corral.__file__).parent)}: "
            "run `corral update`"
        ], (args, done.stderr)
    assert "corral update" not in run_cli(corral_home, "ls", pythonpath=other).stderr

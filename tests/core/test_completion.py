"""`corral completion bash|zsh|fish`: the printed script, run by a real bash, completes
commands, flags, and the names and ids of a running daemon's apps; it never starts one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.daemon.homelock import holder
from tests.conftest import run_cli as corral

SLEEP = shutil.which("sleep") or "/bin/sleep"
BASH = shutil.which("bash")


def _complete(tmp_path: Path, line: str) -> list[str]:
    """What bash offers after ``line``: the script of `corral completion bash` sourced,
    then its completion function run as bash runs it on TAB."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "corral"  # `corral` on PATH, as the installed console script
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m corral "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    script = tmp_path / "corral.bash"
    script.write_text(corral("completion", "bash").stdout)
    words = line.split(" ")
    program = f"""
source {script}
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words) - 1}
_corral_completion corral
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [BASH, "--norc", "-c", program], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def test_bash_completes_app_names_and_ids_from_the_daemon(pm: object, tmp_path: Path) -> None:
    corral("start", SLEEP, "--name", "web-api", "--no-wait", "--", "3600")
    corral("start", SLEEP, "--name", "worker", "--no-wait", "--", "3600")
    assert _complete(tmp_path, "corral restart w") == ["web-api", "worker"]
    assert _complete(tmp_path, "corral logs web") == ["web-api"]
    assert set(_complete(tmp_path, "corral stop ")) >= {"web-api", "worker", "0", "1", "all"}
    assert _complete(tmp_path, "corral env 1") == ["1"]


def test_bash_completes_commands_and_flags(
    corral_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_PLUGINS", "startup")  # its commands complete too
    assert {"start", "startOrRestart", "startup", "stop"} <= set(_complete(tmp_path, "corral st"))
    assert _complete(tmp_path, "corral ecosystem --fo") == ["--format", "--force"]


def test_completion_never_starts_a_daemon(corral_home: Path, tmp_path: Path) -> None:
    began = time.monotonic()
    assert _complete(tmp_path, "corral stop w") == []
    assert time.monotonic() - began < 20
    assert holder(corral_home) is None
    assert not (corral_home / "rpc.sock").exists()


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_call_corral_back(corral_home: Path, shell: str) -> None:
    out = corral("completion", shell).stdout
    assert f"_CORRAL_COMPLETE={shell}_complete" in out


def test_an_unknown_shell_is_refused(corral_home: Path) -> None:
    result = corral("completion", "tcsh", check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr

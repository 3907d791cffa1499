"""PM2's config targets on the command line: ``--only``, ``-`` (stdin), several scripts.

Each refusal is one line, and changes nothing: no app is started or deleted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli as corral

SLEEPER = "import time\ntime.sleep(120)\n"


def _config(tmp_path: Path, *names: str) -> Path:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    apps = [{"name": name, "script": "sleeper.py", "interpreter": sys.executable} for name in names]
    path = tmp_path / "eco.json"
    path.write_text(json.dumps({"apps": apps}))
    return path


def _names(pm: object) -> list[str]:
    return sorted(info.name for info in pm.list())


def test_only_with_an_unknown_name_lists_the_files_apps_and_starts_nothing(
    tmp_path: Path, pm: object
) -> None:
    _config(tmp_path, "api", "worker")
    result = corral("start", "eco.json", "--only", "api,nope", cwd=tmp_path, check=False)
    assert result.returncode != 0
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert "--only 'nope'" in error and "its apps: api, worker" in error, error
    assert _names(pm) == []


def test_delete_only_with_an_unknown_name_deletes_nothing(tmp_path: Path, pm: object) -> None:
    _config(tmp_path, "api", "worker")
    corral("start", "eco.json", "--no-wait", cwd=tmp_path)
    result = corral("delete", "eco.json", "--only", "nope", cwd=tmp_path, check=False)
    assert result.returncode != 0 and "its apps: api, worker" in result.stderr
    assert _names(pm) == ["api", "worker"]


def test_only_with_prune_leaves_the_files_other_apps(tmp_path: Path, pm: object) -> None:
    _config(tmp_path, "api", "worker")
    corral("start", "eco.json", "--no-wait", cwd=tmp_path)
    corral("start", "eco.json", "--only", "api", "--prune", "--no-wait", cwd=tmp_path)
    assert _names(pm) == ["api", "worker"]


def test_name_with_several_scripts_is_refused(tmp_path: Path, pm: object) -> None:
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(SLEEPER)
    result = corral("start", "a.py", "b.py", "--name", "x", cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "--name names one app" in result.stderr and "2 targets" in result.stderr
    assert _names(pm) == []


def test_several_scripts_start_as_apps_named_by_their_scripts(tmp_path: Path, pm: object) -> None:
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(SLEEPER)
    corral("start", "a.py", "b.py", "--no-wait", cwd=tmp_path)
    assert _names(pm) == ["a", "b"]


def test_stdin_config_resolves_paths_against_the_cwd(tmp_path: Path, pm: object) -> None:
    config = _config(tmp_path, "api").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "corral", "start", "-", "--no-wait"],
        input=config, capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [info] = pm.list()
    assert info.pm2_env["pm_exec_path"] == str(tmp_path / "sleeper.py")


def test_malformed_stdin_config_is_one_line_naming_stdin(tmp_path: Path, pm: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "corral", "start", "-"],
        input="{not json", capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "<stdin>" in result.stderr
    assert _names(pm) == []

"""Config files as PM2 reads them: paths from where the command runs, lenient JSON,
JS exports checked, and every unknown key of a file in one error (issue 12, points 5 and 6).

The CLI runs as a subprocess from a project's root, as a user types it, against a
real daemon on a private CORRAL_HOME; apps are tiny Python programs that stay up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corral import CorralWarning
from corral.errors import OptionError
from corral.options.config import load_config
from corral.testing import wait_for

PY = sys.executable
STAY_UP = "import time\nwhile True:\n    time.sleep(1)\n"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def corral(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "corral", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def online(pm, name: str) -> dict:
    """The jlist entry of ``name`` once it is online."""

    def entry() -> dict | None:
        found = [p for p in json.loads(pm.jlist_json()) if p["name"] == name]
        return found[0] if found and found[0]["pm2_env"]["status"] == "online" else None

    return wait_for(entry, 10, f"{name} online")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A project whose PM2 config sits in pm2/, its code in src/, as real repos keep them."""
    root = tmp_path / "repo"
    write(root / "src" / "worker.py", STAY_UP)
    return root


# --- point 5: paths ------------------------------------------------------------


def test_a_config_in_a_subfolder_with_root_relative_paths_runs_from_the_root(pm, repo):
    write(
        repo / "pm2" / "ecosystem.json",
        json.dumps({"apps": [{"name": "w", "script": "src/worker.py", "out_file": "logs/w.log"}]}),
    )
    done = corral("start", "pm2/ecosystem.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # found where PM2 looks: nothing to say
    env = online(pm, "w")["pm2_env"]
    assert env["pm_exec_path"] == str(repo / "src" / "worker.py")
    assert env["pm_cwd"] == str(repo)
    assert env["pm_out_log_path"] == str(repo / "logs" / "w.log")


def test_a_relative_cwd_resolves_from_the_root_and_the_script_against_it(pm, repo):
    app = {"name": "w", "cwd": "src", "script": "worker.py"}
    write(repo / "deploy" / "pm2.json", json.dumps({"apps": [app]}))
    done = corral("start", "deploy/pm2.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    env = online(pm, "w")["pm2_env"]
    assert env["pm_cwd"] == str(repo / "src")
    assert env["pm_exec_path"] == str(repo / "src" / "worker.py")


def test_a_relative_interpreter_resolves_against_the_cwd(pm, repo):
    venv_bin = repo / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    app = {"name": "w", "script": "src/worker.py", "interpreter": "./venv/bin/python"}
    write(repo / "pm2" / "ecosystem.json", json.dumps({"apps": [app]}))
    done = corral("start", "pm2/ecosystem.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    entry = online(pm, "w")
    assert entry["pm2_env"]["exec_interpreter"] in (str(venv_bin / "python"), "python")
    assert os.readlink(f"/proc/{entry['pid']}/exe") == os.path.realpath(sys.executable)


def test_a_path_only_the_config_folder_has_loads_with_a_one_line_note(pm, repo):
    write(repo / "pm2" / "app.py", STAY_UP)
    write(repo / "pm2" / "ecosystem.json", '{"apps": [{"name": "w", "script": "app.py"}]}')
    done = corral("start", "pm2/ecosystem.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "app.py" in line]
    assert len(notes) == 1, done.stderr
    assert notes[0].startswith("warning: pm2/ecosystem.json: apps[0] (w): script 'app.py'")
    assert "relative to the config file's folder" in notes[0]
    assert online(pm, "w")["pm2_env"]["pm_exec_path"] == str(repo / "pm2" / "app.py")


def test_the_api_gives_the_fallback_note_as_a_corral_warning(pm, repo, monkeypatch):
    write(repo / "pm2" / "app.py", STAY_UP)
    write(repo / "pm2" / "ecosystem.json", '{"apps": [{"name": "w", "script": "app.py"}]}')
    monkeypatch.chdir(repo)
    with pytest.warns(CorralWarning, match="found relative to the config file's folder"):
        pm.start("pm2/ecosystem.json")
    online(pm, "w")


# --- point 6: files PM2 reads --------------------------------------------------


JSON_WITH_COMMENTS = """\
// PM2 evaluates .json leniently; so does corral
{
  /* two apps */
  "apps": [
    {
      "name": "w", // the worker
      "script": "src/worker.py",
      env: {"MODE": "x",},
    },
  ],
}
"""


def test_json_with_comments_and_trailing_commas_loads_and_starts(pm, repo):
    write(repo / "ecosystem.json", JSON_WITH_COMMENTS)
    done = corral("start", "ecosystem.json", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert online(pm, "w")["pm2_env"]["env"]["MODE"] == "x"


def test_bad_json5_names_the_line_where_it_breaks(repo, monkeypatch):
    monkeypatch.chdir(repo)
    path = write(
        repo / "e.json", '// a comment\n{"apps": [\n  {"script": "src/worker.py"}\n  {}\n]}\n'
    )
    with pytest.raises(Exception, match=r"e\.json line 4: ") as info:
        load_config(path)
    assert "\n" not in str(info.value)


@needs_node
@pytest.mark.parametrize(
    ("export", "what"),
    [
        ("module.exports = () => ({apps: [{script: 'a.py'}]});", "exports a function"),
        ("module.exports = 'app.py';", "exports a string"),
        ("module.exports = null;", "exports null"),
        ("const apps = [{script: 'a.py'}];", "exports nothing"),
    ],
)
def test_a_js_config_that_exports_no_app_list_is_one_line(corral_home, repo, export, what):
    write(repo / "ecosystem.config.js", export + "\n")
    done = corral("start", "ecosystem.config.js", cwd=repo)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: ecosystem.config.js: {what}")
    assert "expected module.exports = {apps: [...]} or an array of apps" in lines[0]


FOUR_TYPOS = {
    "apps": [
        {"name": "api", "script": "src/worker.py", "instnces": 2, "log_rotate": True},
        {"name": "worker", "script": "src/worker.py", "autorestrat": False},
        {"script": "src/worker.py", "name": "third", "Max_Restart": 3},
    ]
}


def test_every_unknown_key_of_a_file_is_in_one_error(pm, repo):
    write(repo / "ecosystem.json", json.dumps(FOUR_TYPOS))
    done = corral("start", "ecosystem.json", cwd=repo)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("error: 4 unknown options: ")
    assert "apps[0] (api): 'instnces' (did you mean 'instances'?), 'log_rotate'" in line
    assert "apps[1] (worker): 'autorestrat' (did you mean 'autorestart'?)" in line
    assert "apps[2] (third): 'Max_Restart' (did you mean 'max_restarts'?)" in line
    assert "logrotate" not in line.replace("log_rotate", "")  # no misleading hint
    assert json.loads(pm.jlist_json()) == []  # nothing started


def test_the_api_names_every_unknown_key_too(pm, repo):
    with pytest.raises(OptionError) as info:
        pm.start([{**app, "script": str(repo / app["script"])} for app in FOUR_TYPOS["apps"]])
    assert str(info.value).startswith("4 unknown options: apps[0] (api): 'instnces'")
    assert pm.list() == []


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("log_rotate", None),
        ("max_size", None),
        ("LOG_DATE_FORMAT", "log_date_format"),
        ("log-date-format", "log_date_format"),
        ("maxMemoryRestarts", "maxMemoryRestart"),
        ("instance", "instances"),
    ],
)
def test_a_hint_is_given_only_when_close(key, hint):
    from corral.options.schema import OptionSchema
    from corral.options.table import CORE_OPTIONS

    schema = OptionSchema(CORE_OPTIONS)
    assert schema.get(key) is None
    assert schema.closest(key) == hint


def test_a_big_json_file_with_a_comment_is_refused_at_once(repo, monkeypatch):
    """The JSON5 reader is slow (about 50 ms per KB): past 64 KB only strict JSON is read."""
    import time

    apps = [
        {"name": f"a{i}", "script": "src/worker.py", "env": {"K": "v" * 100}} for i in range(600)
    ]
    path = write(repo / "big.json", "// a comment\n" + json.dumps({"apps": apps}, indent=1))
    monkeypatch.chdir(repo)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"big\.json line 1: .*read in files up to 64 KB") as info:
        load_config(path)
    assert time.monotonic() - started < 1
    assert "\n" not in str(info.value)

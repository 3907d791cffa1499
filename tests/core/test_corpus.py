"""Real PM2 ecosystem files load (issue 12, point 9).

``tests/corpus/ecosystems`` holds config files taken byte for byte from public
repositories (``INDEX.tsv`` says where each comes from; ``CORRAL_CORPUS`` points
elsewhere). Each file is laid out in a temporary directory as its repository
has it, with a tiny program that stays up wherever an app's code would be (node,
Python or sh, by the file's suffix) and a venv-like symlink where a relative
interpreter path points into the repository. Nothing outside the temporary
directory is created: an absolute path of the author's machine stays absent.

The file is then started from the repository's root, as ``corral start <path>``
does, against a real daemon with the option plugins loaded. It either starts
with the options it asks for (name, instances, exec_mode, env, cwd,
interpreter, read back from ``jlist``), or it is refused in one line that
names the field and the fix, for one of the reasons the README documents
(:data:`REASONS`). A new file dropped into the folder is tested too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest

import corral
from corral.daemon.apps import instance_count
from corral.errors import CorralError
from corral.options.config import read_apps

CORPUS = Path(
    os.environ.get("CORRAL_CORPUS") or Path(__file__).parents[1] / "corpus" / "ecosystems"
)
NOT_CONFIGS = {"INDEX.tsv", "README.md"}
FILES = sorted(
    p.name
    for p in (CORPUS.iterdir() if CORPUS.is_dir() else ())
    if p.is_file() and p.name not in NOT_CONFIGS and not p.name.startswith(".")
)

# The refusals the README documents, each naming the field and saying the fix.
REASONS = {
    "unknown option": r"unknown options?:? .*'[^']+'.*(fix or remove them|corral start --help)",
    "path absent on this machine": (
        r"\b(cwd|script|interpreter|out_file|error_file|log_file|pid_file)\b .*"
        r"(does not exist|not found|cannot be created).*(create it|fix the option)"
    ),
    "no apps key": r"no apps found: .*rename it 'apps'",
    "env_<name> that is no mapping": r"env_\S+ must be a mapping .*remove the key",
    "JSON in a .js file": r"SyntaxError.*rename it to \.json",
    "JS exports no app list": r"exports .*expected module\.exports = \{apps: \[\.\.\.\]\}",
}

PLUGINS = "memory,watch,cron"  # the options real files use (max_memory_restart, watch, cron)
NODE_STUB = "#!/usr/bin/env node\nsetInterval(() => {}, 1000);\n"
PY_STUB = "import time\nwhile True:\n    time.sleep(1)\n"
SH_STUB = "#!/bin/sh\nwhile :; do sleep 1; done\n"
CODE_SUFFIXES = (".js", ".cjs", ".mjs", ".py", ".sh", ".ts")
SCRIPT_KEYS = ("script", "exec", "cmd", "command")
INTERPRETER_KEYS = ("exec_interpreter", "execInterpreter", "interpreter")


def index() -> dict[str, dict[str, str]]:
    lines = (CORPUS / "INDEX.tsv").read_text().splitlines() if CORPUS.is_dir() else []
    if not lines:
        return {}
    header = lines[0].split("\t")
    return {
        row[0]: dict(zip(header, row, strict=False))
        for row in (ln.split("\t") for ln in lines[1:])
        if row
    }


def repo_path(name: str) -> str:
    """Where the file sits in its repository: INDEX.tsv's path, else its own name."""
    row = index().get(name)
    return row["path"] if row else name.split("__", 2)[-1]


def inside(path: str | os.PathLike, root: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(root)


def stub(path: Path) -> None:
    """A program that stays up, where an app's code would be; never over a real file."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    path.write_text(PY_STUB if suffix == ".py" else SH_STUB if suffix == ".sh" else NODE_STUB)
    path.chmod(0o755)


def pm2_paths(app: dict[str, Any], root: Path) -> dict[str, Any]:
    """``app`` with its paths where PM2 finds them when started from ``root``
    (lib/Common.js prepareAppConf): cwd from root, script from cwd, interpreter from root."""
    resolved = dict(app)
    if isinstance(app.get("cwd"), str) and app["cwd"]:
        resolved["cwd"] = os.path.normpath(root / app["cwd"])  # an absolute cwd stays
    for key in INTERPRETER_KEYS:
        if isinstance(app.get(key), str) and os.sep in app[key]:
            resolved[key] = os.path.normpath(root / app[key])
    return resolved


def lay_out(app: dict[str, Any], root: Path) -> None:
    """Stubs for the code, the directories and the venv an app of the repository names."""
    base = Path(app.get("cwd") or root)
    if inside(base, root):
        base.mkdir(parents=True, exist_ok=True)
    script = next((app[k] for k in SCRIPT_KEYS if isinstance(app.get(k), str)), "")
    words = script.split()
    args = app.get("args")
    words += (
        args.split() if isinstance(args, str) else [a for a in args or () if isinstance(a, str)]
    )
    for index_, word in enumerate(words):
        is_code = word.lower().endswith(CODE_SUFFIXES) or os.sep in word
        command = index_ == 0 and os.sep not in word and shutil.which(word)
        if index_ == 0 and not command:
            is_code = True  # the script itself: a file of the repository (app.js, bin/www)
        if not is_code or command or word.startswith("-"):
            continue
        path = base / word  # an absolute word stays itself
        if inside(path, root):
            stub(path)
    for key in INTERPRETER_KEYS:
        value = app.get(key)
        if isinstance(value, str) and os.path.isabs(value) and inside(value, root):
            target = shutil.which("node") if "node" in Path(value).name else sys.executable
            if target and not os.path.lexists(value):
                Path(value).parent.mkdir(parents=True, exist_ok=True)
                Path(value).symlink_to(target)


@pytest.fixture(scope="module")
def pm_plugins():
    """One detached daemon for the whole corpus, with the option plugins real files use:
    each test deletes what it started; the daemon and anything left are killed at the end."""
    from corral import testing
    from corral.supervisor import cgroup_home

    home = Path(tempfile.mkdtemp(prefix="corral-", dir="/tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CORRAL_HOME", str(home))
        patch.setenv("CORRAL_PLUGINS", PLUGINS)
        patch.delenv("CORRAL_DUMP_FILE", raising=False)
        client = corral.connect()
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.kill_daemon()
            client.disconnect()
            testing._stop_detached_daemon(home)
            for pid in testing._recorded_app_pids(home):
                testing.kill_tree(pid)
            cgroup_home.end_home(home)
            shutil.rmtree(home, ignore_errors=True)


def test_the_corpus_is_there():
    assert len(FILES) >= 40, f"no corpus at {CORPUS} (set CORRAL_CORPUS)"
    assert set(FILES) <= set(index()), "every file of the corpus has a row in INDEX.tsv"


@pytest.mark.parametrize("name", FILES)
def test_a_real_file_starts_or_is_refused_for_a_documented_reason(
    name: str, pm_plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_property
) -> None:
    root = tmp_path / "repo"
    config = root / repo_path(name)
    config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CORPUS / name, config)
    stub_module = root / "node_modules" / "dotenv" / "index.js"  # as README allows
    stub_module.parent.mkdir(parents=True)
    stub_module.write_text("module.exports = { config() { return {}; } };\n")
    monkeypatch.chdir(root)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            apps = [pm2_paths(app, root) for app in read_apps(config)]
            for app in apps:
                lay_out(app, root)
            started = pm_plugins.start(str(config))
        except CorralError as exc:
            refused(name, str(exc), record_property)
            return
    try:
        check_started(apps, root, json.loads(pm_plugins.jlist_json()))
        record_property("outcome", f"started {len(started)}")
    finally:
        pm_plugins.delete("all")


def refused(name: str, message: str, record_property) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert len(message) < 600, message
    reasons = [reason for reason, pattern in REASONS.items() if re.search(pattern, message)]
    assert reasons, f"{name} refused for a reason the README does not document: {message}"
    record_property("outcome", f"refused: {reasons[0]}: {message}")


def check_started(apps: list[dict[str, Any]], root: Path, jlist: list[dict[str, Any]]) -> None:
    for app in apps:
        script = next(app[k] for k in SCRIPT_KEYS if isinstance(app.get(k), str))
        name = app.get("name") or (script if " " in script else Path(script).stem)
        entries = [e for e in jlist if e["name"] == name]
        instances = app.get("instances")
        wanted = instance_count(0 if instances == "max" else instances)
        assert len(entries) == wanted, f"{name}: {len(entries)} instances, wanted {wanted}"
        for entry in entries:
            env = entry["pm2_env"]
            assert env["pm_cwd"] == str(app.get("cwd") or root)
            mode = app.get("exec_mode") or app.get("execMode")
            if isinstance(mode, str):
                assert env["exec_mode"] == mode.removesuffix("_mode") + "_mode"
            for key, value in (app.get("env") or {}).items():
                if key != app.get("increment_var") and isinstance(value, (str, int)):
                    assert env["env"][key] == str(value), f"{name}: env {key}"
            interpreter = next((app[k] for k in INTERPRETER_KEYS if app.get(k)), None)
            if isinstance(interpreter, str) and interpreter != "none":
                stem = Path(interpreter).name.rstrip("0123456789.")
                assert env["exec_interpreter"].startswith(stem), env["exec_interpreter"]

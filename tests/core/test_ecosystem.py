"""`corral ecosystem` (alias `init`): a commented starter file in each format, which
`corral start` then loads and runs."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.cli.ecosystem import FORMATS
from tests.conftest import run_cli as corral
from tests.conftest import wait_for

APP = "import time\ntime.sleep(3600)\n"
NAMES = {
    "js": "ecosystem.config.js",
    "json": "ecosystem.config.json",
    "yaml": "ecosystem.config.yaml",
    "toml": "ecosystem.config.toml",
}
COMMENT = {"js": "//", "json": "//", "yaml": "#", "toml": "#"}
DOCUMENTED = (
    "name",
    "script",
    "args",
    "instances",
    "exec_mode",
    "autorestart",
    "watch",
    "max_memory_restart",
    "env",
    "env_production",
)


@pytest.fixture
def pm(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A daemon with the plugins the starter's options need (watch, memory), as a
    default install loads them."""
    import corral as corral_api

    monkeypatch.setenv("CORRAL_PLUGINS", "watch,memory")
    client = corral_api.connect()
    yield client
    with contextlib.suppress(Exception):
        client.kill_daemon()
    client.disconnect()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_starter_is_commented_and_corral_start_runs_it(
    fmt: str, pm: object, tmp_path: Path
) -> None:
    out = corral("ecosystem", "--format", fmt, cwd=tmp_path).stdout
    path = tmp_path / NAMES[fmt]
    assert out.startswith(f"File {path} generated")
    text = path.read_text()
    assert text.splitlines()[0].startswith(COMMENT[fmt])
    for key in DOCUMENTED:
        assert key in text, key
    (tmp_path / "app.py").write_text(APP)
    env = ("--env", "production") if fmt == "toml" else ()
    corral("start", path.name, *env, cwd=tmp_path)
    [info] = pm.list()  # type: ignore[attr-defined]
    assert (info.name, info.status) == ("app", "online")
    assert info.pm2_env["env"]["APP_ENV"] == ("production" if env else "development")
    assert info.pm2_env["pm_exec_path"] == str(tmp_path / "app.py")
    assert corral("stop", path.name, cwd=tmp_path).returncode == 0
    wait_for(lambda: pm.list()[0].status == "stopped")  # type: ignore[attr-defined]


def test_default_is_pm2s_ecosystem_config_js_and_init_is_an_alias(tmp_path: Path) -> None:
    corral("ecosystem", cwd=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["ecosystem.config.js"]
    other = tmp_path / "other"
    other.mkdir()
    corral("init", "--format", "yaml", cwd=other)
    assert [p.name for p in other.iterdir()] == ["ecosystem.config.yaml"]
    simple = tmp_path / "simple"
    simple.mkdir()
    said = json.loads(corral("ecosystem", "simple", "--json", cwd=simple).stdout)  # PM2's mode
    assert said == {"path": str(simple / "ecosystem.config.js"), "format": "js"}
    assert [p.name for p in simple.iterdir()] == ["ecosystem.config.js"]


def test_the_format_comes_from_the_file_name(tmp_path: Path) -> None:
    corral("ecosystem", "apps.yml", cwd=tmp_path)
    assert "apps:\n  - name: app" in (tmp_path / "apps.yml").read_text()
    corral("ecosystem", "my.config.js", cwd=tmp_path)
    assert "module.exports" in (tmp_path / "my.config.js").read_text()


def test_an_existing_file_is_kept_unless_force(tmp_path: Path) -> None:
    path = tmp_path / "ecosystem.config.js"
    path.write_text("mine\n")
    refused = corral("ecosystem", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == f"error: {path} exists: pass --force to replace it\n"
    assert path.read_text() == "mine\n"
    corral("ecosystem", "--force", cwd=tmp_path)
    assert "module.exports" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["ecosystem.config.js"]  # no temp left


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("apps.txt",), "apps.txt does not end in .js, .json, .yaml, .yml or .toml"),
        (("--format", "yaml", "apps.json"), "--format yaml and the file name apps.json disagree"),
        (("app.js",), "named *.config.js or ecosystem*.js, and app.js is neither"),
        (("--format", "ini"), "'ini' is not one of"),
    ],
)
def test_a_bad_name_or_format_writes_nothing(tmp_path: Path, args: tuple, says: str) -> None:
    result = corral("ecosystem", *args, cwd=tmp_path, check=False)
    assert result.returncode in (1, 2)
    assert says in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_json_starter_is_json5_with_comments(tmp_path: Path) -> None:
    """JSON has no comments: the starter's // lines need corral's lenient reader."""
    corral("ecosystem", "--format", "json", cwd=tmp_path)
    text = (tmp_path / "ecosystem.config.json").read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    stripped = "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
    assert json.loads(stripped)["apps"][0]["script"] == "app.py"
    assert sys.executable  # the file names no interpreter: a .py runs with corral's Python

"""Config files: every format, PM2's three shapes, relative paths, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corral import CorralWarning
from corral.errors import ConfigError
from corral.options.config import CONFIG_SUFFIXES, is_config_file, load_config, resolve_app_paths

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding a script, and the cwd, so relative names resolve as PM2's."""
    write(tmp_path / "app.py", "print('hi')\n")
    write(tmp_path / "src" / "worker.py", "print('work')\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- formats ---------------------------------------------------------------


def test_json_apps(project):
    path = write(
        project / "ecosystem.json",
        json.dumps({"apps": [{"name": "api", "script": "app.py", "instances": "2"}]}),
    )
    assert load_config(path) == [
        {"name": "api", "script": str(project / "app.py"), "instances": "2"}
    ]


def test_yaml_apps(project):
    text = """
apps:
  - name: api
    script: app.py
    env:
      PORT: 8080
  - name: worker
    script: src/worker.py
"""
    for suffix in (".yaml", ".yml"):
        apps = load_config(write(project / f"procs{suffix}", text))
        assert [app["name"] for app in apps] == ["api", "worker"]
        assert apps[0]["env"] == {"PORT": 8080}  # raw: the daemon normalizes
        assert apps[1]["script"] == str(project / "src" / "worker.py")


def test_toml_apps(project):
    text = """
[[apps]]
name = "api"
script = "app.py"
maxRestarts = 3

[[apps]]
name = "worker"
script = "src/worker.py"
"""
    apps = load_config(write(project / "corral.toml", text))
    assert apps[0] == {"name": "api", "script": str(project / "app.py"), "maxRestarts": 3}
    assert apps[1]["name"] == "worker"


def test_a_bare_list_of_apps(project):
    path = write(project / "apps.json", json.dumps([{"script": "app.py"}, {"exec": "app.py"}]))
    apps = load_config(path)
    assert apps == [{"script": str(project / "app.py")}, {"exec": str(project / "app.py")}]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("one.json", '{"name": "solo", "script": "app.py"}'),
        ("one.yaml", "name: solo\nscript: app.py\n"),
        ("one.toml", 'name = "solo"\nscript = "app.py"\n'),
    ],
)
def test_a_single_app_object(project, name, text):
    assert load_config(write(project / name, text)) == [
        {"name": "solo", "script": str(project / "app.py")}
    ]


def test_apps_may_be_one_object(project):
    path = write(project / "e.json", '{"apps": {"name": "solo", "script": "app.py"}}')
    assert [app["name"] for app in load_config(path)] == ["solo"]


def test_other_top_level_keys_are_ignored(project):
    text = json.dumps({"apps": [{"script": "app.py"}], "deploy": {"production": {"user": "x"}}})
    assert load_config(write(project / "e.json", text)) == [{"script": str(project / "app.py")}]


@needs_node
def test_ecosystem_config_js(project):
    text = """
const base = { instances: 2 };
console.log("config files may print");
module.exports = {
  apps: [
    { ...base, name: "api", script: "app.py", env: { PORT: 3000 } },
    { name: "worker", script: "./src/worker.py", args: ["--fast"] },
  ],
};
"""
    apps = load_config(write(project / "ecosystem.config.js", text))
    assert apps == [
        {"instances": 2, "name": "api", "script": str(project / "app.py"), "env": {"PORT": 3000}},
        {"name": "worker", "script": str(project / "src" / "worker.py"), "args": ["--fast"]},
    ]


@needs_node
def test_ecosystem_config_cjs_bare_list(project):
    path = write(project / "ecosystem.config.cjs", 'module.exports = [{script: "app.py"}];\n')
    assert load_config(path) == [{"script": str(project / "app.py")}]


@needs_node
def test_ecosystem_config_mjs(project):
    text = 'export default { apps: [{ name: "api", script: "app.py" }] };\n'
    apps = load_config(write(project / "ecosystem.config.mjs", text))
    assert apps == [{"name": "api", "script": str(project / "app.py")}]


@needs_node
def test_mjs_with_named_exports(project):
    text = 'export const apps = [{ name: "api", script: "app.py" }];\n'
    apps = load_config(write(project / "procs.config.mjs", text))
    assert [app["name"] for app in apps] == ["api"]


# --- errors ----------------------------------------------------------------


def test_bad_json_names_the_file_and_line(project):
    text = '{\n  "apps": [\n    {"name": "api",\n     "script": "app.py"\n     "instances": 2}\n'
    text += "  ]\n}\n"
    path = write(project / "ecosystem.json", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path} line 5: Expecting ',' delimiter"


def test_bad_yaml_names_the_file_and_line(project):
    path = write(project / "e.yaml", "apps:\n  - name: api\n    script: [app.py\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path} line 4:")


def test_bad_toml_names_the_file_and_line(project):
    path = write(project / "e.toml", '[[apps]]\nname = "api"\nscript = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path} line 3: ")
    assert "(at line" not in message


@needs_node
def test_bad_js_names_the_file_and_line(project):
    text = 'module.exports = {\n  apps: [\n    {name: "a" script: "x"}\n  ]\n};\n'
    path = write(project / "ecosystem.config.js", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path} line 3: SyntaxError: Unexpected identifier 'script'"


@needs_node
def test_bad_mjs_names_the_file_and_line(project):
    text = 'export default {\n  apps: [\n    {name: "a" script: "x"}\n  ]\n};\n'
    path = write(project / "ecosystem.config.mjs", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path} line 3: SyntaxError: Unexpected identifier 'script'"


@needs_node
def test_js_that_throws(project):
    path = write(project / "ecosystem.config.js", '\nthrow new Error("no config for you");\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path} line 2: Error: no config for you"


def test_js_without_node(project, monkeypatch):
    path = write(project / "ecosystem.config.js", "module.exports = {apps: []};\n")
    monkeypatch.setenv("PATH", str(project / "empty-bin"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "needs node, which is not installed" in message
    assert "install node or convert the file to JSON or YAML" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=f"config file {path} does not exist"):
        load_config(path)


def test_a_directory_is_not_a_config(tmp_path):
    path = tmp_path / "dir.json"
    path.mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(path)


def test_unknown_format(tmp_path):
    path = write(tmp_path / "apps.ini", "[app]\n")
    with pytest.raises(ConfigError, match=r"unknown config format '\.ini'"):
        load_config(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.json", '{"apps": []}'),
        ("empty-list.json", "[]"),
        ("deploy-only.json", '{"deploy": {}}'),
        ("empty.yaml", ""),
        ("empty.toml", ""),
        ("typo.toml", '[[app]]\nscript = "a.py"\n'),
    ],
)
def test_a_file_with_no_apps(tmp_path, name, text):
    path = write(tmp_path / name, text)
    with pytest.raises(ConfigError, match="no apps found") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_apps_must_be_a_list(tmp_path):
    path = write(tmp_path / "e.json", '{"apps": "app.py"}')
    with pytest.raises(ConfigError, match="'apps' must be a list of apps, got a string"):
        load_config(path)


def test_an_app_that_is_not_an_object_names_its_index(tmp_path):
    path = write(tmp_path / "e.json", '{"apps": [{"script": "a.py"}, "b.py"]}')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: apps[1] is not an object, got a string"


# --- relative paths --------------------------------------------------------


def test_a_path_only_the_config_directory_has_is_used_with_a_note(project, monkeypatch):
    write(project / "conf" / "ecosystem.json", '{"apps": [{"script": "../app.py"}]}')
    monkeypatch.chdir("/")
    with pytest.warns(CorralWarning, match=r"script '\.\./app\.py' found relative to the config"):
        apps = load_config(project / "conf" / "ecosystem.json")
    assert apps[0]["script"] == str(project / "app.py")


def test_a_relative_config_path_works_from_the_caller_cwd(project, monkeypatch):
    write(project / "ecosystem.json", '{"apps": [{"script": "app.py", "cwd": "src"}]}')
    monkeypatch.chdir(project)
    apps = load_config("ecosystem.json")
    assert apps[0]["cwd"] == str(project / "src")


def test_a_relative_cwd_resolves_against_the_caller_and_the_script_against_cwd(project):
    text = '{"apps": [{"script": "worker.py", "cwd": "src"}]}'
    apps = load_config(write(project / "ecosystem.json", text))
    assert apps[0] == {"script": str(project / "src" / "worker.py"), "cwd": str(project / "src")}


def test_resolve_app_paths_leaves_absolute_paths(project):
    app = {"script": "/usr/bin/env", "cwd": "/tmp"}
    assert resolve_app_paths(app, project) == app


def test_resolve_app_paths_leaves_commands_for_path_and_shell(project):
    assert resolve_app_paths({"script": "python3"}, project) == {"script": "python3"}
    assert resolve_app_paths({"script": "npm run start"}, project) == {"script": "npm run start"}


def test_resolve_app_paths_resolves_a_path_even_if_missing(project):
    app = resolve_app_paths({"script": "./missing.py"}, project)
    assert app["script"] == str(project / "missing.py")


def test_resolve_app_paths_resolves_an_existing_bare_name(project):
    assert resolve_app_paths({"script": "app.py"}, project) == {"script": str(project / "app.py")}


def test_resolve_app_paths_expands_the_home(project, monkeypatch):
    monkeypatch.setenv("HOME", str(project))
    app = resolve_app_paths({"script": "~/app.py", "cwd": "~/src"}, Path("/"))
    assert app == {"script": str(project / "app.py"), "cwd": str(project / "src")}


def test_resolve_app_paths_resolves_every_script_alias_and_copies(project):
    app = {"cmd": "src/worker.py", "name": "w"}
    resolved = resolve_app_paths(app, project)
    assert resolved == {"cmd": str(project / "src" / "worker.py"), "name": "w"}
    assert app == {"cmd": "src/worker.py", "name": "w"}


def test_resolve_app_paths_leaves_wrong_types_for_validation(project):
    app = {"script": 42, "cwd": ["x"]}
    assert resolve_app_paths(app, project) == app


# --- is_config_file --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ecosystem.json", True),
        ("procs.yaml", True),
        ("procs.yml", True),
        ("corral.toml", True),
        ("ecosystem.config.js", True),
        ("ecosystem.config.cjs", True),
        ("ecosystem.config.mjs", True),
        ("pm2.config.js", True),
        ("ecosystem.js", True),
        ("ecosystem-prod.js", True),
        ("app.js", False),
        ("server.mjs", False),
        ("app.py", False),
        ("run.sh", False),
    ],
)
def test_is_config_file(tmp_path, name, expected):
    path = write(tmp_path / name, "")
    assert is_config_file(path) is expected
    assert is_config_file(str(path)) is expected


def test_is_config_file_needs_an_existing_file(tmp_path):
    assert not is_config_file(tmp_path / "ecosystem.json")
    (tmp_path / "dir.json").mkdir()
    assert not is_config_file(tmp_path / "dir.json")


def test_config_suffixes():
    assert set(CONFIG_SUFFIXES) == {".json", ".yaml", ".yml", ".toml", ".js", ".cjs", ".mjs"}

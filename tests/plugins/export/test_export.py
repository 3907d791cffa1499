"""The export plugin: a file read for another machine, rendered by an exporter
plugin, written to a directory or printed."""

from __future__ import annotations

import json
import os
import types

import pytest

import corral
from corral import ConfigError, OptionError, PluginError
from corral.api import load_plugins, read_portable
from corral.plugins import export as export_plugin
from corral.plugins.export import Exporter, ExportResult, export, write_files
from tests.conftest import run_cli


def listing(request):
    """A toy exporter: one line per app."""
    lines = [
        f"{a.name} {a.instances} {a.exec_mode} {sorted(a.env.items())}" for a in request.config.apps
    ]
    return ExportResult(files={"apps.txt": "\n".join(lines)}, warnings=["toy: nothing mapped"])


def plugin(name, render=listing, target="toy"):
    module = types.ModuleType(name)

    @corral.hookimpl
    def corral_exporters():
        return [Exporter(name=target, help="A toy.", render=render)]

    module.corral_exporters = corral_exporters
    return module


def write(tmp_path, data, name="apps.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_a_file_is_read_for_another_machine(tmp_path):
    """The script and cwd are the target's: nothing of this machine is checked."""
    path = write(
        tmp_path,
        {
            "apps": [
                {
                    "script": "/srv/app/server.js",
                    "cwd": "/srv/app",
                    "instances": 4,
                    "env": {"A": 1, "B": True, "GONE": "x"},
                    "env_production": {"A": "prod", "GONE": None},
                    "maxMemoryRestart": "200M",
                }
            ],
            "deploy": {"production": {"host": "h"}},
        },
    )
    config = read_portable(path, env_name="production")
    (app,) = config.apps
    assert (app.name, app.instances, app.exec_mode) == ("server", 4, "cluster")
    assert app.env == {"A": "prod", "B": "true"}
    assert app.options["max_memory_restart"] == 200 * 1024 * 1024
    assert app.options["cwd"] == "/srv/app"
    assert "PATH" not in app.env
    assert config.deploy == {"production": {"host": "h"}}


def test_a_bad_option_names_the_file_and_the_app(tmp_path):
    path = write(tmp_path, {"apps": [{"name": "web", "script": "x.py", "instances": "lots"}]})
    with pytest.raises(ConfigError, match=r"apps.json: apps\[0\] \(web\): instances"):
        read_portable(path)


def test_a_deploy_only_file_reads_for_deploy_and_says_so_for_start(corral_home, tmp_path):
    path = write(tmp_path, {"deploy": {"production": {"host": "h"}, "staging": {}}})
    assert read_portable(path).apps == []
    done = run_cli("start", str(path), check=False)
    assert done.returncode == 1
    assert "only a deploy section, for 'production, staging'" in done.stderr
    assert f"corral deploy {path} ENV setup|update" in done.stderr


def test_an_exporter_renders_and_the_files_are_written(tmp_path):
    path = write(tmp_path, {"apps": [{"name": "web", "script": "web.py", "env": {"X": "1"}}]})
    manager = load_plugins([export_plugin, plugin("toy_exporter")])
    result = export("toy", path, manager=manager)
    assert result.files == {"apps.txt": "web 1 fork [('X', '1')]"}
    written = write_files(result.files, str(tmp_path / "out" / "k8s"))
    assert [p.read_text() for p in written] == ["web 1 fork [('X', '1')]"]


def test_an_unknown_target_and_two_of_one_name_are_refused(tmp_path):
    path = write(tmp_path, {"apps": [{"script": "web.py"}]})
    manager = load_plugins([export_plugin, plugin("toy_exporter")])
    with pytest.raises(OptionError, match="no exporter for 'nomad': the targets are toy"):
        export("nomad", path, manager=manager)
    twice = load_plugins([export_plugin, plugin("one"), plugin("two")])
    with pytest.raises(PluginError, match="'toy' is given by two plugins"):
        export("toy", path, manager=twice)


def test_an_exporter_may_not_name_a_path(tmp_path):
    path = write(tmp_path, {"apps": [{"script": "web.py"}]})

    def escape(request):
        return ExportResult(files={"../../etc/x": "boom"})

    manager = load_plugins([export_plugin, plugin("bad", escape)])
    with pytest.raises(PluginError, match="not a plain file name"):
        export("toy", path, manager=manager)


def test_a_symlink_in_the_output_is_not_followed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("mine")
    os.symlink(victim, out / "apps.txt")
    with pytest.raises(OptionError, match="cannot write"):
        write_files({"apps.txt": "theirs"}, str(out))
    assert victim.read_text() == "mine"


def test_a_file_as_output_directory_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError, match=r"-o .*file"):
        write_files({"a.txt": "x"}, str(tmp_path / "file"))


def test_the_cli_lists_the_installed_targets():
    done = run_cli("export", "--help")
    assert "kubernetes" in done.stdout and "systemd" in done.stdout

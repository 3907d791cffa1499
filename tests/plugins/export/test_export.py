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
from corral.options.address import parse_address
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
    with pytest.raises(OptionError, match=r"apps\.txt is a symlink"):
        write_files({"apps.txt": "theirs"}, str(out))
    assert victim.read_text() == "mine"


def test_a_file_as_output_directory_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError, match=r"-o .*file"):
        write_files({"a.txt": "x"}, str(tmp_path / "file"))


# -- -o DIR: every target checked before any is written; each written whole ----------


def test_a_symlink_among_the_targets_is_refused_before_anything_is_written(tmp_path):
    """It was refused at its turn, the files before it written (a partial export), with
    "Too many levels of symbolic links"."""
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path / "elsewhere", out / "b.service")
    with pytest.raises(OptionError) as caught:
        write_files({"a.service": "A\n", "b.service": "B\n", "c.service": "C\n"}, str(out))
    assert str(caught.value) == (
        f"-o {out}: b.service is a symlink: not written through; remove it, or give "
        "another directory (nothing was written)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["b.service"]


def test_a_directory_among_the_targets_is_refused_naming_it(tmp_path):
    out = tmp_path / "out"
    (out / "b.yaml").mkdir(parents=True)
    with pytest.raises(OptionError) as caught:
        write_files({"a.yaml": "A", "b.yaml": "B"}, str(out))
    assert str(caught.value) == (
        f"-o {out}: b.yaml is not a regular file (a directory): remove it, or give another "
        "directory (nothing was written)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["b.yaml"]


def test_each_file_is_replaced_whole_never_rewritten_in_place(tmp_path):
    """Through a temporary file renamed over the old one: a reader of the old file (here a
    hard link to it) never sees it half written, and no temporary file is left."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.service").write_text("old\n")
    os.link(out / "a.service", tmp_path / "reader")
    written = write_files({"a.service": "new\n", "b.service": "B\n"}, str(out))
    assert [p.name for p in written] == ["a.service", "b.service"]
    assert (out / "a.service").read_text() == "new\n"
    assert (tmp_path / "reader").read_text() == "old\n"
    assert sorted(p.name for p in out.iterdir()) == ["a.service", "b.service"]
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "b.service").stat().st_mode & 0o777 == 0o644 & ~mask


def test_o_a_file_or_a_dangling_symlink_says_what_it_is(tmp_path):
    """Both said "cannot make the directory: File exists"."""
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError) as caught:
        write_files({"a.txt": "x"}, str(tmp_path / "file"))
    assert (
        str(caught.value) == f"-o {tmp_path / 'file'} is a file: give a directory, or - for stdout"
    )
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(OptionError) as caught:
        write_files({"a.txt": "x"}, str(tmp_path / "dangling"))
    assert str(caught.value) == (
        f"-o {tmp_path / 'dangling'} is a symlink to nowhere ({tmp_path / 'nowhere'}): give "
        "a directory, or - for stdout"
    )
    assert not (tmp_path / "nowhere").exists()
    os.symlink(tmp_path / "file", tmp_path / "to-file")
    with pytest.raises(OptionError, match=r"to-file is a file: give a directory"):
        write_files({"a.txt": "x"}, str(tmp_path / "to-file"))
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "to-dir")  # a symlink to a directory is one
    write_files({"a.txt": "x"}, str(tmp_path / "to-dir"))
    assert (tmp_path / "real" / "a.txt").read_text() == "x"


def test_stdout_names_each_file_so_the_output_splits_back(capsys):
    files = {"a.service": "[Unit]\nA=1\n", "b.service": "[Unit]\nB=2"}
    assert write_files(files, "-") == []
    out = capsys.readouterr().out
    assert out == "# file: a.service\n[Unit]\nA=1\n# file: b.service\n[Unit]\nB=2\n"
    split = {}
    for chunk in out.split("# file: ")[1:]:
        name, _, text = chunk.partition("\n")
        split[name] = text
    assert split == {"a.service": "[Unit]\nA=1\n", "b.service": "[Unit]\nB=2\n"}


def test_stdout_yaml_keeps_one_stream_with_the_names(capsys):
    import yaml

    write_files({"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"}, "-", separator="---\n")
    out = capsys.readouterr().out
    assert out == "# file: a.yaml\na: 1\n# file: b.yaml\n---\nb: 2\n"
    assert list(yaml.safe_load_all(out)) == [{"a": 1}, {"b": 2}]


def test_the_cli_says_replaced_for_a_file_it_replaced(tmp_path):
    path = write(tmp_path, {"apps": [{"name": "web", "script": "web.py"}]})
    out = tmp_path / "units"
    first = run_cli("export", "systemd", str(path), "-o", str(out))
    assert f"wrote {out / 'web.service'}" in first.stderr.splitlines()
    again = run_cli("export", "systemd", str(path), "-o", str(out))
    lines = again.stderr.splitlines()
    assert f"replaced {out / 'web.service'}" in lines
    assert f"replaced {out / 'corral-apps.target'}" in lines
    assert not any(line.startswith("wrote ") for line in lines)
    printed = run_cli("export", "systemd", str(path))
    assert printed.stdout.startswith("# file: web.service\n# Written by `corral export systemd`")


def test_the_cli_lists_the_installed_targets():
    done = run_cli("export", "--help")
    assert "kubernetes" in done.stdout and "systemd" in done.stdout


# -- listen: what corral start refuses, read_portable refuses ------------------------

LISTENS = [
    "localhost:99999",
    "localhost:8000",
    "myhost.example:8003",
    ":8080",
    "8080",
    "0",
    "[::1]:80",
    "127.0.0.1:65535",
    "127.0.0.1:65536",
    "host:",
    "host:port",
    "nope",
    "unix:",
    "unix:/run/a.sock",
    " :80 ",
    "1:2:3",
    "-1",
]


@pytest.mark.parametrize("listen", LISTENS)
def test_read_portable_takes_the_listen_corral_takes(tmp_path, listen):
    """The same verdict and message as corral start's (one parser: corral.options.address)."""
    path = write(tmp_path, {"apps": [{"name": "web", "script": "web.py", "listen": listen}]})
    try:
        parse_address(listen)
    except OptionError as exc:
        with pytest.raises(ConfigError) as caught:
            read_portable(path)
        assert str(caught.value) == f"{path}: apps[0] (web): {exc}"
    else:
        (app,) = read_portable(path).apps
        assert app.options["listen"] == listen

"""supervisord.conf files (tests/corpus/supervisor, written after supervisor's
docs/configuration.rst) printed by `corral import` and started by `corral start`."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import psutil
import pytest

from corral.client import CorralWarning
from corral.options.config import is_config_file, load_config, read_apps
from corral.options.imports import convert
from tests.conftest import assert_start_refused, wait_for
from tests.conftest import run_cli as corral

CORPUS = Path(__file__).parents[1] / "corpus" / "supervisor"
FILES = sorted(CORPUS.glob("*.conf"))
SUFFIX = {"yaml": "yaml", "json": "json", "toml": "toml", "js": "config.js"}


def _printed(path: Path, fmt: str, tmp: Path) -> list[dict]:
    """The apps of `corral import PATH --format FMT`, read back as corral reads a file."""
    done = corral("import", str(path), "--format", fmt)
    out = tmp / f"eco_{path.stem}.{SUFFIX[fmt]}"
    out.write_text(done.stdout)
    return read_apps(out)


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml", "js"])
@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_import_prints_an_ecosystem_file_that_reads_back(path: Path, fmt: str, tmp_path: Path):
    if fmt == "js" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorralWarning)
        expected, _ = convert(path)
    assert _printed(path, fmt, tmp_path) == expected


def test_web_worker_options_are_supervisords():
    with warnings.catch_warnings(record=True):
        web, worker = read_apps(CORPUS / "web_worker.conf")
    assert web == {
        "name": "web",
        "script": "python3",
        "args": ["-c", web["args"][1]],
        "cwd": f"{CORPUS}/site",
        "env": {"APP_ROLE": "web", "PYTHONUNBUFFERED": "1"},
        "min_uptime": 2000,
        "max_restarts": 5,
        "kill_signal": "SIGINT",
        "kill_timeout": 5000,
        "treekill": False,
        "out_file": f"{CORPUS}/logs/web.out.log",
        "error_file": f"{CORPUS}/logs/web.err.log",
    }
    assert web["args"][1].startswith("import os, time; print('web in'")
    assert worker["script"] == "/bin/sh"
    assert worker["stop_exit_codes"] == [0, 2]  # autorestart=unexpected, exitcodes=0,2
    assert worker["kill_signal"] == "SIGTERM" and worker["kill_timeout"] == 10000  # defaults
    assert worker["out_file"] == worker["error_file"] == f"{CORPUS}/logs/worker.log"


def test_numprocs_become_instances_or_one_app_per_process():
    with warnings.catch_warnings(record=True):
        pool, shard1, shard2 = read_apps(CORPUS / "numprocs.conf")
    assert pool["name"] == "pool" and pool["instances"] == 3
    assert pool["namespace"] == "backend" and pool.get("autorestart", True) is True
    assert "stop_exit_codes" not in pool  # autorestart=true: every exit restarts
    assert [shard1["name"], shard2["name"]] == ["shard_1", "shard_2"]  # numprocs_start=1
    assert [shard1["args"][-1], shard2["args"][-1]] == ["1", "2"]
    assert shard1["namespace"] == shard2["namespace"] == "backend"
    assert shard1["out_file"] == "/dev/null"  # stdout_logfile=NONE


def test_environment_quoting_and_env_expansions(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with warnings.catch_warnings(record=True):
        envy, oneshot = read_apps(CORPUS / "env_quoting.conf")
    assert envy["cwd"] == str(tmp_path)
    assert envy["env"] == {
        "SHARED": "from supervisord",  # [supervisord] environment
        "GREETING": "hello, world",
        "LIST": "a,b;c",
        "HOME_COPY": str(tmp_path),
        "PLAIN": "bare.value-1",
        "NAME": "envy",
    }
    assert envy["autostart"] is False and envy["treekill"] is True
    assert envy["min_uptime"] == 100  # startsecs=0: corral's least
    assert oneshot["args"] == ["-c", "echo done 100%"] and oneshot["autorestart"] is False


def test_unmapped_keys_and_sections_are_one_warning_line():
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        load_config(CORPUS / "web_worker.conf")
    assert [w.category for w in said] == [CorralWarning]
    text = str(said[0].message)
    assert "\n" not in text
    assert text.startswith(f"{CORPUS / 'web_worker.conf'}: not carried over: ")
    for part in (
        "program:web stdout_logfile_maxbytes (use the logrotate plugin)",
        "program:worker umask",
        "[unix_http_server] (supervisord's own server)",
        "[supervisorctl] (supervisord's own server)",
        "supervisord logfile pidfile nodaemon",
    ):
        assert part in text
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        load_config(CORPUS / "env_quoting.conf")
    assert [str(w.message).split(": not carried over: ")[1] for w in said] == [
        "[eventlistener:memmon] (no equivalent)"
    ]


def test_import_cli_warns_on_stderr_and_comments_the_file():
    done = corral("import", str(CORPUS / "numprocs.conf"))
    assert done.stderr == (
        f"warning: {CORPUS / 'numprocs.conf'}: not carried over: group:backend priority\n"
    )
    assert done.stdout.startswith("# 3 apps imported by `corral import` from supervisord's ")
    assert "# not carried over: group:backend priority\n" in done.stdout
    json_out = corral("import", str(CORPUS / "numprocs.conf"), "--format", "json").stdout
    assert [app["name"] for app in json.loads(json_out)["apps"]] == ["pool", "shard_1", "shard_2"]


def test_a_supervisor_file_is_recognised_by_its_sections(tmp_path: Path):
    plain = tmp_path / "programs"  # no suffix at all
    plain.write_text("; mine\n[program:x]\ncommand=/bin/true\n")
    nginx = tmp_path / "site.conf"
    nginx.write_text("server {\n  listen 80;\n}\n")
    script = tmp_path / "app.py"
    script.write_text("[program:x]\ncommand=/bin/true\n")  # ini-like, but a script
    assert is_config_file(plain) and is_config_file(CORPUS / "web_worker.conf")
    assert not is_config_file(nginx) and not is_config_file(script)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[program:w]\ncommand=/bin/true\nnumprocs=2\n",
            "[program:w] process_name: with numprocs 2 it must hold %(process_num)s",
        ),
        (
            "[program:w]\ncommand=/bin/true\nautorestart=sometimes\n",
            "[program:w] autorestart: 'sometimes' is not true, false or unexpected",
        ),
        ("[program:w]\ncommand=/bin/true %(nope)s\n", "[program:w] command: %(nope)s cannot"),
        ("[program:w]\ncommand=/bin/true\nstopsignal=NOPE\n", "[program:w] stopsignal: 'NOPE'"),
        ("[program:w]\nenvironment=A=1,B\ncommand=/bin/true\n", "[program:w] environment: "),
        ("[program:w]\ndirectory=/tmp\n", "[program:w]: no command"),
    ],
)
def test_a_bad_file_is_one_error_and_starts_nothing(body, message, pm, tmp_path: Path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[program:ok]\ncommand=/bin/sleep 60\n" + body)
    assert_start_refused(conf, message, pm)


def _app(pm, name):
    return wait_for(lambda: next((i for i in pm.list() if i.name == name), None), what=name)


def _online(pm, name, count=1):
    return wait_for(
        lambda: (
            [i for i in pm.list() if i.name == name and i.status == "online" and i.pid]
            if sum(i.name == name and i.status == "online" for i in pm.list()) == count
            else None
        ),
        what=f"{count} online {name}",
    )


def _text(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


def test_start_runs_a_supervisord_conf(pm, tmp_path: Path):
    conf = tmp_path / "supervisord.conf"
    shutil.copy(CORPUS / "web_worker.conf", conf)
    (tmp_path / "site").mkdir()
    (tmp_path / "logs").mkdir()
    done = corral("start", "supervisord.conf", cwd=tmp_path)
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "program:worker umask" in warned[0], done.stderr
    (web,) = _online(pm, "web")
    (worker,) = _online(pm, "worker")
    assert psutil.Process(web.pid).cwd() == str(tmp_path / "site")
    assert psutil.Process(worker.pid).cwd() == str(tmp_path)
    wait_for(lambda: f"web in {tmp_path}/site web" in _text(tmp_path / "logs/web.out.log"))
    wait_for(lambda: f"worker worker in {tmp_path}" in _text(tmp_path / "logs/worker.log"))
    assert web.options["kill_signal"] == "SIGINT" and web.options["kill_timeout"] == 5000


def test_start_runs_numprocs_as_instances_and_apps(pm, tmp_path: Path):
    done = corral("start", str(CORPUS / "numprocs.conf"), cwd=tmp_path)
    assert "group:backend priority" in done.stderr
    pool = _online(pm, "pool", 3)
    logs = {info.out_log for info in pool}
    wait_for(
        lambda: (
            sorted("".join(_text(log) for log in logs).splitlines())
            == ["pool 0", "pool 1", "pool 2"]
        ),
        what="each pool instance's line",
    )
    for name, number in (("shard_1", "1"), ("shard_2", "2")):
        (shard,) = _online(pm, name)
        assert shard.namespace == "backend"
        assert psutil.Process(shard.pid).cmdline()[-1] == number


def test_start_runs_env_quoting_and_leaves_autostart_false_stopped(pm, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    corral("start", str(CORPUS / "env_quoting.conf"), "--no-wait", cwd=tmp_path)
    oneshot = wait_for(
        lambda: next((i for i in pm.list() if i.name == "oneshot" and i.status == "stopped"), None)
    )
    wait_for(lambda: "done 100%" in _text(oneshot.out_log))
    envy = _app(pm, "envy")
    assert envy.status == "stopped" and envy.pid in (None, 0)  # autostart=false
    corral("restart", "envy")
    (envy,) = _online(pm, "envy")
    assert psutil.Process(envy.pid).cwd() == str(tmp_path)
    expected = [
        "GREETING = hello, world",
        "LIST = a,b;c",
        f"HOME_COPY = {tmp_path}",
        "PLAIN = bare.value-1",
        "SHARED = from supervisord",
        "NAME = envy",
    ]
    wait_for(lambda: _text(envy.out_log).splitlines() == expected, what="envy's variables")


def test_include_files_are_read_relative_to_the_file(tmp_path: Path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "api.conf").write_text(
        "[program:api]\ncommand=/bin/sleep 60\ndirectory=%(here)s\npriority=1\n"
    )
    main = tmp_path / "supervisord.conf"
    main.write_text("[include]\nfiles = conf.d/*.conf\n\n[program:web]\ncommand=/bin/sleep 61\n")
    api, web = read_apps(main)  # priority 1 before the default 999
    assert (api["name"], api["cwd"], web["name"]) == ("api", str(tmp_path / "conf.d"), "web")


@pytest.fixture
def user():
    import os
    import pwd
    import subprocess

    name = f"corralimp{os.getpid() % 100000}"
    subprocess.run(["useradd", "-m", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


def test_start_runs_a_program_as_its_user(pm, user, tmp_path: Path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"[program:as_user]\nuser={user.pw_name}\ndirectory=/tmp\n"
        "command=/bin/sh -c 'echo \"$(id -un) $HOME\"; exec sleep 600'\n"
    )
    corral("start", str(conf))
    (info,) = _online(pm, "as_user")
    assert psutil.Process(info.pid).uids().real == user.pw_uid
    wait_for(lambda: _text(info.out_log) == f"{user.pw_name} {user.pw_dir}\n", what="id and HOME")

"""The client API against a real daemon and real children."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psutil
import pytest

import corral
from corral.errors import ConfigError, NotFoundError, OptionError, ScriptError, StateError
from tests.conftest import out_lines, python_app, wait_for


def test_start_list_describe(pm, app_path):
    apps = pm.start(
        app_path("sleeper.py"), {"name": "api", "args": ["--port", "8000"], "maxRestarts": 5}
    )
    assert [a.name for a in apps] == ["api"]
    info = apps[0]
    assert info.status == "online" and info.pid and psutil.pid_exists(info.pid)
    assert info.options["max_restarts"] == 5
    lines = wait_for(lambda: out_lines(pm.describe("api")[0]))
    assert json.loads(lines[0])["argv"] == ["--port", "8000"]
    assert [p.name for p in pm.list()] == ["api"]
    assert pm.describe(0)[0].pid == info.pid


def test_to_dict_has_the_pm2_jlist_shape(pm, app_path, corral_home):
    pm.start(app_path("sleeper.py"), {"name": "api", "env": {"GREETING": "hi"}})
    entry = pm.describe("api")[0].to_dict()
    assert set(entry) == {"pid", "name", "pm_id", "monit", "pm2_env"}
    assert set(entry["monit"]) == {"memory", "cpu"}
    env = entry["pm2_env"]
    for key in (
        "status",
        "pm_cwd",
        "pm_out_log_path",
        "pm_err_log_path",
        "pm_pid_path",
        "exec_interpreter",
        "pm_uptime",
        "unstable_restarts",
        "restart_time",
        "instances",
        "pm_exec_path",
        "exec_mode",
        "created_at",
        "prev_restart_delay",
    ):
        assert key in env, key
    assert env["exec_mode"] == "fork_mode"
    assert env["exec_interpreter"].startswith("python")
    assert env["pm_out_log_path"] == str(corral_home / "logs" / "api-out.log")
    assert env["pm_pid_path"] == str(corral_home / "pids" / "api-0.pid")
    assert env["env"]["GREETING"] == "hi" and env["GREETING"] == "hi"
    # the interpreter boots after the spawn: its memory is sampled again until it has
    grown = wait_for(
        lambda: pm.describe("api")[0].to_dict()["monit"]["memory"] > 1_000_000,
        what="the app's memory past 1 MB",
    )
    assert grown


def test_child_environment_carries_pm2_fields(pm, app_path):
    info = pm.start(app_path("sleeper.py"), {"name": "envy", "env": {"GREETING": "hello"}})[0]
    lines = wait_for(lambda: len(out_lines(info)) >= 5 and out_lines(info))
    assert "pm_id=0" in lines and "name=envy" in lines and "GREETING=hello" in lines
    assert "NODE_APP_INSTANCE=0" in lines


def test_restart_keeps_the_pm_id_and_counts(pm, app_path):
    first = pm.start(app_path("sleeper.py"))[0]
    again = pm.restart("sleeper")[0]
    assert again.pm_id == first.pm_id and again.pid != first.pid
    assert again.restart_time == 1
    assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == "zombie"


def test_stop_and_delete(pm, app_path):
    info = pm.start(app_path("sleeper.py"))[0]
    stopped = pm.stop("all")[0]
    assert stopped.status == "stopped" and stopped.pid is None
    assert not Path(info.pid_path).exists()
    deleted = pm.delete(0)
    assert [d.name for d in deleted] == ["sleeper"]
    assert pm.list() == []


def test_start_by_name_restarts_a_stopped_app(pm, app_path):
    pm.start(app_path("sleeper.py"), {"name": "web"})
    pm.stop("web")
    again = pm.start("web")[0]
    assert again.status == "online"


def test_same_script_twice_is_refused_unless_forced(pm, app_path):
    pm.start(app_path("sleeper.py"))
    with pytest.raises(StateError, match="already running"):
        pm.start(app_path("sleeper.py"))
    pm.start(app_path("sleeper.py"), {"force": True})
    assert [p.pm_id for p in pm.list()] == [0, 1]


def test_instances_in_fork_mode(pm, app_path, corral_home):
    apps = pm.start(app_path("sleeper.py"), {"name": "w", "instances": 3})
    assert [a.pm_id for a in apps] == [0, 1, 2]
    assert len({a.pid for a in apps}) == 3
    assert [a.to_dict()["pm2_env"]["NODE_APP_INSTANCE"] for a in apps] == [0, 1, 2]
    # several instances log to one file each, as PM2
    assert apps[2].out_log == str(corral_home / "logs" / "w-out-2.log")


def test_send_signal_to_process_name(pm, tmp_path):
    script = python_app(
        tmp_path,
        "usr1.py",
        "import signal, time\n"
        "signal.signal(signal.SIGUSR1, lambda *a: print('got usr1', flush=True))\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n",
    )
    info = pm.start(script, {"name": "sig"})[0]
    wait_for(lambda: "ready" in out_lines(info))
    pm.send_signal_to_process_name("SIGUSR1", "sig")
    wait_for(lambda: "got usr1" in out_lines(info))
    with pytest.raises(OptionError, match="unknown signal 'SIGNOPE'"):
        pm.send_signal_to_process_name("SIGNOPE", "sig")
    assert pm.describe("sig")[0].status == "online"


def test_dump_and_resurrect(pm, app_path, corral_home):
    with pytest.raises(StateError, match="empty"):
        pm.dump()
    pm.start(app_path("sleeper.py"), {"name": "a", "env": {"GREETING": "saved"}})
    result = pm.dump()
    assert result == {"path": str(corral_home / "dump.corral"), "count": 1}
    saved = json.loads((corral_home / "dump.corral").read_text())
    assert saved["version"] == 1 and saved["apps"][0]["name"] == "a"
    pm.dump()
    assert (corral_home / "dump.corral.bak").exists()
    pm.delete("all")
    back = pm.resurrect()
    assert [b.name for b in back] == ["a"] and back[0].status == "online"
    assert back[0].env["GREETING"] == "saved"
    assert pm.resurrect() == []  # names already running are skipped


def test_resurrect_falls_back_to_the_backup(pm, app_path, corral_home):
    pm.start(app_path("sleeper.py"), {"name": "a"})
    pm.dump()
    pm.dump()
    (corral_home / "dump.corral").write_text("{broken")
    pm.delete("all")
    with pytest.warns(corral.CorralWarning, match="resurrected from .*dump.corral.bak"):
        assert [b.name for b in pm.resurrect()] == ["a"]


def test_dump_file_env_override(pm, app_path, corral_home, monkeypatch, tmp_path):
    # the daemon reads CORRAL_DUMP_FILE from its own environment
    pm.kill_daemon()
    monkeypatch.setenv("CORRAL_DUMP_FILE", str(tmp_path / "mydump.json"))
    client = corral.connect()
    client.start(app_path("sleeper.py"))
    assert client.dump()["path"] == str(tmp_path / "mydump.json")
    client.kill_daemon()


def test_flush_truncates(pm, app_path):
    info = pm.start(app_path("sleeper.py"))[0]
    wait_for(lambda: out_lines(info))
    flushed = pm.flush("sleeper")
    assert info.out_log in flushed
    assert Path(info.out_log).read_text() == ""


def test_unknown_target(pm):
    with pytest.raises(NotFoundError, match="no process matches 'ghost'"):
        pm.stop("ghost")


def test_bad_options_change_nothing(pm, app_path):
    with pytest.raises(OptionError, match="did you mean 'max_restarts'"):
        pm.start(app_path("sleeper.py"), {"max_restart": 3})
    with pytest.raises(OptionError, match="kill_timeout"):
        pm.start(app_path("sleeper.py"), {"kill_timeout": "soon"})
    with pytest.raises(ScriptError, match="not found"):
        pm.start("/nonexistent/app.py")
    # a batch with one bad app starts none of them
    with pytest.raises(OptionError):
        pm.start(
            [
                {"script": app_path("sleeper.py"), "name": "ok"},
                {"script": app_path("sleeper.py"), "bad_key": 1},
            ]
        )
    assert pm.list() == []


def test_not_executable_binary(pm, tmp_path):
    binary = tmp_path / "tool"
    binary.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(ScriptError, match="chmod \\+x"):
        pm.start(str(binary))


def test_bad_config_file(pm, tmp_path):
    config = tmp_path / "ecosystem.json"
    config.write_text('{"apps": [\n  {"script": "a.py"} {"script": "b.py"}\n]}')  # no comma
    with pytest.raises(ConfigError, match=r"ecosystem\.json"):
        pm.start(str(config))
    assert pm.list() == []


def test_config_files(pm, app_path, tmp_path):
    sleeper = app_path("sleeper.py")
    (tmp_path / "ecosystem.json").write_text(
        json.dumps({"apps": [{"name": "j", "script": sleeper}]})
    )
    (tmp_path / "apps.yaml").write_text(f"apps:\n  - name: y\n    script: {sleeper}\n")
    (tmp_path / "apps.toml").write_text(f'[[apps]]\nname = "t"\nscript = "{sleeper}"\n')
    (tmp_path / "ecosystem.config.js").write_text(
        f"module.exports = {{ apps: [{{ name: 'js', script: {json.dumps(sleeper)} }}] }}\n"
    )
    for name in ("ecosystem.json", "apps.yaml", "apps.toml", "ecosystem.config.js"):
        pm.start(str(tmp_path / name))
    assert sorted(p.name for p in pm.list()) == ["j", "js", "t", "y"]
    # starting a config again restarts its apps (as `pm2 start ecosystem.json`)
    before = pm.describe("j")[0].pid
    again = pm.start(str(tmp_path / "ecosystem.json"))
    assert again[0].pid != before and again[0].restart_time == 1


def test_node_script(pm, app_path):
    info = pm.start(app_path("server.js"))[0]
    assert info.to_dict()["pm2_env"]["exec_interpreter"] == "node"
    line = wait_for(lambda: out_lines(info))[0]
    assert json.loads(line)["pm_id"] == "0"
    wait_for(lambda: "node stderr line" in Path(info.err_log).read_text())


def test_interpreter_none_and_shell_scripts(pm, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("echo from-bash $0\nexec sleep 3600\n")
    binary = tmp_path / "tool"
    binary.write_text("#!/bin/sh\necho from-binary\nexec sleep 3600\n")
    binary.chmod(0o755)
    a = pm.start(str(script))[0]
    b = pm.start(str(binary))[0]
    assert a.to_dict()["pm2_env"]["exec_interpreter"] == "bash"
    assert b.to_dict()["pm2_env"]["exec_interpreter"] == "none"
    wait_for(lambda: out_lines(a) and out_lines(a)[0].startswith("from-bash"))
    wait_for(lambda: out_lines(b) == ["from-binary"])


def test_args_as_a_string_and_cwd(pm, app_path, tmp_path):
    info = pm.start(app_path("sleeper.py"), {"args": "--a 'b c'", "cwd": str(tmp_path)})[0]
    first = json.loads(wait_for(lambda: out_lines(info))[0])
    assert first["argv"] == ["--a", "b c"] and first["cwd"] == str(tmp_path)


def test_autostart_false_registers_stopped(pm, app_path):
    info = pm.start(app_path("sleeper.py"), {"autostart": False})[0]
    assert info.status == "stopped" and info.pid is None


def test_module_level_functions_use_the_last_client(corral_home, app_path):
    client = corral.connect()
    try:
        corral.start(app_path("sleeper.py"), {"name": "single"})
        assert [p.name for p in corral.list()] == ["single"]
        corral.stop("single")
        assert corral.describe("single")[0].status == "stopped"
    finally:
        corral.kill_daemon()
        client.disconnect()


def test_in_process_daemon_takes_its_apps_with_it(corral_home, app_path):
    with corral.connect(no_daemon=True) as client:
        info = client.start(app_path("sleeper.py"))[0]
        assert client.ping()["pid"] == os.getpid()
        pid = info.pid
        assert psutil.pid_exists(pid)
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")


def test_async_client(corral_home, app_path):
    import asyncio

    async def scenario():
        client = await corral.AsyncClient.connect()
        try:
            started = await client.start(app_path("sleeper.py"), {"name": "aio"})
            listed, described = await asyncio.gather(client.list(), client.describe("aio"))
            assert [p.name for p in listed] == ["aio"] == [p.name for p in described]
            await client.stop("aio")
            return started[0]
        finally:
            await client.kill_daemon()

    info = asyncio.run(scenario())
    assert info.name == "aio"


def test_ps_and_pid_file(pm, app_path):
    info = pm.start(app_path("sleeper.py"))[0]
    assert Path(info.pid_path).read_text() == str(info.pid)


def test_python_runs_under_the_daemons_interpreter(pm, app_path):
    info = pm.start(app_path("sleeper.py"))[0]
    assert psutil.Process(info.pid).exe() == os.path.realpath(sys.executable) or psutil.Process(
        info.pid
    ).exe().startswith(sys.prefix)


def test_kill_signal_picks_the_stop_signal(pm, tmp_path):
    script = python_app(
        tmp_path,
        "term.py",
        "import signal, sys, time\n"
        "def bye(sig, frame):\n"
        "    print('got', signal.Signals(sig).name, flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n",
    )
    info = pm.start(script, {"kill_signal": "term", "kill_timeout": 5000})[0]
    assert info.options["kill_signal"] == "SIGTERM"
    wait_for(lambda: "ready" in out_lines(info))
    stopped = pm.stop("term")[0]
    assert stopped.exit_code == 0 and "got SIGTERM" in out_lines(info)
    with pytest.raises(OptionError, match="kill_signal 'SIGNOPE' is not a signal"):
        pm.start(script, {"name": "other", "kill_signal": "SIGNOPE"})


def test_progress_is_a_sync_clients_only(corral_home):
    """An AsyncClient refuses ``progress=`` before it sends anything (no daemon needed)."""
    import asyncio

    async def scenario():
        client = corral.AsyncClient(corral_home, None)
        try:
            for call in (client.restart, client.reload, client.graceful_reload):
                with pytest.raises(corral.CorralError, match="progress= is a Client's"):
                    call("app", progress=print)
            with pytest.raises(corral.CorralError, match="progress= is a Client's"):
                client.scale("app", 2, progress=print)
        finally:
            await client.disconnect()

    asyncio.run(scenario())

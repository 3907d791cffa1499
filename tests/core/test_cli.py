"""The ``corral`` CLI: parsing and rendering against a stand-in client, then the
real commands against real daemons on a temporary CORRAL_HOME."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from corral.cli import logtail
from corral.cli import monit as cli_monit
from corral.cli import render as cli_render
from corral.cli import table as cli_table
from corral.cli.main import (
    build_cli,
    parse_env,
    parse_opts,
    parse_target,
    parse_value,
    stop_exit_codes,
)
from corral.errors import NotFoundError, OptionError, StateError
from corral.rpc.wire import pid_alive
from tests.conftest import run_cli as corral
from tests.conftest import wait_for

# -- a stand-in for corral.Client, for parsing and rendering only ------------


@dataclass
class FakeInfo:
    name: str = "web"
    pm_id: int = 0
    pid: int | None = 4242
    status: str = "online"
    namespace: str = "default"
    exec_mode: str = "fork_mode"
    restart_time: int = 2
    unstable_restarts: int = 0
    pm_uptime: int = 0
    created_at: int | None = None
    memory: int = 12_897_484
    cpu: float = 1.25
    out_log: str | None = None
    err_log: str | None = None
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid or 0,
            "name": self.name,
            "pm_id": self.pm_id,
            "monit": {"memory": self.memory, "cpu": self.cpu},
            "pm2_env": {
                "status": self.status,
                "pm_id": self.pm_id,
                "exec_mode": self.exec_mode,
                "pm_exec_path": "/srv/web.py",
                "pm_cwd": "/srv",
                "exec_interpreter": "python3",
                "pm_out_log_path": self.out_log,
                "pm_err_log_path": self.err_log,
            },
        }


class FakeClient:
    """Records each call; answers with ``infos``; raises ``raises`` when set."""

    def __init__(self, infos: list[FakeInfo] | None = None, home: Path | None = None) -> None:
        self.infos = infos if infos is not None else [FakeInfo()]
        self.home = home or Path("/nonexistent")
        self.calls: list[tuple] = []
        self.raises: BaseException | None = None

    def _record(self, *call: Any) -> list[FakeInfo]:
        self.calls.append(call)
        if self.raises is not None:
            raise self.raises
        return self.infos

    def start(self, target, options=None, *, env_name=None):
        return self._record("start", target, options, env_name)

    def wait_started(self, infos, timeout=None):
        from corral.client.verdict import StartVerdict

        return StartVerdict(list(infos))  # all stayed up: the real one is tested live

    def stop(self, target):
        return self._record("stop", target)

    def restart(self, target, *, update_env=False):
        return self._record("restart", target, update_env)

    def reload(self, target, *, update_env=False):
        return self._record("reload", target, update_env)

    def delete(self, target):
        return self._record("delete", target)

    def list(self):
        return self._record("list")

    def jlist_json(self):
        return json.dumps([info.to_dict() for info in self._record("list")]).encode()

    def describe(self, target):
        return self._record("describe", target)

    def dump(self, *, force=False):
        self._record("dump", force)
        return {"path": "/tmp/dump.corral", "count": len(self.infos)}

    def flush(self, target=None):
        self._record("flush", target)
        return ["/tmp/a-out.log"]

    def send_signal_to_process_name(self, sig, target):
        return self._record("signal_name", sig, target)

    def send_signal_to_process_id(self, pm_id, sig):
        return self._record("signal_id", pm_id, sig)

    def plugins(self):
        self._record("plugins")
        return [{"name": "memory", "dist": "corral", "version": "0.1.0", "errors": ["boom"]}]


def invoke(client: FakeClient, *args: str) -> Any:
    return CliRunner().invoke(build_cli(), list(args), obj=client)


def render(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


# -- parsing -----------------------------------------------------------------


def test_parse_helpers():
    assert parse_target("3") == 3
    assert parse_target("web") == "web"
    assert parse_value("true") is True
    assert parse_value("False") is False
    assert parse_value('["a", "b"]') == ["a", "b"]
    assert parse_value("200M") == "200M"
    assert parse_opts(["max_memory_restart=200M", "watch=true", "k=a=b"]) == {
        "max_memory_restart": "200M",
        "watch": True,
        "k": "a=b",
    }
    assert parse_env(["A=1", "production", "B="]) == ({"A": "1", "B": ""}, "production")
    assert stop_exit_codes("0, 3 4") == [0, 3, 4]


def test_parse_errors_name_the_flag():
    with pytest.raises(OptionError, match="--opt needs KEY=VALUE"):
        parse_opts(["oops"])
    with pytest.raises(OptionError, match="--env names one environment"):
        parse_env(["production", "staging"])


def test_start_flags_and_script_args():
    client = FakeClient()
    result = invoke(
        client, "start", "app.py", "-n", "api", "-i", "2", "--max-restarts", "3",
        "--min-uptime", "2s", "--no-autorestart", "--time", "--log", "--env", "A=1",
        "--env", "production", "--stop-exit-codes", "0,3", "--interpreter-args", "-u",
        "--opt", "maxMemoryRestart=1G", "--", "--port", "8000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    name, target, options, env_name = client.calls[0]
    assert (name, target, env_name) == ("start", "app.py", "production")
    assert options == {
        "name": "api",
        "instances": "2",
        "max_restarts": "3",
        "min_uptime": "2s",
        "autorestart": False,
        "time": True,
        "log_file": True,
        "env": {"A": "1"},
        "stop_exit_codes": [0, 3],
        "node_args": "-u",
        "maxMemoryRestart": "1G",
        "args": ["--port", "8000"],
    }
    assert "web" in result.output  # the table of client.list() follows


def test_start_without_flags_sends_no_options_and_ids_are_ints():
    client = FakeClient()
    assert invoke(client, "start", "7").exit_code == 0
    assert client.calls[0] == ("start", 7, None, None)


def test_start_output_and_error_flags():
    client = FakeClient()
    invoke(client, "start", "a.py", "-o", "/tmp/o.log", "-e", "/tmp/e.log", "--log", "/tmp/c.log")
    assert client.calls[0][2] == {
        "out_file": "/tmp/o.log",
        "error_file": "/tmp/e.log",
        "log_file": "/tmp/c.log",
    }


def test_plugin_options_become_flags(monkeypatch):
    from corral import hooks
    from corral.hookspecs import hookimpl
    from corral.options.schema import Option

    class Plugin:
        @hookimpl
        def corral_app_options(self):
            return [
                Option("max_memory_restart", "bytes", help="restart above this memory"),
                Option("watch_it", "bool", False, help="watch the files"),
            ]

    real = hooks.load_plugins
    monkeypatch.setattr(hooks, "load_plugins", lambda plugins=None: real([Plugin()]))
    help_text = invoke(FakeClient(), "start", "--help").output
    assert "--max-memory-restart" in help_text and "--watch-it" in help_text
    client = FakeClient()
    result = invoke(client, "start", "a.py", "--max-memory-restart", "200M", "--watch-it")
    assert result.exit_code == 0, result.stderr
    assert client.calls[0][2] == {"max_memory_restart": "200M", "watch_it": True}


def test_actions_take_several_targets_and_update_env():
    client = FakeClient()
    assert invoke(client, "restart", "web", "3", "--update-env").exit_code == 0
    assert client.calls[:2] == [("restart", "web", True), ("restart", 3, True)]
    client = FakeClient()
    assert invoke(client, "del", "web").exit_code == 0
    assert client.calls[0] == ("delete", "web")
    assert invoke(client, "stop").exit_code == 2  # a target is required


@pytest.mark.parametrize("alias", ["ls", "list", "status"])
def test_ls_aliases(alias):
    result = invoke(FakeClient(), alias)
    assert result.exit_code == 0
    assert "web" in result.output and "online" in result.output


def test_ls_empty_prints_a_hint():
    result = invoke(FakeClient(infos=[]), "ls")
    assert result.exit_code == 0
    assert "corral start" in result.output


def test_corral_error_is_one_stderr_line_and_exit_1():
    client = FakeClient()
    client.raises = NotFoundError("no process named 'nope'")
    result = invoke(client, "stop", "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: no process named 'nope'\n"
    assert result.stdout == ""
    client.raises = StateError("refusing to dump an empty list")
    result = invoke(client, "save")
    assert (result.exit_code, result.stderr) == (1, "error: refusing to dump an empty list\n")


def test_ctrl_c_exits_130_quietly():
    client = FakeClient()
    client.raises = KeyboardInterrupt()
    result = invoke(client, "ls")
    assert result.exit_code == 130
    assert result.stderr == ""


def test_jlist_and_prettylist():
    client = FakeClient([FakeInfo(), FakeInfo(name="worker", pm_id=1)])
    result = invoke(client, "jlist")
    assert result.output.count("\n") == 1
    data = json.loads(result.output)
    assert [p["name"] for p in data] == ["web", "worker"]
    assert data[0]["monit"] == {"memory": 12_897_484, "cpu": 1.25}
    pretty = invoke(client, "prettylist").output
    assert json.loads(pretty) == data and "\n  " in pretty


def test_describe_dump_flush_signal_plugins():
    client = FakeClient([FakeInfo(out_log="/tmp/web-out.log")])
    out = invoke(client, "show", "web").output
    assert "web (id 0)" in out and "/tmp/web-out.log" in out and "/srv/web.py" in out
    assert "saved 1 apps to /tmp/dump.corral" in invoke(client, "dump", "--force").output
    assert client.calls[-1] == ("dump", True)
    assert "flushed /tmp/a-out.log" in invoke(client, "flush", "web").output
    invoke(client, "sendSignal", "SIGUSR2", "web")
    invoke(client, "send-signal", "12", "0")
    assert client.calls[-2:] == [("signal_name", "SIGUSR2", "web"), ("signal_id", 0, 12)]
    assert "memory" in invoke(client, "plugins").output
    assert invoke(client, "plugins", "--errors").output == "memory: boom\n"


def test_describe_nothing_is_not_found():
    result = invoke(FakeClient(infos=[]), "describe", "web")
    assert result.exit_code == 1 and result.stderr.startswith("error: no process matches")


def test_ls_does_not_load_plugins():
    group = build_cli()
    assert CliRunner().invoke(group, ["ls"], obj=FakeClient()).exit_code == 0
    assert group.plugins_loaded is False
    CliRunner().invoke(group, ["--help"], obj=FakeClient())
    assert group.plugins_loaded is True


def test_plugin_commands_are_added_through_corral_cli(monkeypatch):
    import click

    from corral import hooks
    from corral.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def corral_cli(self, group):
            @group.command()
            def hello():
                click.echo("hello from a plugin")

    real = hooks.load_plugins
    monkeypatch.setattr(hooks, "load_plugins", lambda plugins=None: real([Plugin()]))
    result = invoke(FakeClient(), "hello")
    assert (result.exit_code, result.output) == (0, "hello from a plugin\n")


def test_cli_import_is_lazy():
    code = (
        "import sys, corral.cli.main; "
        "print(sorted(m for m in ('click', 'rich', 'pluggy', 'corral.hooks',"
        " 'corral.options.schema')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- rendering ---------------------------------------------------------------


def test_human_values():
    assert [cli_render.human_duration(ms) for ms in (0, 5_000, 180_000, 7_200_000)] == [
        "0s",
        "5s",
        "3m",
        "2h",
    ]
    assert cli_render.human_duration(4 * 86_400_000) == "4D"
    assert cli_render.human_bytes(0) == "0b"
    assert cli_render.human_bytes(512) == "512b"
    assert cli_render.human_bytes(12_897_484) == "12.3mb"
    assert cli_render.human_bytes(3 * 1024**3) == "3.0gb"
    assert cli_render.human_cpu(1.25) == "1.2%" or cli_render.human_cpu(1.25) == "1.3%"
    assert cli_render.human_cpu(0) == "0%"


def test_process_table_columns_and_values():
    now = 1_000_000_000
    infos = [
        FakeInfo(pm_id=1, name="worker", status="stopped", pid=None, pm_uptime=now - 5000),
        FakeInfo(pm_id=0, pm_uptime=now - 180_000),
    ]
    text = render(cli_table.process_table(infos, now))
    header = next(line for line in text.splitlines() if "namespace" in line)
    for column in ("id", "name", "namespace", "mode", "pid", "uptime", "↺", "status", "cpu", "mem"):
        assert column in header
    web, worker = (line for line in text.splitlines() if "web" in line or "worker" in line)
    assert "fork" in web and "4242" in web and "3m" in web and "12.3mb" in web
    assert "stopped" in worker and " 0 " in worker  # no uptime when not online


def test_status_colours():
    assert cli_render.status_text("online").style == "green"
    assert cli_render.status_text("errored").style == "red"
    assert cli_render.status_text("waiting restart").style == "yellow"
    assert cli_render.status_text("stopped").style == "bright_black"


def test_monit_view_highlights_the_selection(tmp_path):
    out = tmp_path / "web-out.log"
    out.write_text("".join(f"line {i}\n" for i in range(40)))
    err = tmp_path / "web-err.log"
    err.write_text("oops\n")
    infos = [FakeInfo(out_log=str(out), err_log=str(err)), FakeInfo(name="worker", pm_id=1)]
    text = render(cli_monit.monit_view(infos, selected=0))
    assert "worker" in text and "web (id 0) logs" in text
    assert "line 39" in text and "oops" in text and "line 10\n" not in text
    assert len(cli_monit.monit_logs(infos[0])) == cli_monit.MONIT_LOG_LINES


def test_monit_renders_once_without_a_tty(tmp_path):
    out = tmp_path / "o.log"
    out.write_text("hello monit\n")
    result = invoke(FakeClient([FakeInfo(out_log=str(out))]), "monit")
    assert result.exit_code == 0
    assert "hello monit" in result.output and "web" in result.output


# -- log files ---------------------------------------------------------------


def test_tail_lines(tmp_path):
    path = tmp_path / "a.log"
    assert logtail.tail_lines(path, 5) == []
    path.write_bytes(b"".join(b"%d\n" % i for i in range(100_000)))
    assert logtail.tail_lines(path, 3) == ["99997", "99998", "99999"]
    path.write_bytes(b"one\ntwo")
    assert logtail.tail_lines(path, 5) == ["one", "two"]
    assert logtail.tail_lines(path, 0) == []


def test_followed_file_survives_truncation_and_rotation(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("old\n")
    followed = logtail.FollowedFile(str(path), "0|a", "out")
    followed.start_at_end()
    with path.open("a") as f:
        f.write("new\npart")
    assert followed.read_lines() == ["new"]
    with path.open("a") as f:
        f.write("ial\n")
    assert followed.read_lines() == ["partial"]
    path.write_text("")  # flush truncates in place
    with path.open("a") as f:
        f.write("after flush\n")
    assert followed.read_lines() == ["after flush"]
    with path.open("a") as f:
        f.write("last of old file\n")
    path.rename(tmp_path / "a.log.1")  # rotation by rename, then a new file
    path.write_text("first of new file\n")
    assert followed.read_lines() == ["last of old file", "first of new file"]
    followed.close()


def test_logs_prefixes_lines_and_filters_streams(tmp_path):
    out, err = tmp_path / "web-out.log", tmp_path / "web-error.log"
    out.write_text("".join(f"out {i}\n" for i in range(30)))
    err.write_text("bad thing\n")
    (tmp_path / "corral.log").write_text('{"event": "daemon started"}\n')
    client = FakeClient([FakeInfo(out_log=str(out), err_log=str(err))], home=tmp_path)

    text = invoke(client, "logs", "--nostream", "--lines", "2").output
    assert "0|web  | out 28\n0|web  | out 29\n" in text  # padded to "corral", as PM2 pads
    assert "0|web  | bad thing" in text and "corral | info daemon started" in text
    assert "out 27" not in text
    assert client.calls[-1] == ("list",)

    raw = invoke(client, "logs", "web", "--nostream", "--lines", "1", "--err", "--raw").output
    assert raw == "bad thing\n"
    assert client.calls[-1] == ("describe", "web")
    only_out = invoke(client, "logs", "--nostream", "--out", "--raw", "--lines", "1")
    assert only_out.output == "out 29\n"


# -- real daemons ------------------------------------------------------------

DEADLINE = 15.0


@pytest.fixture
def home(tmp_path, monkeypatch):
    pytest.importorskip("corral.client")
    root = tmp_path / "home"
    monkeypatch.setenv("CORRAL_HOME", str(root))
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    yield root
    subprocess.run([sys.executable, "-m", "corral", "kill"], capture_output=True, timeout=30)
    pid_file = root / "corral.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().split()[0])
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def jlist() -> list[dict]:
    return json.loads(corral("jlist").stdout)


def status_of(name: str) -> str | None:
    for proc in jlist():
        if proc["name"] == name:
            return proc["pm2_env"]["status"]
    return None


@pytest.fixture
def app(tmp_path) -> Path:
    """A Python app that prints its args and a counter, and stays up."""
    script = tmp_path / "ticker.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            print("args", sys.argv[1:], "greeting", os.environ.get("GREETING"), flush=True)
            print("to stderr", file=sys.stderr, flush=True)
            n = 0
            while True:
                n += 1
                print("tick", n, flush=True)
                time.sleep(0.2)
            """
        )
    )
    return script


def test_start_ls_jlist_describe(home, app):
    out = corral(
        "start", str(app), "--name", "tick", "--max-restarts", "3", "--env", "GREETING=hi",
        "--", "a", "b",
    )  # fmt: skip
    assert "tick" in out.stdout
    wait_for(lambda: status_of("tick") == "online", what="tick online")
    ls = corral("ls").stdout
    assert "tick" in ls and "online" in ls and "default" in ls
    (proc,) = jlist()
    assert proc["pm_id"] == 0 and proc["pid"] > 0
    assert {"memory", "cpu"} <= set(proc["monit"])
    env = proc["pm2_env"]
    assert env["exec_mode"] == "fork_mode" and env["max_restarts"] == 3
    assert env["args"] == ["a", "b"]
    described = corral("describe", "tick").stdout
    assert "tick (id 0)" in described and env["pm_out_log_path"] in described

    def logged() -> str:
        text = corral("logs", "tick", "--nostream", "--lines", "50").stdout
        return text if "args ['a', 'b'] greeting hi" in text else ""

    logs = wait_for(logged, what="the app's output in its log")
    assert "0|tick | tick 1" in logs and "0|tick | to stderr" in logs


def test_stop_restart_delete(home, app):
    corral("start", str(app), "-n", "tick")
    wait_for(lambda: status_of("tick") == "online", what="online")
    assert "stopped" in corral("stop", "tick").stdout
    assert status_of("tick") == "stopped"
    corral("restart", "0")
    wait_for(lambda: status_of("tick") == "online", what="online again")
    corral("delete", "tick")
    assert jlist() == []
    assert "corral start" in corral("ls").stdout


def test_logs_lines_and_flush(home, app):
    corral("start", str(app), "-n", "tick")
    past = ("logs", "tick", "--nostream", "--raw", "--lines", "99")
    wait_for(lambda: "tick 5" in corral(*past).stdout)
    raw = corral("logs", "tick", "--nostream", "--out", "--raw", "--lines", "3").stdout.splitlines()
    assert len(raw) == 3 and all(line.startswith("tick ") for line in raw)
    flushed = corral("flush", "tick").stdout
    out_log = jlist()[0]["pm2_env"]["pm_out_log_path"]
    assert f"flushed {out_log}" in flushed
    assert "tick 1\n" not in Path(out_log).read_text()


def test_dump_resurrect_and_kill(home, app):
    empty = corral("dump", check=False)
    assert empty.returncode == 1 and empty.stderr.startswith("error: ")
    assert len(empty.stderr.splitlines()) == 1
    corral("start", str(app), "-n", "tick")
    assert "saved 1 apps" in corral("save").stdout
    pid_file = home / "corral.pid"
    daemon_pid = int(pid_file.read_text().split()[0])
    assert "daemon killed" in corral("kill").stdout
    wait_for(lambda: not pid_alive(daemon_pid), what="the daemon to exit")
    assert "no daemon is running" in corral("kill").stdout
    assert "tick" in corral("resurrect").stdout
    wait_for(lambda: status_of("tick") == "online", what="resurrected app online")


def test_ping_starts_a_daemon(home):
    out = corral("ping").stdout
    pid = int((home / "corral.pid").read_text().split()[0])
    assert out.startswith("pong") and str(pid) in out


def test_unknown_target_is_one_line_exit_1(home):
    result = corral("stop", "nope", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "nope" in result.stderr


def test_bad_option_value_names_the_field(home, app):
    result = corral("start", str(app), "--max-restarts", "abc", check=False)
    assert result.returncode == 1
    assert "max_restarts" in result.stderr and len(result.stderr.splitlines()) == 1


def test_unknown_opt_key_names_the_closest(home, app):
    result = corral("start", str(app), "--opt", "max_restart=3", check=False)
    assert result.returncode == 1
    assert "max_restarts" in result.stderr and len(result.stderr.splitlines()) == 1


def test_monit_once_without_a_tty(home, app):
    corral("start", str(app), "-n", "tick")
    wait_for(lambda: "tick 2" in corral("logs", "tick", "--nostream", "--raw").stdout, what="out")
    result = subprocess.run(
        [sys.executable, "-m", "corral", "monit"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "tick" in result.stdout and "logs" in result.stdout


def test_logs_follow_survives_flush_and_ctrl_c_exits_130(home, app):
    corral("start", str(app), "-n", "tick")
    wait_for(lambda: "tick 1" in corral("logs", "tick", "--nostream", "--raw").stdout, what="out")
    follower = subprocess.Popen(
        [sys.executable, "-m", "corral", "logs", "tick", "--out", "-f", "--raw", "--lines", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = int(follower.stdout.readline().split()[1])  # "tick N", written after we started
        corral("flush", "tick")
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            line = follower.stdout.readline()
            if line.startswith("tick ") and int(line.split()[1]) > first + 5:
                break
        else:
            raise AssertionError("logs -f stopped printing after a flush")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=DEADLINE) == 130
        assert follower.stderr.read() == ""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_monit_live_on_a_terminal_quits_on_q_and_restores_it(home, app):
    import pty
    import select
    import termios

    corral("start", str(app), "-n", "one")
    corral("start", str(app), "-n", "two")
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    monit = subprocess.Popen(
        [sys.executable, "-m", "corral", "monit"], stdin=slave, stdout=slave, stderr=slave
    )
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        end = time.monotonic() + DEADLINE
        while marker not in seen:
            assert time.monotonic() < end, f"no {marker!r} in monit output: {seen[-500:]!r}"
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 65536)

    try:
        read_until(b"one (id 0) logs")
        os.write(master, b"j")
        read_until(b"two (id 1) logs")
        os.write(master, b"q")
        assert monit.wait(timeout=DEADLINE) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        if monit.poll() is None:
            monit.kill()
            monit.wait()
        os.close(master)
        os.close(slave)


def test_describe_shows_the_log_files_that_lost_lines():
    from corral.cli.describe import describe_rows
    from corral.client.info import ProcessInfo

    drop = {"path": "/l/web-out.log", "error": "No space left on device", "lines": 3, "bytes": 300}
    info = ProcessInfo(
        {"pid": 0, "name": "web", "pm_id": 0, "monit": {"memory": 0, "cpu": 0.0},
         "pm2_env": {"status": "online", "log_drops": [drop]}}
    )  # fmt: skip
    rows = dict(describe_rows(info, now=0))
    assert rows["log drops"] == "/l/web-out.log: 3 lines (300b) dropped; No space left on device"

"""corral startup: platform names, detection, rendering, installing into a temp root, the CLI.

Nothing here touches the machine's init system: files go under a temporary
directory standing for ``/`` and the enable commands go to a recorder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import corral
from corral.cli.commands import build_cli
from corral.errors import OptionError, PluginError, StateError
from corral.hooks import load_plugins
from corral.plugins.startup import (
    DETECTION,
    PLATFORMS,
    StartupContext,
    StartupScript,
    detect_init_system,
    install,
    render,
    report,
    resolve_platform,
    startup,
    sudo_command,
    uninstall,
    unstartup,
)
from corral.plugins.startup import launchd as startup_launchd
from corral.plugins.startup import systemd as startup_systemd
from tests.conftest import APPS, wait_for
from tests.plugins.startup.conftest import Recorder

BINDIR = str(Path(sys.executable).parent)

# what each init system's file looks like: destination, mode, enable, disable
EXPECTED = {
    "systemd": (
        "etc/systemd/system/corral-alice.service",
        0o644,
        [["systemctl", "daemon-reload"], ["systemctl", "enable", "corral-alice"]],
        [["systemctl", "stop", "corral-alice"], ["systemctl", "disable", "corral-alice"]],
    ),
    "upstart": (
        "etc/init.d/corral-alice",
        0o755,
        [["update-rc.d", "corral-alice", "defaults"]],
        [["/etc/init.d/corral-alice", "stop"], ["update-rc.d", "-f", "corral-alice", "remove"]],
    ),
    "systemv": (
        "etc/init.d/corral-alice",
        0o755,
        [["chkconfig", "--add", "corral-alice"], ["chkconfig", "corral-alice", "on"]],
        [
            ["/etc/init.d/corral-alice", "stop"],
            ["chkconfig", "corral-alice", "off"],
            ["chkconfig", "--del", "corral-alice"],
        ],
    ),
    "openrc": (
        "etc/init.d/corral-alice",
        0o755,
        [["rc-update", "add", "corral-alice", "default"]],
        [
            ["rc-service", "corral-alice", "stop"],
            ["rc-update", "delete", "corral-alice", "default"],
        ],
    ),
    "rcd": (
        "usr/local/etc/rc.d/corral_alice",
        0o755,
        [["sysrc", "corral_alice_enable=YES"]],
        [["/usr/local/etc/rc.d/corral_alice", "onestop"], ["sysrc", "-x", "corral_alice_enable"]],
    ),
}

# how each file stops the daemon
KILL = {
    "systemd": "ExecStop={bin} kill",
    "upstart": "run_corral kill",
    "systemv": "run_corral kill",
    "openrc": "run_corral kill",
    "rcd": "run_corral kill",
}


# -- platform names and detection ---------------------------------------------------


def test_pm2_names_map_to_their_init_systems():
    issue_names = (
        "ubuntu centos redhat gentoo systemd darwin amazon "
        "launchd openrc upstart systemv rcd freebsd"
    ).split()
    assert set(issue_names) <= set(PLATFORMS)
    assert {
        n: PLATFORMS[n] for n in ("ubuntu", "centos", "redhat", "arch", "oracle")
    } == dict.fromkeys(("ubuntu", "centos", "redhat", "arch", "oracle"), "systemd")
    assert PLATFORMS["amazon"] == PLATFORMS["centos6"] == "systemv"
    assert PLATFORMS["ubuntu14"] == PLATFORMS["ubuntu12"] == "upstart"
    assert PLATFORMS["darwin"] == PLATFORMS["macos"] == "launchd"
    assert PLATFORMS["freebsd"] == "rcd" and PLATFORMS["gentoo"] == "openrc"


def stub_path(tmp_path: Path, *tools: str) -> str:
    """A PATH of one directory holding an executable stub per tool."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in tools:
        stub = bindir / tool
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return str(bindir)


@pytest.mark.parametrize(("tool", "init_system"), DETECTION)
def test_detection_by_the_one_tool_found(tmp_path, tool, init_system):
    assert detect_init_system(stub_path(tmp_path, tool)) == init_system


def test_detection_follows_pm2s_order(tmp_path):
    path = stub_path(tmp_path, "sysrc", "launchctl", "rc-update", "chkconfig", "update-rc.d")
    assert detect_init_system(path) == "upstart"  # update-rc.d comes before chkconfig
    (tmp_path / "bin" / "update-rc.d").unlink()
    assert detect_init_system(path) == "systemv"
    path = stub_path(tmp_path, "systemctl")
    assert detect_init_system(path) == "systemd"  # systemctl first of all


def test_no_tool_found_asks_for_a_name(tmp_path):
    empty = stub_path(tmp_path)
    assert detect_init_system(empty) is None
    with pytest.raises(StateError, match=r"no init system found.*corral startup <systemd\|"):
        resolve_platform(None, path=empty)


def test_a_chosen_platform_unlike_the_detected_one_gets_a_note(tmp_path):
    path = stub_path(tmp_path, "rc-update")
    assert resolve_platform(None, path=path) == ("openrc", [])
    init_system, notes = resolve_platform("ubuntu", path=path)
    assert init_system == "systemd"
    assert "looks like openrc" in notes[0] and "ubuntu" in notes[0]


def test_unknown_platform_names_the_closest():
    with pytest.raises(OptionError, match=r"unknown platform 'ubunto': did you mean 'ubuntu'"):
        resolve_platform("ubunto")


# -- the context -----------------------------------------------------------------------


def test_context_follows_pm2s_placeholders(tmp_path, no_corral_home):
    context = StartupContext.build(user="alice", hp=tmp_path)
    assert context.home == tmp_path / ".corral"  # --hp is HOME; CORRAL_HOME is HOME/.corral
    assert context.user_home == tmp_path
    assert Path(context.corral_bin).is_absolute() and Path(context.corral_bin).name == "corral"
    assert context.python == sys.executable
    entries = context.path_env.split(os.pathsep)
    assert entries[0] == BINDIR and "/usr/bin" in entries and len(entries) == len(set(entries))


def test_context_home_from_corral_home_and_the_password_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "custom"))
    assert StartupContext.build(user="alice", hp=tmp_path).home == tmp_path / "custom"
    monkeypatch.delenv("CORRAL_HOME")
    assert StartupContext.build(user="root").home == Path("~root").expanduser() / ".corral"


def test_context_refuses_bad_users_and_names(no_corral_home, tmp_path):
    with pytest.raises(OptionError, match=r"no user named 'no-such-user-here'.*--hp"):
        StartupContext.build(user="no-such-user-here")
    with pytest.raises(OptionError, match="is not a user name"):
        StartupContext.build(user="a b;rm", hp=tmp_path)
    with pytest.raises(OptionError, match="--service-name"):
        StartupContext.build(user="alice", hp=tmp_path, service_name="x/y")


# -- rendering every platform ------------------------------------------------------------


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_platform_renders_and_installs(platform, manager, alice, tmp_path, runner):
    init_system = PLATFORMS[platform]
    script = render(init_system, alice, manager)
    assert script.init_system == init_system
    text = script.content
    assert alice.corral_bin in text
    assert str(alice.home) in text  # CORRAL_HOME
    assert "alice" in text
    if init_system == "launchd":
        assert script.path == alice.user_home / "Library/LaunchAgents/corral.alice.plist"
        assert not script.needs_root
    else:
        path, mode, enable, disable = EXPECTED[init_system]
        assert script.path == Path("/", path)
        assert (script.mode, script.enable, script.disable) == (mode, enable, disable)
        assert BINDIR + os.pathsep in text  # PATH with this install's bin dir
        assert "resurrect" in text
        assert KILL[init_system].format(bin=alice.corral_bin) in text
    root = tmp_path / "root"
    written = install(script, root=root, run=runner)
    assert written == root / script.path.relative_to("/")
    assert written.read_text() == text
    assert written.stat().st_mode & 0o777 == script.mode
    assert runner.commands == script.enable
    assert not list(written.parent.glob(".*.tmp"))


def test_systemd_unit_contents(manager, alice):
    unit = render("systemd", alice, manager).content
    bin_ = alice.corral_bin
    for line in (
        "Type=forking",
        "User=alice",
        f"PIDFile={alice.home}/corral.pid",
        f"Environment=PATH={alice.path_env}",
        f"Environment=CORRAL_HOME={alice.home}",
        f"ExecStart=-{bin_} resurrect",
        f"ExecReload={bin_} reload all",
        f"ExecStop={bin_} kill",
        "Restart=on-failure",
        "After=network.target",
        "WantedBy=multi-user.target",
        "LimitNOFILE=infinity",
    ):
        assert line in unit.splitlines(), line


def test_systemd_user_unit(manager, tmp_path, no_corral_home):
    context = StartupContext.build(user="alice", hp=tmp_path, user_mode=True)
    script = render("systemd", context, manager)
    assert script.path == tmp_path / ".config/systemd/user/corral.service"
    assert not script.needs_root
    assert "User=" not in script.content
    assert "WantedBy=default.target" in script.content
    assert script.enable == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "corral"],
    ]
    assert any("loginctl enable-linger alice" in note for note in script.notes)


def test_systemd_quotes_what_needs_it(manager, tmp_path, no_corral_home):
    context = StartupContext.build(user="alice", hp=tmp_path / "my home%1")
    unit = render("systemd", context, manager).content
    assert f'Environment="CORRAL_HOME={tmp_path}/my home%%1/.corral"' in unit
    assert startup_systemd.quote("/a/$HOME b", command=True) == '"/a/$$HOME b"'


def test_systemd_keeps_a_dollar_of_a_home_as_it_is(manager, tmp_path, no_corral_home):
    """systemd expands $ in Exec lines only: Environment= and PIDFile= take it as is."""
    context = StartupContext.build(user="alice", hp=tmp_path / "a$b")
    unit = render("systemd", context, manager).content
    assert f"Environment=CORRAL_HOME={tmp_path}/a$b/.corral\n" in unit
    assert f"PIDFile={tmp_path}/a$b/.corral/corral.pid\n" in unit


def test_service_name_and_the_rcd_variable_rule(manager, tmp_path, no_corral_home):
    context = StartupContext.build(user="web-1", hp=tmp_path, service_name="myapps")
    assert render("systemd", context, manager).path.name == "myapps.service"
    assert render("openrc", context, manager).path.name == "myapps"
    assert render("launchd", context, manager).path.name == "myapps.plist"
    assert render("rcd", context, manager).path.name == "myapps"
    default = StartupContext.build(user="web-1", hp=tmp_path)
    assert render("rcd", default, manager).path.name == "corral_web_1"
    dashed = StartupContext.build(user="web-1", hp=tmp_path, service_name="my-apps")
    with pytest.raises(PluginError, match="shell variable name"):
        render("rcd", dashed, manager)


def test_no_plugin_for_the_init_system_names_the_plugin(alice):
    only_launchd = load_plugins([startup_launchd])
    with pytest.raises(
        PluginError, match=r"no plugin renders systemd boot scripts.*'startup_systemd'"
    ):
        render("systemd", alice, only_launchd)


class Niced:
    """A third-party generator that replaces the first-party systemd unit."""

    @corral.hookimpl(tryfirst=True)
    def corral_startup_script(self, init_system, context):
        if init_system != "systemd":
            return None
        return StartupScript("systemd", Path("/etc/systemd/system/niced.service"), "[Unit]\n")


def test_the_first_answer_wins(alice):
    both = load_plugins([startup_systemd, Niced()])
    assert render("systemd", alice, both).path.name == "niced.service"
    assert render("systemd", alice, load_plugins([startup_systemd])).path.name == (
        "corral-alice.service"
    )


# -- install, uninstall, as root or not -----------------------------------------------------


def test_not_root_prints_the_sudo_command_and_writes_nothing(manager, tmp_path, no_corral_home):
    hp = tmp_path / "home"
    result = startup("centos", user="alice", hp=hp, manager=manager, root=tmp_path, is_root=False)
    assert result.written is None and result.ran == []
    assert result.todo_as == "root"
    context = result.context
    assert result.todo == (
        f"sudo env PATH=$PATH:{BINDIR} {context.corral_bin} startup centos -u alice --hp {hp}"
    )
    assert not (tmp_path / "etc").exists()
    assert any("no daemon runs" in note or "corral dump" in note for note in result.notes)


def test_sudo_command_carries_an_explicit_corral_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "apps home"))
    context = StartupContext.build(user="alice", hp=tmp_path, service_name="web")
    line = sudo_command("unstartup", "openrc", context)
    words = shlex.split(line.replace("$PATH", "P"))
    assert words[:3] == ["sudo", "env", f"PATH=P:{BINDIR}"]
    assert words[3] == f"CORRAL_HOME={tmp_path}/apps home"
    assert words[4:] == [
        context.corral_bin, "unstartup", "openrc", "-u", "alice", "--hp", str(tmp_path),
        "--service-name", "web",
    ]  # fmt: skip


@pytest.mark.parametrize("init_system", sorted(EXPECTED))
def test_root_installs_then_uninstalls_in_a_temp_root(
    init_system, manager, tmp_path, runner, no_corral_home
):
    root = tmp_path / "root"
    kwargs = {"user": "alice", "hp": tmp_path / "alice", "manager": manager, "root": root}
    result = startup(init_system, run=runner, is_root=True, **kwargs)
    path, _, enable, disable = EXPECTED[init_system]
    assert result.written == root / path and result.written.exists()
    assert result.ran == enable == runner.commands
    assert result.todo is None
    runner.commands.clear()
    removed = unstartup(init_system, run=runner, is_root=True, **kwargs)
    assert removed.written == root / path and not (root / path).exists()
    assert runner.commands == disable


def test_uninstall_goes_on_when_the_service_is_not_running(manager, alice, tmp_path):
    script = render("systemd", alice, manager)
    install(script, root=tmp_path, run=Recorder())
    failing = Recorder(failing=("stop",))
    removed, warnings = uninstall(script, root=tmp_path, run=failing)
    assert removed is not None and not removed.exists()
    assert failing.commands == script.disable  # the failed stop did not stop the disable
    assert "not running" in warnings[0]
    assert uninstall(script, root=tmp_path, run=failing)[0] is None


def test_an_enable_command_that_fails_is_an_error(manager, alice, tmp_path):
    script = render("openrc", alice, manager)
    with pytest.raises(StateError, match=r"rc-update add corral-alice default.*failed"):
        install(script, root=tmp_path, run=Recorder(failing=("default",)))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_root_writes_a_user_level_script_for_someone_else(manager, tmp_path, runner):
    # written with nobody's rights (a link nobody planted is never followed): its home
    # exists and is its own, as a real user's, and not below pytest's 0700 directory
    top = Path(tempfile.mkdtemp(prefix="corral-startup-", dir="/tmp"))
    try:
        top.chmod(0o755)
        home = top / str(top / "nobody")[1:]
        home.mkdir(parents=True)
        for path in (home, *home.parents):
            if path == top:
                break
            path.chmod(0o755)
        os.chown(home, _uid("nobody"), -1)
        _writes_for_nobody(top, manager, runner)
    finally:
        shutil.rmtree(top)


def _writes_for_nobody(tmp_path, manager, runner):
    result = startup(
        "darwin", user="nobody", hp=tmp_path / "nobody", manager=manager, root=tmp_path,
        run=runner, is_root=True,
    )  # fmt: skip
    written = result.written
    assert (
        written == tmp_path / str(tmp_path / "nobody/Library/LaunchAgents/corral.nobody.plist")[1:]
    )
    assert written.stat().st_uid == _uid("nobody")
    assert written.parent.stat().st_uid == written.stat().st_uid  # created dirs are theirs too
    assert runner.commands == []  # launchctl runs in nobody's session, not here
    assert result.todo_as == "nobody"
    assert (
        result.todo
        == f"launchctl load -w {tmp_path}/nobody/Library/LaunchAgents/corral.nobody.plist"
    )


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def test_print_only_changes_nothing(manager, tmp_path, runner, no_corral_home):
    result = startup(
        "systemd", user="alice", hp=tmp_path, manager=manager, print_only=True, root=tmp_path,
        run=runner, is_root=True,
    )  # fmt: skip
    assert result.written is None and runner.commands == []
    assert result.todo.startswith("sudo env PATH=$PATH:") and result.todo_as == "root"
    user = startup(
        "systemd", user="alice", hp=tmp_path, user_mode=True, manager=manager, print_only=True
    )
    assert user.todo == f"{user.context.corral_bin} startup systemd --user-mode"


def test_user_mode_is_systemds_only(manager, alice):
    with pytest.raises(OptionError, match="systemd feature, not openrc's"):
        startup("openrc", user_mode=True, manager=manager, print_only=True)


# -- the process list ------------------------------------------------------------------------


def test_startup_dumps_the_list_of_the_running_daemon(corral_home, manager, tmp_path, runner):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        client.start(str(APPS / "sleeper.py"), {"name": "kept"})
        wait_for(lambda: client.describe("kept")[0].status == "online")
        result = client.startup(
            "systemd", manager=manager, root=tmp_path / "root", run=runner, is_root=True
        )
        assert result.context.home == corral_home
        assert any(note.startswith("saved 1 apps to") for note in result.notes)
        assert '"kept"' in (corral_home / "dump.corral").read_text()
        client.delete("all")
        again = client.startup(
            "systemd", manager=manager, root=tmp_path / "root", run=runner, is_root=True
        )
        note = next(n for n in again.notes if "empty" in n)
        assert "is kept" in note  # the dump from before stays, as PM2's save
        assert '"kept"' in (corral_home / "dump.corral").read_text()


def test_no_daemon_no_dump_and_none_started(corral_home, manager, tmp_path, runner):
    result = startup("systemd", manager=manager, root=tmp_path, run=runner, is_root=True)
    assert any("no daemon runs in" in note for note in result.notes)
    assert not (corral_home / "corral.pid").exists()


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.delenv("CORRAL_PLUGINS", raising=False)
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args))


def test_cli_print_puts_the_file_alone_on_stdout(cli_env, tmp_path):
    result = invoke("startup", "ubuntu", "-u", "alice", "--hp", str(tmp_path), "--print")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Written by `corral startup systemd`")
    assert "User=alice" in result.stdout and "sudo" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sudo env PATH=$PATH:") and "startup ubuntu -u alice --hp" in last
    assert "destination: /etc/systemd/system/corral-alice.service" in result.stderr


def test_cli_user_alone_is_a_systemd_user_unit(cli_env, tmp_path):
    result = invoke("startup", "systemd", "--user", "--hp", str(tmp_path), "--print")
    assert result.exit_code == 0, result.output
    assert "WantedBy=default.target" in result.stdout and "User=" not in result.stdout
    assert result.stderr.strip().endswith("startup systemd --user-mode")
    named = invoke("startup", "--user", "bob", "systemd", "--hp", str(tmp_path), "--print")
    assert "User=bob" in named.stdout


def test_cli_unstartup_print(cli_env, tmp_path):
    result = invoke("unstartup", "openrc", "-u", "alice", "--hp", str(tmp_path), "--print")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert "file: /etc/init.d/corral-alice" in lines
    assert lines[-1].endswith("unstartup openrc -u alice --hp " + str(tmp_path))


def test_cli_errors_are_one_line(cli_env):
    result = invoke("startup", "windows", "--print")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown platform 'windows'")


def test_unstartup_of_someone_elses_agent_is_left_to_them(manager, tmp_path, runner):
    kwargs = {"user": "nobody", "hp": tmp_path / "nobody", "manager": manager, "root": tmp_path}
    result = unstartup("macos", run=runner, is_root=True, **kwargs)
    assert result.written is None and runner.commands == []
    assert (result.todo, result.todo_as) == (
        f"{result.context.corral_bin} unstartup macos",
        "nobody",
    )


def test_report_ends_with_what_to_do(manager, tmp_path, runner, no_corral_home):
    kwargs = {"user": "alice", "hp": tmp_path, "manager": manager, "root": tmp_path}
    done = startup("systemd", run=runner, is_root=True, **kwargs)
    lines = report(done)
    assert lines[:2] == [
        "platform: systemd (systemd)",
        f"wrote {tmp_path}/etc/systemd/system/corral-alice.service",
    ]
    assert "ran: systemctl enable corral-alice" in lines
    assert lines[-1] == "remove it with: corral unstartup systemd"
    left = report(startup("systemd", is_root=False, **kwargs))
    assert left[-2:] == ["to install it, run as root:", left[-1]]
    assert left[-1].startswith("sudo env PATH=$PATH:")

"""restart/reload with new options: all checked before anything stops, applied all or nothing.

A bad value (a cwd that is no directory, an address that is taken, a user
that does not exist, ...) is an OptionError naming its field, and every app
the command targets goes on running as it was: same pid, same status, same
options. An option a restart cannot change (the script, the instance count,
the log paths, ...) is refused with what to do instead, never accepted and
silently ignored.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from corral.errors import CorralError, OptionError
from tests.conftest import wait_for
from tests.core.test_daemon import alive, apps_snapshot

SLEEP = shutil.which("sleep") or "/bin/sleep"
VERBS = ("restart", "reload")


def change(pm, verb: str, target: str, options: dict) -> None:
    getattr(pm, verb)(target, options=options)


@pytest.fixture
def two(pm, tmp_path):
    """Two apps online in different directories; returns the snapshot before."""
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    pm.start(SLEEP, {"name": "a", "args": ["3600"], "cwd": str(tmp_path / "a")})
    pm.start(SLEEP, {"name": "b", "args": ["3600"], "cwd": str(tmp_path / "b")})
    return apps_snapshot(pm)


def unchanged(pm, before: list[tuple]) -> None:
    assert apps_snapshot(pm) == before
    assert all(alive(pid) for _, _, pid, status, _ in before if status == "online")


@pytest.fixture
def taken_port():
    """A TCP port this test holds, listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


BAD = {
    "cwd": {"cwd": "/nonexistent/corral-test"},
    "listen": {"listen": "nonsense"},
    "uid": {"uid": "corral-no-such-user"},
    "gid": {"gid": "corral-no-such-group"},
    "log_date_format": {"log_date_format": "YYYY-MM-DD %Q"},
    "env": {"env": {"A=B": "1"}},
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("field", sorted(BAD))
def test_a_bad_option_is_refused_and_the_app_runs_on(pm, two, verb, field):
    with pytest.raises(OptionError) as caught:
        change(pm, verb, "a", BAD[field])
    assert caught.value.field == field, caught.value
    assert "internal error" not in str(caught.value)
    unchanged(pm, two)


@pytest.mark.parametrize("verb", VERBS)
def test_an_address_in_use_is_refused_and_the_app_keeps_its_own(pm, tmp_path, verb, taken_port):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        own = probe.getsockname()[1]
    pm.start(SLEEP, {"name": "web", "args": ["3600"], "listen": f"127.0.0.1:{own}"})
    wait_for(lambda: pm.describe("web")[0].status == "online")
    before = apps_snapshot(pm)
    with pytest.raises(OptionError, match="cannot listen") as caught:
        change(pm, verb, "web", {"listen": f"127.0.0.1:{taken_port}"})
    assert caught.value.field == "listen"
    unchanged(pm, before)
    with socket.create_connection(("127.0.0.1", own), timeout=5):
        pass  # the app's own socket is still bound and listening


@pytest.mark.parametrize("verb", VERBS)
def test_all_targets_or_none(pm, two, verb):
    """``sub`` exists under a's cwd only: b would fail, so a is not restarted either."""
    with pytest.raises(OptionError) as caught:
        change(pm, verb, "all", {"cwd": "sub"})
    assert caught.value.field == "cwd"
    unchanged(pm, two)


FIXED = {
    "script": ({"script": "/bin/true"}, "start the config file again"),
    "exec_interpreter": ({"interpreter": "python3"}, "start the config file again"),
    "instances": ({"instances": 3}, "corral scale"),
    "name": ({"name": "other"}, "delete the app"),
    "exec_mode": ({"exec_mode": "cluster"}, "delete the app"),
    "out_file": ({"out_file": "/tmp/corral-x.log"}, "delete the app"),
    "error_file": ({"error_file": "/tmp/corral-x.log"}, "delete the app"),
    "pid_file": ({"pid_file": "/tmp/corral-x.pid"}, "delete the app"),
    "merge_logs": ({"merge_logs": False}, "delete the app"),
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("field", sorted(FIXED))
def test_what_a_restart_cannot_change_is_refused_with_what_to_do(pm, two, verb, field):
    options, advice = FIXED[field]
    with pytest.raises(OptionError, match=advice) as caught:
        change(pm, verb, "a", options)
    assert caught.value.field == field
    unchanged(pm, two)


@pytest.mark.parametrize("verb", VERBS)
def test_a_good_change_applies(pm, two, tmp_path, verb):
    change(pm, verb, "a", {"cwd": "sub", "args": ["1800"], "kill_timeout": 500})
    (info,) = pm.describe("a")
    assert info.pid != two[0][2] and info.status == "online"
    assert info.pm2_env["pm_cwd"] == str(tmp_path / "a" / "sub")
    assert info.pm2_env["args"] == ["1800"] and info.pm2_env["kill_timeout"] == 500
    # an unchanged value of a fixed option is no change
    change(pm, verb, "a", {"instances": 1, "name": "a"})


def test_start_of_the_config_file_brings_the_script_in_line(pm, tmp_path):
    """What the script refusal tells users to do works."""
    first = tmp_path / "first.sh"
    second = tmp_path / "second.sh"
    for path in (first, second):
        path.write_text(f"#!/bin/sh\necho {path.stem}\nexec sleep 3600\n")
        path.chmod(0o755)
    config = tmp_path / "ecosystem.config.json"
    config.write_text(f'{{"apps": [{{"name": "app", "script": "{first}"}}]}}')
    pm.start(str(config))
    config.write_text(f'{{"apps": [{{"name": "app", "script": "{second}"}}]}}')
    pm.start(str(config))
    (info,) = pm.describe("app")
    assert info.pm2_env["pm_exec_path"] == str(second)
    wait_for(lambda: "second" in Path(info.out_log).read_text())


@pytest.fixture
def user():
    """A throwaway user, removed at the end."""
    name = "corral" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--no-create-home", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, stderr=subprocess.DEVNULL)


def test_an_app_whose_user_is_gone_is_errored_not_left_launching(pm, user):
    """An exception in the spawn itself (the user deleted since start) leaves a consistent slot."""
    pm.start(SLEEP, {"name": "gone", "args": ["3600"], "uid": user})
    pm.stop("gone")
    subprocess.run(["userdel", user], check=True)
    with pytest.raises(CorralError) as caught:
        pm.restart("gone")
    assert "internal error" not in str(caught.value)
    (info,) = pm.describe("gone")
    assert info.status == "errored" and info.pid is None
    pm.stop("gone")  # stop, restart and delete all work on it again
    with contextlib.suppress(CorralError):
        pm.restart("gone")
    pm.delete("gone")
    assert not pm.list()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def test_a_restart_moves_the_socket_and_a_reload_refuses_to(pm):
    """A rolling reload keeps its socket to serve on: it used to accept a new listen,
    show it, and go on serving on the old one."""
    old, new = free_port(), free_port()
    pm.start(SLEEP, {"name": "web", "args": ["3600"], "instances": 2, "listen": f"127.0.0.1:{old}"})
    wait_for(lambda: all(p.status == "online" for p in pm.describe("web")))
    before = apps_snapshot(pm)
    with pytest.raises(OptionError, match="restart the app to move it") as caught:
        pm.reload("web", options={"listen": f"127.0.0.1:{new}"})
    assert caught.value.field == "listen"
    unchanged(pm, before)
    assert listening(old)
    first = before[0][0]
    with pytest.raises(OptionError, match="needs all its 2 instances") as caught:
        pm.restart(first, options={"listen": f"127.0.0.1:{new}"})
    assert caught.value.field == "listen"
    unchanged(pm, before)
    pm.restart("web", options={"listen": f"127.0.0.1:{new}"})
    wait_for(lambda: listening(new), what=f"port {new} listening")
    assert not listening(old)
    assert {p.pm2_env["listen"] for p in pm.describe("web")} == {f"127.0.0.1:{new}"}

"""PM2 test/e2e/cli/reload.sh: reload of cluster apps, restart/reload counters, by script
and by name, no-autorestart, stop exit codes, shutdown by message."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.pm2_e2e.conftest import (
    Corral,
    read,
    wait_text,
)


def test_reload_sends_sigint_once(cli: Corral) -> None:
    """reload.sh:7-19: -i 2 is cluster mode; after a reload each old instance's out log
    holds exactly one 'SIGINT' line (PM2 greps the first instance's log; the fixture logs
    the signal and exits 2 s later)."""
    cli.kill()
    cli.run("start", "delayed_exit.js", "-i", "2")
    cli.should("status", "online", 2)
    cli.should("exec_mode", "cluster_mode", 2)
    logs = [Path(p["pm2_env"]["pm_out_log_path"]) for p in cli.jlist()]
    assert len(set(logs)) == 2, logs
    cli.run("reload", "delayed_exit")
    cli.should("restart_time", 1, 2)
    assert [read(log).count("Got SIGINT signal") for log in logs] == [1, 1]


def test_stop_then_restart_by_script(cli: Corral) -> None:
    """reload.sh:23-32: stop by script, restart by script (restart_time stays 0: it was
    stopped), restart again (1)."""
    cli.kill()
    cli.run("start", "delayed_exit.js")
    cli.should("status", "online", 1)
    cli.run("stop", "delayed_exit.js")
    cli.should("status", "stopped", 1)
    cli.run("restart", "delayed_exit.js")
    cli.should("restart_time", 0, 1)
    cli.run("restart", "delayed_exit.js")
    cli.should("restart_time", 1, 1)


def test_restart_all_by_name_then_reload_all(cli: Corral) -> None:
    """reload.sh:50-63 (without the by-script step, below): -i 4, restart all, restart by
    name, reload all: restart_time 3 on all four."""
    cli.kill()
    cli.run("start", "child.js", "-i", "4")
    cli.should("status", "online", 4)
    cli.run("restart", "all")
    cli.should("restart_time", 1, 4)
    cli.run("restart", "child")
    cli.should("restart_time", 2, 4)
    cli.run("reload", "all")
    cli.should("restart_time", 3, 4)


def test_restart_by_script_name(cli: Corral) -> None:
    """reload.sh:55-56: restart child.js (by script) restarts its four instances."""
    cli.kill()
    cli.run("start", "child.js", "-i", "4")
    cli.should("status", "online", 4)
    cli.run("restart", "child.js")
    cli.should("restart_time", 1, 4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cluster_apps_on_one_port_reload(cli: Corral) -> None:
    """reload.sh:66-85: child.js -i 4 and network.js -i 4 (all four on one fixed port):
    8 online; reload all; reload each by script."""
    cli.kill()
    env = {"NETWORK_PORT": str(_free_port())}
    cli.run("start", "child.js", "-i", "4")
    cli.should("status", "online", 4)
    cli.run("start", "network.js", "-i", "4", env=env)
    cli.should("status", "online", 8)
    cli.run("reload", "all")
    cli.should("restart_time", 1, 8)
    cli.run("reload", "child.js")
    cli.should("restart_time", 2, 4)
    cli.run("reload", "network.js")
    cli.should("restart_time", 2, 8)


def test_reload_of_a_non_network_app(cli: Corral) -> None:
    """reload.sh:90-94: reload of a fork app that listens on nothing does not hang (falls
    back to a restart)."""
    cli.kill()
    cli.run("start", "echo.js")
    cli.should("status", "online", 1)
    cli.run("reload", "echo")
    cli.should("restart_time", 1, 1)


def test_no_autorestart(cli: Corral) -> None:
    """reload.sh:100-105: --no-autorestart and autorestart false in JSON: a crashing app
    is not restarted.
    (`--no-wait`: corral's start watches the app for min_uptime and exits 1 when it
    dies at once, README "a start that fails"; PM2 exits 0.)
    """
    cli.kill()
    cli.run("start", "--no-wait", "killtoofast.js", "--no-autorestart")
    cli.wait(lambda p: p and p[0]["pm2_env"]["status"] == "stopped", "stopped after exit")
    cli.should("restart_time", 0, 1)
    cli.delete_all()
    cli.run("start", "--no-wait", "no-restart.json")
    cli.wait(lambda p: p and p[0]["pm2_env"]["status"] == "stopped", "stopped after exit")
    cli.should("restart_time", 0, 1)


def test_stop_exit_codes(cli: Corral) -> None:
    """reload.sh:110-128: exit 42 with --stop-exit-codes 42 is not restarted; with 34 or 3
    it is; stop_exit_codes [12, 42] in JSON is not.
    (`--no-wait`: corral's start watches the app for min_uptime and exits 1 when it
    dies at once, README "a start that fails"; PM2 exits 0.)
    """
    cli.kill()
    cli.run("start", "exitcode42.js", "--stop-exit-codes", "42")
    cli.wait(lambda p: p and p[0]["pm2_env"]["status"] == "stopped", "stopped after 42")
    cli.should("restart_time", 0, 1)
    for codes in ("34", "3"):
        cli.delete_all()
        cli.run("start", "--no-wait", "exitcode42.js", "--stop-exit-codes", codes)
        cli.wait(lambda p: p and p[0]["pm2_env"]["restart_time"] >= 1, "restarted after 42")
    cli.delete_all()
    cli.run("start", "stop-exit-codes.json")
    cli.wait(lambda p: p and p[0]["pm2_env"]["status"] == "stopped", "stopped after 42")
    cli.should("restart_time", 0, 1)


def test_shutdown_with_message(cli: Corral) -> None:
    """reload.sh:150-164: --shutdown-with-message: reload sends 'shutdown' on the channel
    (PM2_KILL_USE_MESSAGE=true at :133-148 is the same through an environment variable
    of PM2's daemon; corral has only the option)."""
    cli.kill()
    cli.run("start", "signal-send.js", "--shutdown-with-message")
    cli.should("status", "online", 1)
    out = Path(cli.jlist()[0]["pm2_env"]["pm_out_log_path"])
    cli.run("reload", "signal-send.js")
    wait_text(out, "shutdown")

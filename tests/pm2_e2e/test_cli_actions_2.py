"""PM2 test/e2e/cli/cli-actions-2.sh: start/stop/restart/delete by script, name, id."""

from __future__ import annotations

import os
import signal

import psutil

from corral.testing import wait_for
from tests.pm2_e2e.conftest import SLOW, Corral, wait_text


def test_start_stop_restart_by_script(cli: Corral) -> None:
    """cli-actions-2.sh:10-15: start, stop and restart an app by its script file."""
    cli.delete_all()
    cli.run("start", "echo.js")
    cli.run("stop", "echo.js")
    cli.should("status", "stopped", 1)
    cli.run("restart", "echo.js")
    cli.should("status", "online", 1)


def test_numeric_file_name(cli: Corral) -> None:
    """cli-actions-2.sh:22-27: a script whose name starts with a digit, driven by name."""
    cli.delete_all()
    cli.run("start", "001-test.js")
    cli.should("status", "online", 1)
    cli.run("stop", "001-test")
    cli.should("status", "stopped", 1)
    cli.run("restart", "001-test")
    cli.should("status", "online", 1)


def test_pid_command(cli: Corral) -> None:
    """cli-actions-2.sh:33-36: `pm2 pid test` prints the app's pid."""
    cli.delete_all()
    cli.run("start", "001-test.js", "--name", "test")
    cli.should("status", "online", 1)
    pid = cli.jlist()[0]["pid"]
    assert cli.run("pid", "test").stdout.strip() == str(pid)


def test_uncaught_error_written_to_log(cli: Corral) -> None:
    """cli-actions-2.sh:42-46: a crashing script's stack (naming its file) reaches -l FILE.
    (`--no-wait`: corral's start watches the app for min_uptime and exits 1 when it
    dies at once, README "a start that fails"; PM2 exits 0.)
    """
    cli.delete_all()
    cli.run("start", "--no-wait", "throw-string.js", "--log", "err-string.log", "--merge-logs")
    wait_text(cli.workdir / "err-string.log", "throw-string.js")
    cli.delete_all()


def test_by_name_stop_restart(cli: Corral) -> None:
    """cli-actions-2.sh:52-57 and 64-69 (the same block twice): --name gege, stop, restart."""
    cli.delete_all()
    cli.run("start", "echo.js", "--name", "gege")
    cli.should("status", "online", 1)
    cli.run("stop", "gege")
    cli.should("status", "stopped", 1)
    cli.run("restart", "gege")
    cli.should("status", "online", 1)


def test_second_start_refused(cli: Corral) -> None:
    """cli-actions-2.sh:75-77: starting a running script again fails (no second copy)."""
    cli.delete_all()
    cli.run("start", "echo.js")
    proc = cli.run("start", "echo.js", ok=False)
    assert "already running" in proc.stderr
    assert len(cli.jlist()) == 1


def test_delete_by_id(cli: Corral) -> None:
    """cli-actions-2.sh:82-84: delete by id."""
    cli.delete_all()
    cli.run("start", "echo.js")
    pm_id = cli.jlist()[0]["pm_id"]
    cli.run("delete", str(pm_id))
    cli.should("name", "echo", 0)


def test_delete_by_name(cli: Corral) -> None:
    """cli-actions-2.sh:89-91: delete by name."""
    cli.delete_all()
    cli.run("start", "echo.js", "--name", "test")
    cli.run("delete", "test")
    cli.should("name", "test", 0)


def test_delete_by_script(cli: Corral) -> None:
    """cli-actions-2.sh:96-99: delete by script file."""
    cli.delete_all()
    cli.run("start", "echo.js")
    cli.run("delete", "echo.js")
    cli.should("name", "echo", 0)


def test_numeric_name(cli: Corral) -> None:
    """cli-actions-2.sh:103-112 (#1937): an app named "455".

    Deliberate difference: PM2 takes the all-digit name and then has to guess whether
    `restart 455` means the name or pm_id 455; corral refuses such a name at start with
    a one-line error naming the fix, and starts nothing.
    """
    cli.delete_all()
    proc = cli.run("start", "echo.js", "--name", "455", ok=False)
    assert "all digits" in proc.stderr and "--name" in proc.stderr
    assert cli.jlist() == []


def test_output_files_per_instance(cli: Corral) -> None:
    """cli-actions-2.sh:118-123: -o/-e with -i 2 write outech-0.log and errech-0.log."""
    cli.kill()
    cli.run(
        "start", "echo.js", "-o", "outech.log", "-e", "errech.log", "--name", "gmail", "-i", "2"
    )
    wait_text(cli.workdir / "outech-0.log", "echo.js")
    wait_text(cli.workdir / "errech-0.log", "echo.js-error")
    cli.delete_all()


def test_stdout_stderr_with_callbacks(cli: Corral) -> None:
    """cli-actions-2.sh:127-137: writes with callbacks on both streams reach one -l log."""
    cli.delete_all()
    cli.run("start", "stdout-stderr.js", "--log", "stdout-stderr.log", "--merge-logs")
    for text in ("outwrite", "outcb", "errwrite", "errcb"):
        wait_text(cli.workdir / "stdout-stderr.log", text)
    cli.delete_all()


def test_killing_the_daemon_kills_its_apps(cli: Corral) -> None:
    """cli-actions-2.sh:142-151 (#2350): SIGTERM to the daemon ends a python and a node app."""
    cli.delete_all()
    cli.run("start", "python-script.py")
    cli.run("start", "echo.js")
    cli.should("status", "online", 2)
    pids = [p["pid"] for p in cli.jlist()]
    daemon = int((cli.home / "corral.pid").read_text())
    os.kill(daemon, signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(daemon), SLOW, "the daemon gone")
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), SLOW, "its apps gone")

"""A daemon killed with a full pipe: the next daemon writes every line the pipe held.

The pipe holder (corral.supervisor.fdholder) keeps the read ends of the children's pipes
across the daemon's death. Here the daemon is stopped (SIGSTOP) until a flood
app blocks on its full stdout and stderr pipes, then killed: without the holder
the app gets EPIPE and the 64 KiB each pipe held are lost (as with PM2); with it
the next daemon drains them into the log before it stops the old app.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import corral
from corral.testing import wait_for
from tests.core.test_daemon import alive, reap
from tests.faults.soak_lines import FLOOD, account


def blocked_on_pipe(pid: int) -> bool:
    try:
        return "pipe_write" in Path(f"/proc/{pid}/wchan").read_text()  # anon_pipe_write too
    except OSError:
        return False


def holder_pid(home: Path) -> int | None:
    try:
        return int((home / "fdholder.pid").read_text())
    except (OSError, ValueError):
        return None


def test_lines_in_a_full_pipe_survive_a_daemon_sigkill(corral_home: Path, tmp_path: Path) -> None:
    script, reports = tmp_path / "flood.py", tmp_path / "runs"
    script.write_text(FLOOD)
    reports.mkdir()
    pm = corral.connect()
    (info,) = pm.start(
        {"name": "flood", "script": str(script), "args": ["flood", "5000", str(reports)]}
    )
    old_pid, daemon = info.pid, pm.daemon_pid
    wait_for(
        lambda: Path(info.out_log).stat().st_size > 0 if Path(info.out_log).exists() else False
    )
    os.kill(daemon, signal.SIGSTOP)  # nobody reads: the app fills its pipes and blocks
    wait_for(lambda: blocked_on_pipe(old_pid), what="the app blocked on a full pipe")
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: (reap(daemon), not alive(daemon))[1], what="daemon gone")
    holder = holder_pid(corral_home)
    held = bool(holder and alive(holder))
    files = ("fdholder.sock", "fdholder.pid")
    modes = {n: (corral_home / n).stat().st_mode & 0o777 for n in files} if held else {}

    again = corral.connect()
    wait_for(lambda: not alive(old_pid), what="the old app stopped by the new daemon")
    (back,) = again.describe("flood")
    assert back.pid != old_pid
    again.kill_daemon()

    runs, torn, _ = account({"flood": (info.out_log, info.err_log)}, reports)
    assert not torn, torn[:3]
    for stream in ("out", "err"):
        run = runs[("flood", old_pid, stream)]
        print(f"\n{stream}: {run.written} written, {run.in_log} in the log ({run.why})")
        assert run.why != "epipe", "the app's pipe lost its reader with the daemon"
        assert run.duplicates() == run.holes() == 0
        assert run.lost_tail() == 0, f"{run.lost_tail()} lines lost on {stream}"
    assert held, "the pipe holder died with the daemon"
    wait_for(lambda: not alive(holder), what="the holder gone once no pipe is held")
    assert modes == {"fdholder.sock": 0o600, "fdholder.pid": 0o600}

"""Twenty apps crashing at once: backoff keeps the daemon calm, statuses stay right.

The CPU bound is a correctness bound against a hot restart loop (a daemon
respawning as fast as it can burns a core), not a speed goal: it is generous
and the figure is printed.
"""

from __future__ import annotations

import shutil
import time

import psutil

from tests.conftest import wait_for

FALSE = shutil.which("false") or "/bin/false"
APPS = 20
WINDOW = 8.0  # seconds of crash loop measured
CPU_BOUND = 0.25  # of one core; a hot loop without backoff used 45% here
LOOPING = {"launching", "online", "waiting restart"}


def start_crashers(pm, **options: object) -> list[str]:
    names = [f"crash-{i}" for i in range(APPS)]
    pm.start([{"script": FALSE, "name": name, **options} for name in names])
    return names


def daemon_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_backoff_keeps_the_daemon_calm(pm) -> None:
    names = start_crashers(pm, max_restarts=100_000, exp_backoff_restart_delay=100)
    cpu_before, started = daemon_cpu(pm.daemon_pid), time.monotonic()
    samples: list[tuple[float, int]] = []  # (seconds in, total restarts)
    seen: set[str] = set()

    def sample() -> bool:
        infos = pm.list()
        seen.update(p.status for p in infos)
        elapsed = time.monotonic() - started
        samples.append((elapsed, sum(p.restart_time for p in infos)))
        return elapsed >= WINDOW

    wait_for(sample, timeout=WINDOW + 30, interval=0.5, what="the measuring window")
    cpu = (daemon_cpu(pm.daemon_pid) - cpu_before) / (time.monotonic() - started)
    infos = pm.list()
    restarts = [p.restart_time for p in infos]
    print(
        f"\ncrash loop of {APPS} apps: daemon CPU {cpu:.1%} of one core over "
        f"{samples[-1][0]:.1f} s, restarts per app {min(restarts)}..{max(restarts)}"
    )
    assert cpu < CPU_BOUND, f"daemon CPU {cpu:.1%} during a backed-off crash loop"
    assert sorted(p.name for p in infos) == sorted(names)
    assert seen <= LOOPING and {p.status for p in infos} <= LOOPING, seen
    # the delays grow: each app waits longer than the first delay now, and the
    # restart counter rose faster in the first half of the window than in the second
    assert all(p.pm2_env["prev_restart_delay"] > 100 for p in infos), infos
    half = next(total for at, total in samples if at >= WINDOW / 2)
    first_half, second_half = half - samples[0][1], samples[-1][1] - half
    assert second_half < first_half, samples
    assert all(r < 40 for r in restarts), restarts  # 100 ms apart, it would be ~80


def test_without_backoff_every_app_ends_errored(pm) -> None:
    names = start_crashers(pm, max_restarts=5)
    cpu_before, started = daemon_cpu(pm.daemon_pid), time.monotonic()
    infos = wait_for(
        lambda: (found := pm.list()) and {p.status for p in found} == {"errored"} and found,
        timeout=30,
        what="every crasher errored",
    )
    cpu = daemon_cpu(pm.daemon_pid) - cpu_before
    print(f"\n{APPS} apps to errored in {time.monotonic() - started:.2f} s, daemon CPU {cpu:.2f} s")
    assert sorted(p.name for p in infos) == sorted(names)
    # the fifth quick exit is the last: four restarts (see test_crash_loop_ends_errored)
    assert [p.restart_time for p in infos] == [4] * APPS
    assert all(p.pid is None and p.exit_code == 1 for p in infos)

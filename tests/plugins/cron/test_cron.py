"""The cron plugin: the schedule as pure functions of the wall clock, then real daemons."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import corral
from corral.errors import OptionError, PluginError
from corral.plugins import cron
from corral.plugins.cron import (
    check_cron,
    check_tz,
    missed_ticks,
    next_delay,
    next_tick,
    plan_wakeup,
)
from corral.testing import wait_for, wait_for_event
from tests.conftest import APPS, out_lines, python_app

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
SLEEPER = str(APPS / "sleeper.py")


def at(*fields: int, tz: Any = UTC) -> float:
    return datetime(*fields, tzinfo=tz).timestamp()


# -- expressions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    ["* * * * *", "*/2 * * * * *", "0 4 * * 1-5", "0 0 * * * sun", "@hourly", "0 0 L * *"],
)
def test_pm2_forms_are_accepted(expr):
    assert check_cron(f"  {expr} ") == expr


@pytest.mark.parametrize("expr", ["0", "", " 0 "])
def test_zero_and_empty_pass_and_disable(expr):
    assert cron.is_disabled(check_cron(expr))


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("61 * * * *", "minute field '61'"),
        ("* 25 * * *", "hour field '25'"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 9", "day-of-week field '9'"),
        ("99 * * * * *", "second field '99'"),
        ("0 99 * * * *", "minute field '99'"),
        ("*/0 * * * *", "minute field '*/0'"),
    ],
)
def test_a_bad_field_is_named(expr, field):
    with pytest.raises(ValueError, match=re.escape(f"the {field} is wrong")) as info:
        check_cron(expr)
    assert "out of range" in str(info.value) or "not acceptable" in str(info.value)


@pytest.mark.parametrize("expr", ["* * * *", "1 2 3 4 5 6 7", "5"])
def test_only_5_or_6_fields(expr):
    # croniter reads a 7th field as the year; croner (PM2) refuses it, so do we
    with pytest.raises(ValueError, match=r"write 5 fields .* or 6 with the seconds first"):
        check_cron(expr)


def test_an_expression_that_never_fires_is_refused():
    with pytest.raises(ValueError, match="never fires"):
        check_cron("0 0 30 2 *")


def test_time_zones():
    assert check_tz(" Europe/Paris ") == "Europe/Paris"
    assert check_tz("") == ""
    for bad in ("Mars/Olympus", "europe/paris", "/etc/passwd", "../etc"):
        with pytest.raises(ValueError, match=f"unknown time zone '{bad}'"):
            check_tz(bad)


# -- the schedule ------------------------------------------------------------------


def test_six_fields_have_the_seconds_first():
    after = at(2024, 1, 1, 12, 0, 3) + 0.5
    assert next_tick("*/2 * * * * *", UTC, after) == at(2024, 1, 1, 12, 0, 4)
    assert next_tick("30 * * * * *", UTC, after) == at(2024, 1, 1, 12, 0, 30)
    assert next_tick("0 */5 * * * *", UTC, after) == at(2024, 1, 1, 12, 5)
    assert next_tick("* * * * *", UTC, after) == at(2024, 1, 1, 12, 1)


def test_the_next_tick_is_strictly_after():
    tick = at(2024, 1, 1, 12, 0, 4)
    assert next_tick("*/2 * * * * *", UTC, tick) == tick + 2
    assert next_delay("*/2 * * * * *", UTC, tick - 0.25) == 0.25


def test_cron_tz_reads_the_expression_in_that_zone():
    noon = "0 12 * * *"
    assert next_tick(noon, PARIS, at(2024, 1, 1, 10)) == at(2024, 1, 1, 11)  # CET, UTC+1
    assert next_tick(noon, PARIS, at(2024, 7, 1, 9)) == at(2024, 7, 1, 10)  # CEST, UTC+2
    assert next_tick(noon, PARIS, at(2024, 1, 1, 12)) == at(2024, 1, 2, 11)


def test_without_cron_tz_the_local_time_is_used(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert next_tick("0 12 * * *", None, at(2024, 1, 1, 0)) == at(2024, 1, 1, 3)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_daylight_saving_changes_with_cron_tz():
    # 2024-03-31 in Paris, 02:00 becomes 03:00: the 02:30 job runs once, after the jump
    spring = next_tick("30 2 * * *", PARIS, at(2024, 3, 31, 0))
    assert at(2024, 3, 31, 1) <= spring < at(2024, 3, 31, 2)  # 03:00-04:00 CEST
    assert next_tick("30 2 * * *", PARIS, spring) == at(2024, 4, 1, 2, 30, tz=PARIS)
    # 2024-10-27, 03:00 becomes 02:00 again: croniter fires 02:30 in both passes (documented)
    first = next_tick("30 2 * * *", PARIS, at(2024, 10, 26, 23))
    assert (first, next_tick("30 2 * * *", PARIS, first)) == (
        at(2024, 10, 27, 0, 30),
        at(2024, 10, 27, 1, 30),
    )


def test_a_late_wakeup_fires_once_and_skips_the_backlog():
    due = at(2024, 1, 1, 12)
    eight_hours_later = due + 8 * 3600 + 0.3  # a laptop suspended over night
    wakeup = plan_wakeup("* * * * * *", UTC, due, eight_hours_later)
    assert wakeup.fire
    assert wakeup.missed == cron.MISSED_LIMIT  # counted up to the limit, never replayed
    assert wakeup.next_due == eight_hours_later + 0.7  # the next tick after now, not after due
    hourly = plan_wakeup("0 * * * *", UTC, due, due + 3.5 * 3600)
    assert (hourly.fire, hourly.missed, hourly.next_due) == (True, 3, due + 4 * 3600)


def test_a_tick_on_time_misses_nothing():
    due = at(2024, 1, 1, 12, 0, 2)
    wakeup = plan_wakeup("*/2 * * * * *", UTC, due, due + 0.01)
    assert (wakeup.fire, wakeup.missed, wakeup.next_due) == (True, 0, due + 2)
    assert missed_ticks("*/2 * * * * *", UTC, due, due + 1.99) == 0
    assert missed_ticks("*/2 * * * * *", UTC, due, due + 2) == 1


def test_an_early_wakeup_keeps_waiting():
    # a capped sleep (MAX_SLEEP) ends before the tick: nothing fires, the tick stays
    due = at(2024, 1, 1, 12)
    wakeup = plan_wakeup("0 * * * *", UTC, due, due - cron.MAX_SLEEP)
    assert (wakeup.fire, wakeup.missed, wakeup.next_due) == (False, 0, due)


# -- in a daemon -------------------------------------------------------------------


@pytest.fixture
def pm(corral_daemon: Callable[..., corral.Client]) -> corral.Client:
    """An in-process daemon with the cron plugin; its events are in ``pm.events``."""
    return corral_daemon(plugins=[cron])


def cron_restarts(pm: corral.Client, name: str) -> list[Any]:
    return pm.events.matching("restart", name, reason="cron ")


def info(pm: corral.Client, name: str) -> Any:
    return pm.describe(name)[0]


def intervals(events: list[Any]) -> list[float]:
    return [(b.at - a.at) / 1000 for a, b in itertools.pairwise(events)]


def test_every_second(pm):
    pm.start(SLEEPER, {"name": "tick", "cron_restart": "* * * * * *"})
    wait_for_event(pm, "restart", "tick", reason="cron ", count=4)
    ticks = cron_restarts(pm, "tick")[:4]
    assert [e.reason for e in ticks] == ["cron * * * * * *"] * 4
    assert all(0.5 <= gap <= 1.5 for gap in intervals(ticks)), intervals(ticks)
    assert info(pm, "tick").restart_time >= 4
    assert info(pm, "tick").status == "online"


def test_every_two_seconds_on_even_seconds(pm):
    pm.start(SLEEPER, {"name": "even", "cron": "*/2 * * * * *"})
    wait_for_event(pm, "restart", "even", reason="cron ", count=3, timeout=12)
    ticks = cron_restarts(pm, "even")[:3]
    assert all(1.5 <= gap <= 2.5 for gap in intervals(ticks)), intervals(ticks)
    assert all(int(e.at / 1000) % 2 == 0 for e in ticks), [e.at for e in ticks]


def test_a_job_with_autorestart_false_runs_at_each_tick(pm, tmp_path):
    job = python_app(tmp_path, "job.py", "import time\nprint('ran', time.time(), flush=True)\n")
    pm.start(job, {"name": "job", "autorestart": False, "cron_restart": "* * * * * *"})
    wait_for(lambda: info(pm, "job").status == "stopped", what="the first run exits")
    wait_for(lambda: len(out_lines(info(pm, "job"))) >= 3, timeout=10, what="a run per tick")
    runs = out_lines(info(pm, "job"))
    assert all(line.startswith("ran ") for line in runs)
    # each tick starts a stopped job, which is no restart (PM2's restartProcessId adds 1
    # only to an online or launching app: lib/God/ActionMethods.js)
    assert info(pm, "job").restart_time == 0


def test_the_job_survives_stop_as_in_pm2(pm):
    pm.start(SLEEPER, {"name": "kept", "cron_restart": "* * * * * *"})
    wait_for(lambda: info(pm, "kept").status == "online")
    pm.stop("kept")
    assert info(pm, "kept").status == "stopped"
    stopped_at = time.time() * 1000
    wait_for(lambda: info(pm, "kept").status == "online", timeout=5, what="the tick starts it")
    assert any(e.at > stopped_at for e in cron_restarts(pm, "kept"))


def test_delete_removes_the_job(pm):
    pm.start(SLEEPER, {"name": "gone", "cron_restart": "* * * * * *"})
    wait_for_event(pm, "restart", "gone", reason="cron ", timeout=5)
    assert [job["name"] for job in pm.call("cron_jobs")] == ["gone"]
    pm.delete("gone")
    deleted_at = time.time()
    assert pm.call("cron_jobs") == []
    # two ticks later, still nothing (a deleted app has no process to restart anyway,
    # so watch the next app that takes the same pm_id too)
    pm.start(SLEEPER, {"name": "next"})
    wait_for(lambda: time.time() > int(deleted_at) + 2.2, what="two more ticks")
    assert all(e.at < deleted_at * 1000 for e in cron_restarts(pm, "gone"))
    assert info(pm, "next").restart_time == 0


def test_zero_disables_and_a_restart_can_change_the_job(pm):
    pm.start(SLEEPER, {"name": "off", "cron": 0})
    assert info(pm, "off").pm2_env["cron_restart"] == "0"
    assert pm.call("cron_jobs") == []
    pm.restart("off", options={"cron_restart": "0 4 * * *", "cron_tz": "UTC"})
    [job] = pm.call("cron_jobs")
    assert (job["cron"], job["tz"], job["error"]) == ("0 4 * * *", "UTC", None)
    assert job["next"] == next_tick("0 4 * * *", UTC, time.time()) * 1000
    pm.restart("off", options={"cron_restart": 0})
    assert pm.call("cron_jobs") == []


def test_a_bad_expression_is_refused_at_start(pm):
    with pytest.raises(OptionError, match=r"cron_restart: '61 \* \* \* \*' .*minute field '61'"):
        pm.start(SLEEPER, {"name": "bad", "cron_restart": "61 * * * *"})
    with pytest.raises(OptionError, match=r"has 4 fields.*\(given as 'cron'\)"):
        pm.start(SLEEPER, {"name": "bad", "cron": "* * * *"})
    assert pm.list() == []


def test_cron_tz(pm):
    pm.start(SLEEPER, {"name": "paris", "cron_restart": "0 12 * * *", "cron_tz": "Europe/Paris"})
    [job] = pm.call("cron_jobs")
    assert job["tz"] == "Europe/Paris"
    noon = datetime.fromtimestamp(job["next"] / 1000, PARIS)
    assert (noon.hour, noon.minute) == (12, 0)
    with pytest.raises(OptionError, match="cron_tz: unknown time zone 'Paris'"):
        pm.start(SLEEPER, {"name": "nowhere", "cron_restart": "0 12 * * *", "cron_tz": "Paris"})


def test_an_expression_that_cannot_be_scheduled_is_reported(pm):
    # validation at start keeps these out; options that skipped it are still caught
    pm.start(SLEEPER, {"name": "late"})
    daemon = pm.events.daemon

    async def corrupt() -> None:
        proc = next(p for p in daemon.processes() if p.name == "late")
        proc.options["cron_restart"] = "61 * * * *"
        cron.scheduler(daemon).sync(proc)

    asyncio.run_coroutine_threadsafe(corrupt(), daemon.loop).result(5)
    failed = pm.events.matching(cron.FAILED_EVENT)
    assert len(failed) == 1
    assert "minute field '61'" in failed[0].reason
    [job] = pm.call("cron_jobs")
    assert job["next"] is None
    assert "minute field '61'" in job["error"]


def test_without_the_plugin_the_options_name_it(corral_daemon):
    client = corral_daemon(plugins=[])
    for key in ("cron_restart", "cron", "cronRestart", "cron_tz"):
        with pytest.raises(PluginError, match="needs the plugin 'cron'"):
            client.start(SLEEPER, {"name": "x", key: "* * * * *"})


def test_an_app_added_stopped_is_scheduled(pm):
    # PM2 registers the cron before it looks at autostart
    pm.start(SLEEPER, {"name": "later", "autostart": False, "cron_restart": "* * * * * *"})
    wait_for(lambda: info(pm, "later").status == "online", timeout=3, what="the tick starts it")


def test_corral_cron_lists_the_jobs(pm):
    import click
    from click.testing import CliRunner

    group = click.Group("corral")
    cron.corral_cli(group)
    assert CliRunner().invoke(group, ["cron"]).output == "no cron jobs\n"
    pm.start(SLEEPER, {"name": "daily", "cron_restart": "0 4 * * *", "cron_tz": "UTC"})
    result = CliRunner().invoke(group, ["cron"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("  0 daily  0 4 * * * (UTC)  next: ")

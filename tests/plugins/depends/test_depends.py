"""The depends plugin: real apps that start in the order their dependencies allow."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

import corral
from corral.plugins import depends, health
from corral.testing import wait_for, wait_for_event
from tests.conftest import PY, out_lines, python_app, run_cli

# Prints when it started, then (argv[1] > 0) sleeps that long, says ready and
# creates the file argv[2] if given, or (argv[1] < 0) exits with -argv[1] - 1 after
# a moment (a one-shot job).
APP = """\
import signal, sys, time
import corral.child

def bye(*_):
    print(f"stopping {time.time()}", flush=True)
    time.sleep(0.2)
    sys.exit(0)

signal.signal(signal.SIGINT, bye)
print(f"started {time.time()}", flush=True)
delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0
if delay < 0:
    time.sleep(0.3)
    sys.exit(int(-delay) - 1)
time.sleep(delay)
corral.child.ready()
if len(sys.argv) > 2:
    open(sys.argv[2], "w").close()
time.sleep(3600)
"""


@pytest.fixture
def pm(corral_daemon: Callable[..., corral.Client]) -> corral.Client:
    return corral_daemon(plugins=[depends, health])


def app(tmp_path, name: str, arg: float = 0, **options: object) -> dict:
    return {
        "name": name,
        "script": python_app(tmp_path, f"{name}.py", APP),
        "exec_interpreter": PY,
        "args": [str(arg)],
        **options,
    }


def start_events(pm: corral.Client) -> dict[str, corral.ProcessEvent]:
    return {e.name: e for e in pm.events.matching("start")}


def test_an_app_waits_for_its_dependency_to_be_ready(pm, tmp_path):
    flag = tmp_path / "db.up"
    check = {"exec": f"test -e {flag}", "interval": 100, "role": "readiness"}
    db = {**app(tmp_path, "db", 0.8, health={**check, "failure_threshold": 50})}
    db["args"].append(str(flag))
    web = app(tmp_path, "web", depends_on={"db": "healthy"})
    worker = app(tmp_path, "worker")  # depends on nothing: at once
    began = time.time()
    pm.start([web, worker, db])
    (held,) = pm.describe("web")
    assert held.status == "stopped" and held.pid is None
    assert held.pm2_env["depends_status"] == {"waiting_for": ["db (healthy)"]}
    assert pm.call("depends") == {str(held.pm_id): {"name": "web", "waiting_for": ["db (healthy)"]}}
    assert pm.describe("worker")[0].status == "online"
    described = run_cli("describe", "web").stdout.splitlines()
    row = next(line for line in described if line.startswith("│ depends on "))
    assert " db (healthy); waiting for db (healthy) " in row
    event = wait_for_event(pm, "start", "web", reason="dependencies met")
    assert event.reason == "dependencies met: db (healthy)"
    db_ready = pm.describe("db")[0].ready_at / 1000
    assert db_ready - began >= 0.8
    assert event.at / 1000 >= db_ready
    (now,) = pm.describe("web")
    assert now.status == "online" and "depends_status" not in now.pm2_env
    assert now.restart_time == 0


def test_a_chain_and_a_job_that_must_complete(pm, tmp_path):
    migrate = app(tmp_path, "migrate", -1, autorestart=False)  # exits 0
    api = app(tmp_path, "api", depends_on={"migrate": "completed"})
    front = app(tmp_path, "front", depends_on=["api"])
    pm.start([front, api, migrate])
    wait_for(lambda: pm.describe("front")[0].status == "online", what="front online")
    events = start_events(pm)
    assert events["api"].at >= events["migrate"].at + 300
    assert events["front"].at >= events["api"].at
    assert pm.describe("migrate")[0].status == "stopped"


def test_a_job_that_fails_keeps_its_dependents_waiting(pm, tmp_path):
    migrate = app(tmp_path, "migrate", -3, autorestart=False)  # exits 2
    api = app(tmp_path, "api", depends_on={"migrate": "completed"})
    pm.start([api, migrate])
    wait_for_event(pm, "exit", "migrate")
    time.sleep(0.3)
    (held,) = pm.describe("api")
    assert held.status == "stopped"
    assert held.pm2_env["depends_status"] == {"waiting_for": ["migrate (completed)"]}


def test_a_dependency_started_later_releases_the_app(pm, tmp_path):
    pm.start(app(tmp_path, "cache", autostart=False))
    pm.start(app(tmp_path, "web", depends_on=["cache"]))
    assert pm.describe("web")[0].status == "stopped"
    pm.start("cache")
    wait_for(lambda: pm.describe("web")[0].status == "online", what="web online")


@pytest.mark.parametrize(
    ("apps", "words"),
    [
        ([("a", ["b"]), ("b", ["a"])], "a cycle: a -> b -> a"),
        ([("a", ["a"])], "a cycle: a -> a"),
        ([("a", ["b"]), ("b", ["c"]), ("c", ["a"])], "a cycle: a -> b -> c -> a"),
        ([("a", ["nope"])], "a needs nope, which is in neither this start"),
        ([("a", {"b": "alive"}), ("b", [])], "the condition is one of started, healthy"),
        ([("a", 5)], "give a list of app names"),
    ],
)
def test_a_bad_graph_is_refused_and_nothing_starts(pm, tmp_path, apps, words):
    batch = [app(tmp_path, name, depends_on=needs) for name, needs in apps]
    with pytest.raises(corral.OptionError, match="depends_on") as caught:
        pm.start(batch)
    assert words in str(caught.value)
    assert pm.list() == []


def test_resurrect_holds_the_dependent_until_its_dependency_is_up(pm, tmp_path):
    flag = tmp_path / "db.up"
    check = {"exec": f"test -e {flag}", "interval": 100, "role": "readiness"}
    db = app(tmp_path, "db", 0.6, health={**check, "failure_threshold": 50})
    db["args"].append(str(flag))
    web = app(tmp_path, "web", depends_on={"db": "healthy"})
    pm.start([db, web])
    wait_for(lambda: pm.describe("web")[0].status == "online", what="web online")
    pm.dump()
    pm.delete("all")
    flag.unlink()
    pm.resurrect()
    assert pm.describe("web")[0].status == "stopped"
    event = wait_for_event(pm, "start", "web", since=0, count=2, reason="dependencies met")
    assert event.at / 1000 >= pm.describe("db")[0].ready_at / 1000


def stamp(pm: corral.Client, name: str, word: str) -> float:
    def find() -> list[str]:
        return [x for x in out_lines(pm.describe(name)[0]) if x.startswith(word)]

    return float(wait_for(find, what=f"{name} printed {word!r}")[-1].split()[1])


def test_stop_all_stops_dependents_first(pm, tmp_path):
    db = app(tmp_path, "db")
    api = app(tmp_path, "api", depends_on=["db"])
    web = app(tmp_path, "web", depends_on={"api": "started"})
    pm.start([db, api, web])
    for name in ("db", "api", "web"):
        stamp(pm, name, "started")  # its SIGINT handler is in place
    pm.stop("all")
    web_at, api_at, db_at = (stamp(pm, n, "stopping") for n in ("web", "api", "db"))
    assert web_at + 0.2 <= api_at and api_at + 0.2 <= db_at  # each waited for the one before


def test_a_start_of_a_stopped_app_waits_for_its_dependency(pm, tmp_path):
    pm.start([app(tmp_path, "db", autostart=False), app(tmp_path, "web", depends_on=["db"])])
    assert [i.status for i in pm.describe("web")] == ["stopped"]
    pm.stop("web")  # a user's stop ends the wait
    assert pm.call("depends") == {}
    pm.start("web")  # held again
    assert pm.describe("web")[0].status == "stopped"
    assert pm.describe("web")[0].pm2_env["depends_status"] == {"waiting_for": ["db (started)"]}
    pm.start("db")
    wait_for(lambda: pm.describe("web")[0].status == "online", what="web online")


def test_a_stopped_held_app_stays_stopped(pm, tmp_path):
    pm.start([app(tmp_path, "db", autostart=False), app(tmp_path, "web", depends_on=["db"])])
    pm.stop("web")
    pm.start("db")
    wait_for(lambda: pm.describe("db")[0].status == "online", what="db online")
    time.sleep(0.3)
    assert pm.describe("web")[0].status == "stopped"


def test_a_deleted_dependency_is_said(pm, tmp_path):
    pm.start([app(tmp_path, "db", autostart=False), app(tmp_path, "web", depends_on=["db"])])
    pm.delete("db")
    pm.start(app(tmp_path, "other"))  # any event: the held app is looked at again
    waiting = pm.describe("web")[0].pm2_env["depends_status"]["waiting_for"]
    assert waiting == ["db (started): no such app, start it or change depends_on"]


def test_the_cli_says_a_held_app_waits(pm, tmp_path):
    pm.start([app(tmp_path, "db", autostart=False), app(tmp_path, "web", depends_on=["db"])])
    pm.stop("web")
    done = run_cli("start", "web")
    assert "note: web (pm_id 1) waits for db (started) (depends_on): it starts then" in (
        done.stdout + done.stderr
    )
    assert "finished" not in done.stdout + done.stderr


def test_an_update_keeps_a_held_app_waiting(corral_home, tmp_path, monkeypatch):
    """The daemon after ``corral update`` asks the plugin again: a held app is still
    held, then started once its dependency is up; one its user stopped stays stopped."""
    monkeypatch.setenv("CORRAL_PLUGINS", "depends,health")
    flag = tmp_path / "db.up"
    check = {"exec": f"test -e {flag}", "interval": 100, "role": "readiness"}
    db = app(tmp_path, "db", 0, health={**check, "failure_threshold": 1000})
    config = tmp_path / "apps.json"
    web, admin = (app(tmp_path, n, depends_on={"db": "healthy"}) for n in ("web", "admin"))
    config.write_text(json.dumps({"apps": [db, web, admin]}))
    assert run_cli("start", str(config)).returncode == 0
    assert run_cli("stop", "admin").returncode == 0
    done = run_cli("update", "--json")
    assert done.returncode == 0, done.stderr
    with corral.connect() as pm:
        wait_for(lambda: pm.describe("db")[0].status == "online", what="db back")
        (web_now,) = pm.describe("web")
        assert web_now.status == "stopped"
        assert web_now.pm2_env["depends_status"] == {"waiting_for": ["db (healthy)"]}
        flag.touch()
        wait_for(lambda: pm.describe("web")[0].status == "online", what="web started")
        assert pm.describe("admin")[0].status == "stopped"
        assert pm.call("depends") == {}

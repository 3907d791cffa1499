"""Apps with the same environment share one read-only dict in the daemon
(corral.supervisor.envshare), and each child still sees its own environment."""

from __future__ import annotations

import copy
import json
import os
import pickle
from pathlib import Path

import pytest

from corral.hookspecs import hookimpl
from corral.supervisor.envshare import SharedEnv, share
from corral.supervisor.process import ManagedProcess
from corral.testing import wait_for
from tests.conftest import python_app

SHOW = """\
import json, os, time
print(json.dumps({k: os.environ.get(k) for k in ("INHERITED", "OWN", "STAGE", "name")}),
      flush=True)
time.sleep(60)
"""


class Apps:
    """A plugin that keeps the daemon's records of the apps it adds."""

    def __init__(self) -> None:
        self.procs: dict[str, ManagedProcess] = {}

    @hookimpl
    def corral_process_added(self, app: ManagedProcess) -> None:
        self.procs[app.name] = app


def seen(info, count: int = 1) -> dict:
    """The environment the app's ``count``-th run printed."""
    path = Path(info.out_log)

    def printed() -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    wait_for(lambda: len(printed()) >= count, what=f"{info.name} printed run {count}")
    return json.loads(printed()[count - 1])


def test_apps_share_the_env_and_each_child_sees_its_own(
    corral_daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps = Apps()
    pm = corral_daemon(plugins=[apps])
    script = python_app(tmp_path, "show.py", SHOW)
    monkeypatch.setenv("INHERITED", "first")
    config = tmp_path / "eco.json"
    config.write_text(json.dumps({"apps": [
        {"name": "a", "script": script},
        {"name": "b", "script": script},
        {"name": "c", "script": script, "env": {"OWN": "c"}, "env_production": {"STAGE": "p"}},
    ]}))  # fmt: skip
    infos = {i.name: i for i in pm.start(str(config), env_name="production")}
    a, b, c = (apps.procs[n] for n in "abc")
    assert a.env is b.env  # one dict for the apps with the same environment
    assert c.env is not a.env
    assert seen(infos["a"]) == {"INHERITED": "first", "OWN": None, "STAGE": None, "name": "a"}
    assert seen(infos["b"]) == {"INHERITED": "first", "OWN": None, "STAGE": None, "name": "b"}
    assert seen(infos["c"]) == {"INHERITED": "first", "OWN": "c", "STAGE": "p", "name": "c"}

    monkeypatch.setenv("INHERITED", "second")
    pm.restart("b", update_env=True)
    pm.restart("a")
    assert seen(infos["b"], 2)["INHERITED"] == "second"
    assert seen(infos["a"], 2)["INHERITED"] == "first"  # a's shared env did not move
    assert a.env["INHERITED"] == "first" and b.env["INHERITED"] == "second"
    described = {n: pm.describe(n)[0].pm2_env for n in "ab"}
    assert described["a"]["env"]["INHERITED"] == described["a"]["INHERITED"] == "first"
    assert described["b"]["env"]["INHERITED"] == described["b"]["INHERITED"] == "second"


def test_a_shared_env_is_read_only_and_its_copies_are_plain_dicts() -> None:
    env = share({"A": "1", "B": "2"})
    assert share({"A": "1", "B": "2"}) is env
    assert share({"B": "2", "A": "1"}) is not env  # another order: another encoding
    for change in (
        lambda: env.__setitem__("A", "3"),
        lambda: env.update(A="3"),
        lambda: env.pop("A"),
        lambda: env.setdefault("C", "3"),
        lambda: env.clear(),
    ):
        with pytest.raises(TypeError, match=r"replace proc\.env"):
            change()
    assert env == {"A": "1", "B": "2"}
    for made in (
        dict(env),
        {**env},
        copy.copy(env),
        copy.deepcopy(env),
        pickle.loads(pickle.dumps(env)),
    ):
        assert type(made) is dict and made == env
        made["A"] = "changed"  # a copy is the caller's
    assert env["A"] == "1"


def test_a_process_env_is_shared_whatever_sets_it() -> None:
    def make(env: dict) -> ManagedProcess:
        return ManagedProcess(
            pm_id=0, name="x", options={}, env=env, script="/x", interpreter="none"
        )

    one, two = make(dict(os.environ)), make(dict(os.environ))
    assert type(one.env) is SharedEnv and one.env is two.env
    two.env = {**two.env, "NEW": "1"}  # a replacement, as restart --update-env does
    assert two.env["NEW"] == "1" and "NEW" not in one.env and type(two.env) is SharedEnv

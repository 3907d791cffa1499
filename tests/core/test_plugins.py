"""Plugins: loaded by entry point, by name, as objects; hooks dispatched and isolated."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import corral
from corral.errors import PluginError
from corral.hooks import load_plugins
from tests.conftest import wait_for

PLUGIN = textwrap.dedent(
    '''
    """A test plugin: an option, an env change, an event log, an RPC command, a broken hook."""
    import json, os
    import corral

    @corral.hookimpl
    def corral_app_options():
        return [corral.Option("greeting", "str", help="text put into GREETING")]

    @corral.hookimpl
    def corral_before_spawn(app, spawn):
        if app.options.get("greeting"):
            spawn.env["GREETING"] = app.options["greeting"]

    @corral.hookimpl
    def corral_process_event(event):
        with open(os.path.join(os.environ["CORRAL_HOME"], "events.jsonl"), "a") as f:
            f.write(json.dumps({"event": event.event, "name": event.name}) + "\\n")

    @corral.hookimpl
    def corral_log_chunk(app, stream, data):
        raise RuntimeError("this hook always fails")

    @corral.hookimpl
    def corral_rpc_commands():
        def hello(daemon, who="world"):
            return f"hello {who} from {len(daemon.processes())} apps"

        return {"hello": hello}
    '''
)


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``fakeplug`` installed as a distribution with a ``corral`` entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "fakeplug.py").write_text(PLUGIN)
    info = site / "fakeplug-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[corral]\nfake = fakeplug\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("CORRAL_PLUGINS", raising=False)
    return site


def read_events(home: Path) -> list[dict]:
    path = home / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_entry_point_plugin_in_a_detached_daemon(corral_home, installed_plugin, app_path):
    client = corral.connect()
    try:
        records = {r["name"]: r for r in client.plugins()}
        assert records["fake"]["dist"] == "fakeplug" and records["fake"]["version"] == "1.2.3"
        info = client.start(app_path("sleeper.py"), {"greeting": "from-plugin"})[0]
        out = Path(info.out_log)
        wait_for(lambda: out.exists() and "GREETING=from-plugin" in out.read_text())
        # the failing log hook is reported with the plugin's name; the daemon lives on
        wait_for(lambda: "this hook always fails" in (corral_home / "corral.log").read_text())
        log = [json.loads(x) for x in (corral_home / "corral.log").read_text().splitlines()]
        assert any(e.get("plugin") == "fake" for e in log)
        assert client.describe(0)[0].status == "online"
        assert any(
            "this hook always fails" in e
            for e in {r["name"]: r for r in client.plugins()}["fake"]["errors"]
        )
        assert client.call("hello", who="you") == "hello you from 1 apps"
        client.stop(0)
        names = [e["event"] for e in read_events(corral_home)]
        assert names[:2] == ["online", "start"] and "stop" in names and names[-1] == "exit"
    finally:
        client.kill_daemon()


def test_corral_plugins_env_leaves_a_plugin_out(
    corral_home, installed_plugin, monkeypatch, app_path
):
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    client = corral.connect()
    try:
        assert client.plugins() == []
        # an installed plugin left out: its option is refused naming it, never ignored
        with pytest.raises(PluginError, match="greeting needs the plugin 'fake'"):
            client.start(app_path("sleeper.py"), {"greeting": "x"})
    finally:
        client.kill_daemon()


def test_connect_plugins_by_name(corral_home, installed_plugin):
    client = corral.connect(plugins=["fake"])
    try:
        assert [r["name"] for r in client.plugins()] == ["fake"]
    finally:
        client.kill_daemon()


def test_unknown_plugin_name_is_an_error(installed_plugin):
    with pytest.raises(PluginError, match=r"unknown plugin 'nope'.*fake"):
        load_plugins(["nope"])


class Recorder:
    """A custom hook class, the ten lines a user writes."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.started = False

    @corral.hookimpl
    def corral_daemon_start(self, daemon):
        self.started = True

    @corral.hookimpl
    def corral_process_event(self, event):
        self.events.append(f"{event.event}:{event.name}")


def test_custom_hook_object_in_process(corral_home, app_path):
    recorder = Recorder()
    with corral.connect(no_daemon=True, plugins=[recorder]) as client:
        client.start(app_path("sleeper.py"), {"name": "obj"})
        client.stop("obj")
        assert recorder.started
    assert recorder.events[:2] == ["online:obj", "start:obj"]
    assert "stop:obj" in recorder.events


def test_option_declared_twice_is_refused():
    class Twice:
        @corral.hookimpl
        def corral_app_options(self):
            return [corral.Option("max_restarts", "int")]

    with pytest.raises(PluginError, match="max_restarts"):
        load_plugins([Twice()])


def test_misspelt_hook_is_refused():
    class Typo:
        @corral.hookimpl
        def corral_proces_event(self, event):
            pass

    with pytest.raises(Exception, match="corral_proces_event"):
        load_plugins([Typo()])


def test_every_hookspec_has_a_docstring():
    from corral import hookspecs

    modules = hookspecs.spec_modules()
    specs = [getattr(m, n) for m in modules for n in dir(m) if n.startswith("corral_")]
    assert len(specs) >= 8
    for spec in specs:
        assert spec.__doc__ and "versionadded" in spec.__doc__, spec.__name__


def test_every_spec_module_is_registered():
    # a hookspecs_*.py left out of SPEC_MODULES would be neither registered nor documented
    from corral import hookspecs

    on_disk = {p.stem for p in Path(hookspecs.__file__).parent.glob("hookspecs_*.py")}
    assert set(hookspecs.SPEC_MODULES) == on_disk
    names = [n for m in hookspecs.spec_modules() for n in dir(m) if n.startswith("corral_")]
    assert len(names) == len(set(names))  # each hook declared in one module
    assert set(names) <= set(vars(load_plugins([]).pm.hook))


def test_a_hooks_app_is_the_read_only_view_corral_api_process(corral_home, app_path):
    # the view names only what the daemon's slot has: every field of it reads on a real one
    import corral.api

    seen = {}

    class Looker:
        @corral.hookimpl
        def corral_daemon_start(self, daemon):
            seen["daemon"] = daemon

        @corral.hookimpl
        def corral_before_spawn(self, app, spawn):
            seen["app"], seen["spawn"] = app, spawn

    with corral.connect(no_daemon=True, plugins=[Looker()]) as client:
        info = client.start(app_path("sleeper.py"), {"name": "viewed"})[0]
        app = seen["app"]
        assert isinstance(app, corral.api.Process)
        assert isinstance(seen["spawn"], corral.api.SpawnSpec)
        assert seen["daemon"].processes() == [app]
        view = corral.api.Process
        fields = [n for n in [*vars(view), *view.__annotations__] if not n.startswith("_")]
        assert {"pm_id", "name", "options", "state", "pid", "log_paths", "pm2_env"} <= set(fields)
        for name in fields:
            getattr(app, name)
        assert (app.name, app.pid, app.state.value) == ("viewed", info.pid, "online")
        assert app.pm2_env(with_env=False)["status"] == "online"


class Sleepy:
    """A careless plugin: its event hook sleeps 5 s (a webhook with no timeout, say)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @corral.hookimpl
    def corral_process_event(self, event):
        import time

        time.sleep(5)
        self.seen.append(event.event)


def test_a_slow_hook_does_not_delay_replies(corral_home, app_path):
    import time

    sleepy = Sleepy()
    with corral.connect(no_daemon=True, plugins=[sleepy]) as client:
        client.start(app_path("sleeper.py"), {"name": "a"})  # its events queue up for Sleepy
        began = time.monotonic()
        client.start(app_path("sleeper.py"), {"name": "b"})
        client.restart("b")
        assert [p.status for p in client.list()] == ["online", "online"]
        # replies come while Sleepy still sleeps on the first event (a behavioural bound)
        assert time.monotonic() - began < 2.5
        assert sleepy.seen == []

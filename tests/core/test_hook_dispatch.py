"""Hook dispatch keeps pluggy's guarantees: firstresult, historic, bounded observer queues,
plugins denied by name, plugin errors reported to the other plugins."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

import corral
from corral.errors import PluginError
from corral.hooks import load_plugins
from tests.conftest import run_cli, wait_for


class Answers:
    """A corral_startup_script implementation that answers (or not) and counts its calls."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls = 0

    @corral.hookimpl
    def corral_startup_script(self, init_system, context):
        self.calls += 1
        return self.answer


class AnswersFirst(Answers):
    @corral.hookimpl(tryfirst=True)
    def corral_startup_script(self, init_system, context):
        return super().corral_startup_script(init_system, context)


def test_firstresult_returns_the_first_answer_and_calls_no_further():
    first = AnswersFirst("tryfirst-script")
    later = Answers("first-party-script")
    manager = load_plugins([later, first])
    assert manager.call_strict("corral_startup_script", init_system="systemd", context=None) == (
        "tryfirst-script"
    )
    assert (first.calls, later.calls) == (1, 0)


def test_firstresult_skips_none_and_returns_none_when_nobody_answers():
    declines = AnswersFirst(None)
    answers = Answers("script")
    manager = load_plugins([answers, declines])
    assert manager.call("corral_startup_script", init_system="rcd", context=None) == "script"
    assert (
        load_plugins([declines]).call("corral_startup_script", init_system="rcd", context=None)
        is None
    )


class Starts:
    def __init__(self) -> None:
        self.started: list[object] = []

    @corral.hookimpl
    def corral_daemon_start(self, daemon):
        self.started.append(daemon)


def test_daemon_start_is_historic_replayed_to_a_late_plugin_until_the_daemon_stops(corral_home):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        manager = client._inner.daemon.manager
        assert manager.pm.hook.corral_daemon_start.is_historic()  # the spec says so, as pluggy
        late = Starts()
        manager.register(late, name="late")
        assert late.started == [client._inner.daemon.api]
    after = Starts()
    manager.register(after, name="after")
    assert after.started == []  # the daemon stopped: nothing to replay


SLOW_PLUGIN = textwrap.dedent(
    '''
    """A careless plugin: corral_log_chunk blocks until the RPC command unblock is called."""
    import threading, time
    import corral

    gate = threading.Event()
    seen = {"chunks": 0, "ticks": []}

    @corral.hookimpl
    def corral_log_chunk(data):
        gate.wait()
        seen["chunks"] += 1
        for line in data.split(b"\\n"):
            if line.startswith(b"tick "):
                seen["ticks"].append(float(line.split()[1]))

    @corral.hookimpl
    def corral_rpc_commands():
        def unblock(daemon):
            gate.set()
            return time.time()

        return {"unblock": unblock, "seen": lambda daemon: seen}
    '''
)

CHATTY_APP = textwrap.dedent(
    """
    import sys, time
    line = b"x" * 65535 + b"\\n"
    for _ in range(1600):  # 100 MiB, in 64 KiB lines
        sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    open(sys.argv[1], "w").close()
    while True:
        print("tick", time.time(), flush=True)
        time.sleep(0.05)
    """
)


@pytest.fixture
def slow_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``slowplug`` installed as a distribution with the entry point ``slow``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "slowplug.py").write_text(SLOW_PLUGIN)
    info = site / "slowplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slowplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[corral]\nslow = slowplug\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def peak_rss(pid: int) -> int:
    """VmHWM: the most memory the process ever had resident, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_stuck_log_observer_costs_bounded_memory_and_resumes(corral_home, slow_plugin, tmp_path):
    client = corral.connect(plugins=["slow"])
    try:
        daemon = psutil.Process(client.daemon_pid)
        before = peak_rss(daemon.pid)
        app = tmp_path / "chatty.py"
        app.write_text(CHATTY_APP)
        done = tmp_path / "bulk-done"
        client.start(str(app), {"name": "chatty", "args": [str(done)]})
        wait_for(done.exists, timeout=120)
        growth = peak_rss(daemon.pid) - before
        # 100 MiB went through while the plugin was stuck: at most 8 MiB of it waits
        assert growth < 48 * 1024 * 1024, f"daemon peak RSS grew {growth >> 20} MiB"
        record = {r["name"]: r for r in client.plugins()}["slow"]
        dropped = record["dropped"]["corral_log_chunk"]
        assert dropped >= 50  # chunks are 64 KiB to 1 MiB: at least 92 MiB did not fit
        listed = run_cli("plugins", "--errors").stdout
        assert "slow: dropped" in listed and "corral_log_chunk" in listed
        log = (corral_home / "corral.log").read_text()
        assert log.count("plugin slow is behind") == 1  # once per streak

        unblocked = client.call("unblock")
        wait_for(lambda: any(t > unblocked for t in client.call("seen")["ticks"]), timeout=30)
        wait_for(lambda: "plugin slow caught up" in (corral_home / "corral.log").read_text())
    finally:
        client.kill_daemon()


def test_plugins_denied_by_name_are_left_out(corral_home, monkeypatch, app_path):
    monkeypatch.setenv("CORRAL_PLUGINS", "-watch,-cron")
    client = corral.connect()
    try:
        names = {r["name"] for r in client.plugins()}
        assert "watch" not in names and "cron" not in names and "memory" in names
        listed = run_cli("plugins").stdout
        assert "│ watch " not in listed and "│ memory " in listed and "│ watchdog " in listed
        with pytest.raises(corral.CorralError, match="needs the plugin 'watch'"):
            client.start(app_path("sleeper.py"), {"watch": True})
        assert client.list() == []
    finally:
        client.kill_daemon()


@pytest.mark.parametrize("value", ["memory,-watch", "-watch,memory", "-"])
def test_mixed_plugin_names_and_denials_are_refused(monkeypatch, value):
    monkeypatch.setenv("CORRAL_PLUGINS", value)
    with pytest.raises(PluginError, match=r"CORRAL_PLUGINS=.*-watch,-cron"):
        load_plugins()


def test_denying_an_unknown_plugin_names_the_installed_ones(monkeypatch):
    monkeypatch.setenv("CORRAL_PLUGINS", "-wacth")
    with pytest.raises(PluginError, match=r"unknown plugin 'wacth'.*watch"):
        load_plugins()


def test_a_denied_plugin_is_never_imported_and_cannot_be_registered(monkeypatch):
    monkeypatch.setenv("CORRAL_PLUGINS", "-watch")
    manager = load_plugins()
    assert "watch" not in manager.names() and manager.pm.is_blocked("watch")
    with pytest.raises(PluginError, match="left out by CORRAL_PLUGINS=-watch"):
        manager.register(Starts(), name="watch")


class Failing:
    """Its log hook always raises; it also listens for plugin errors (never its own)."""

    corral_runs_on_loop = True

    def __init__(self) -> None:
        self.reported: list[tuple[str, str, str]] = []

    @corral.hookimpl
    def corral_log_chunk(self, data):
        raise RuntimeError("chunk hook broke")

    @corral.hookimpl
    def corral_plugin_error(self, plugin, hook, error):
        self.reported.append((plugin, hook, str(error)))


class Reporter:
    """Hears of other plugins' errors, and fails while doing so."""

    def __init__(self) -> None:
        self.reported: list[tuple[str, str, str]] = []

    @corral.hookimpl
    def corral_plugin_error(self, daemon, plugin, hook, error):
        assert daemon is not None
        self.reported.append((plugin, hook, str(error)))
        raise ValueError("reporter broke too")


def test_plugin_error_reaches_the_other_plugins_and_never_recurses(corral_home, app_path):
    failing, reporter = Failing(), Reporter()
    plugins = [failing, reporter]
    with corral.connect(no_daemon=True, plugins=plugins) as client:
        client.start(app_path("sleeper.py"), {"name": "s"})
        wait_for(lambda: reporter.reported)
        manager = client._inner.daemon.manager
        assert reporter.reported[0] == ("Failing", "corral_log_chunk", "chunk hook broke")
        assert {p for p, _, _ in reporter.reported} == {"Failing"}
        # the reporter's own failure is recorded and logged, but reported to nobody
        assert failing.reported == []
        errors = manager.records["Reporter"].errors
        wait_for(lambda: any("reporter broke too" in e for e in errors))
        assert all(e.startswith("corral_plugin_error") for e in errors)
        assert client.describe("s")[0].status == "online"


def test_trace_plugins_logs_each_call_with_its_plugin(corral_home, monkeypatch, app_path):
    monkeypatch.setenv("CORRAL_TRACE_PLUGINS", "1")
    starts = Starts()
    with corral.connect(no_daemon=True, plugins=[starts]):
        pass
    lines = [json.loads(x) for x in (corral_home / "corral.log").read_text().splitlines()]
    traced = [e["event"] for e in lines if e["event"].startswith("hook corral_daemon_start")]
    assert traced and "plugin=Starts" in traced[0]


def test_a_full_queue_drops_chunks_and_messages_never_events():
    from corral.offload import PluginWorkers

    gate, entered, ran = threading.Event(), threading.Event(), []

    def busy(value):
        entered.set()
        gate.wait()

    def observer(value):
        ran.append(value)

    workers = PluginWorkers(lambda *error: None, max_pending=3, max_bytes=10)
    try:
        # the plugin's thread is busy in a first call: nothing leaves its queue until the
        # gate opens, so what is queued below is what counts (before, the thread could
        # take a chunk off the queue mid-test and a call meant to be dropped was taken)
        assert workers.submit("p", "corral_process_event", busy, ["first"])
        wait_for(entered.is_set)
        chunk = [b"12345"]
        kept = [workers.submit("p", "corral_log_chunk", observer, chunk) for _ in range(3)]
        assert kept == [True, True, False]  # 10 bytes of log data wait at most
        assert workers.submit("p", "corral_process_message", observer, [{"n": 1}])
        assert not workers.submit("p", "corral_process_message", observer, [{"n": 2}])
        assert all(workers.submit("p", "corral_process_event", observer, [i]) for i in range(500))
        assert workers.submit("q", "corral_log_chunk", len, chunk)  # another plugin: its own
        gate.set()
        wait_for(lambda: len(ran) == 503)
        assert ran[:3] == [b"12345", b"12345", {"n": 1}] and ran[3:503] == list(range(500))
        assert workers.submit("p", "corral_log_chunk", observer, chunk)  # caught up: taken again
    finally:
        gate.set()
        workers.close()

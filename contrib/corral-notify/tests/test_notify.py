"""The notify plugin: a real in-process daemon, real crashing apps, a real HTTP server."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import corral
import corral_notify

CRASHER = "import sys\nprint('crash', flush=True)\nsys.exit(3)\n"
SLEEPER = "import time\nwhile True:\n    time.sleep(3600)\n"
# 60 MB on its first run only (a marker file remembers it), small after its restart
GROWER = """\
import os, sys, time
marker = sys.argv[1]
if not os.path.exists(marker):
    open(marker, "w").close()
    data = b"\\x01" * (60 * 1024 * 1024)
while True:
    time.sleep(3600)
"""


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "it") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout} s (last value: {last!r})")


def app(tmp_path: Path, name: str, body: str, **options: object) -> dict:
    script = tmp_path / f"{name}.py"
    script.write_text(body)
    return {"script": str(script), "name": name, "exec_interpreter": sys.executable, **options}


class Webhook:
    """An HTTP server on 127.0.0.1 that records every POST and answers from a plan."""

    def __init__(self, statuses: list[int] | None = None, path: str = "/hook") -> None:
        self.posts: list[dict[str, Any]] = []  # {"path", "headers", "body", "status"}
        self.plan = list(statuses or [])  # answers for the first POSTs; 200 after
        self.gate = threading.Event()  # cleared: every POST waits for it
        self.gate.set()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.gate.wait(30)
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with hook.lock:
                    status = hook.plan.pop(0) if hook.plan else 200
                    hook.posts.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": json.loads(raw),
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self, status: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [p["body"] for p in self.posts if status is None or p["status"] == status]

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def env(corral_home, monkeypatch, webhook) -> pytest.MonkeyPatch:
    """The daemon-level settings: every app notifies the webhook; retries are quick."""
    monkeypatch.setenv("CORRAL_NOTIFY_URL", webhook.url)
    monkeypatch.setenv("CORRAL_NOTIFY_BACKOFF", "50")
    monkeypatch.delenv("CORRAL_NOTIFY_RATE", raising=False)
    monkeypatch.delenv("CORRAL_NOTIFY_TRIES", raising=False)
    return monkeypatch


class DaemonGrab:
    """A plugin object that keeps the daemon, to emit a burst of events on its loop."""

    daemon: Any = None

    @corral.hookimpl
    def corral_daemon_start(self, daemon: Any) -> None:
        self.daemon = daemon

    def emit(self, name: str, event: str, reasons: list[str]) -> None:
        daemon = self.daemon
        (proc,) = [p for p in daemon.processes() if p.name == name]
        done = threading.Event()

        def burst() -> None:
            for reason in reasons:
                daemon.emit(proc, event, reason=reason)
            done.set()

        daemon.loop.call_soon_threadsafe(burst)
        assert done.wait(10)


def status_of(pm: corral.Client, name: str) -> str:
    return pm.describe(name)[0].status


def settled(pm: corral.Client) -> dict[str, Any]:
    """notify_stats once nothing is queued or in flight."""

    def check() -> dict[str, Any] | None:
        stats = pm.call("notify_stats")
        done = stats["sent"] + stats["failed"]
        return stats if stats["queued"] == 0 and done >= 1 else None

    return wait_for(check, what="the notifier idle")


# -- what is sent --------------------------------------------------------------


def test_a_crash_loop_sends_one_restart_overlimit(env, webhook, tmp_path):
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        (info,) = pm.start(app(tmp_path, "crashy", CRASHER, max_restarts=3))
        wait_for(lambda: status_of(pm, "crashy") == "errored", what="crashy errored")
        (body,) = wait_for(webhook.bodies, what="a POST")
        stats = settled(pm)
    assert len(webhook.posts) == 1
    assert stats["sent"] == 1
    assert stats["failed"] == stats["retried"] == stats["dropped"] == 0
    post = webhook.posts[0]
    assert post["path"] == "/hook"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["User-Agent"].startswith("corral-notify/")
    host = socket.gethostname()
    assert body["event"] == "restart overlimit"
    assert body["name"] == "crashy"
    assert body["pm_id"] == info.pm_id
    assert body["namespace"] == "default"
    assert body["host"] == host
    assert "max_restarts (3)" in body["reason"]
    assert "code 3" in body["reason"]
    assert abs(body["at"] / 1000 - time.time()) < 60
    assert body["dropped"] == 0
    assert isinstance(body["restart_time"], int)
    assert body["text"] == (
        f"[{host}] crashy (pm_id {info.pm_id}) stopped restarting (restart overlimit): "
        f"{body['reason']}"
    )


def test_two_daemons_in_one_process_each_notify_their_own_apps(
    env, webhook, corral_home, second_corral_home, tmp_path
):
    """Each embedded daemon its own notifier: its own messages and counts, alive after the
    other stops."""
    a = corral.connect(corral_home, no_daemon=True, plugins=[corral_notify])
    try:
        with corral.connect(second_corral_home, no_daemon=True, plugins=[corral_notify]) as b:
            a.start(app(tmp_path, "a-crashy", CRASHER, max_restarts=2))
            b.start(app(tmp_path, "b-crashy", CRASHER, max_restarts=2))
            wait_for(lambda: len(webhook.bodies()) == 2, what="one POST from each daemon")
            assert sorted(body["name"] for body in webhook.bodies()) == ["a-crashy", "b-crashy"]
            assert settled(a)["sent"] == settled(b)["sent"] == 1
            a.disconnect()
            b.start(app(tmp_path, "b-again", CRASHER, max_restarts=2))
            wait_for(lambda: len(webhook.bodies()) == 3, what="b's POST after a stopped")
            assert webhook.bodies()[-1]["name"] == "b-again"
            assert settled(b)["sent"] == 2
    finally:
        a.disconnect()


def test_a_failing_webhook_gets_the_message_on_the_third_try(env, webhook, tmp_path):
    webhook.plan = [500, 503]
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        pm.start(app(tmp_path, "crashy", CRASHER, max_restarts=1))
        wait_for(lambda: webhook.bodies(200), what="a POST answered 200")
        stats = settled(pm)
    assert [p["status"] for p in webhook.posts] == [500, 503, 200]
    first, second, third = webhook.bodies()
    assert first == second == third  # the same message each time
    assert third["event"] == "restart overlimit"
    assert (stats["sent"], stats["retried"], stats["failed"]) == (1, 2, 0)


def test_it_gives_up_after_the_last_try_and_logs_without_the_secret(env, corral_home, tmp_path):
    hook = Webhook([500, 500, 500], path="/services/T000/B000/SECRET")
    env.setenv("CORRAL_NOTIFY_URL", hook.url)
    try:
        with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
            pm.start(app(tmp_path, "crashy", CRASHER, max_restarts=1))
            stats = settled(pm)
            assert pm.call("notify_stats")["url"] == hook.url.split("/services")[0] + "/…"
        assert (stats["sent"], stats["retried"], stats["failed"]) == (0, 2, 1)
        assert len(hook.posts) == 3
        log = (corral_home / "corral.log").read_text()
        assert "notify failed" in log
        assert "HTTP 500" in log
        assert "SECRET" not in log
    finally:
        hook.close()


def test_a_client_error_is_not_retried(env, webhook, tmp_path):
    webhook.plan = [404]
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        pm.start(app(tmp_path, "crashy", CRASHER, max_restarts=1))
        stats = settled(pm)
    assert len(webhook.posts) == 1
    assert (stats["sent"], stats["retried"], stats["failed"]) == (0, 0, 1)


def test_a_burst_is_cut_and_the_next_message_counts_the_drops(env, webhook, tmp_path):
    env.setenv("CORRAL_NOTIFY_RATE", "3/1s")
    grab = DaemonGrab()
    with corral.connect(no_daemon=True, plugins=[corral_notify, grab]) as pm:
        pm.start(app(tmp_path, "web", SLEEPER))
        pm.start(app(tmp_path, "other", SLEEPER))
        burst_at = time.monotonic()
        grab.emit("web", "errored", [f"burst {i}" for i in range(5)])
        grab.emit("other", "errored", ["other app"])  # its own budget
        wait_for(lambda: len(webhook.bodies()) == 4, what="four POSTs")
        stats = pm.call("notify_stats")
        assert stats["dropped"] == 2
        assert stats["waiting_drops"] == {"web": 2}
        # the window (1 s) has passed: the next message goes, with the drop count
        wait_for(lambda: time.monotonic() - burst_at > 1.05, what="the window to pass")
        grab.emit("web", "errored", ["after the window"])
        wait_for(lambda: len(webhook.bodies()) == 5, what="the fifth POST")
        assert pm.call("notify_stats")["waiting_drops"] == {}
    web = [b for b in webhook.bodies() if b["name"] == "web"]
    assert [b["reason"] for b in web] == ["burst 0", "burst 1", "burst 2", "after the window"]
    assert [b["dropped"] for b in web] == [0, 0, 0, 2]
    assert web[-1]["text"].endswith(
        "after the window (2 earlier messages about web dropped by the rate limit)"
    )
    (other,) = [b for b in webhook.bodies() if b["name"] == "other"]
    assert other["dropped"] == 0


def test_a_memory_restart_notifies_and_a_manual_one_does_not(env, webhook, tmp_path):
    with corral.connect(no_daemon=True, plugins=[corral_notify, "memory"]) as pm:
        options = app(tmp_path, "big", GROWER, args=[str(tmp_path / "marker")])
        pm.start(app(tmp_path, "small", SLEEPER))
        pm.restart("small")  # a restart event without a memory reason
        (info,) = pm.start({**options, "max_memory_restart": "40M", "memory_interval": 200})
        (body,) = wait_for(webhook.bodies, what="a POST")
        settled(pm)
    assert len(webhook.posts) == 1
    assert body["event"] == "restart"
    assert body["name"] == "big"
    assert body["pm_id"] == info.pm_id
    assert body["reason"].startswith("memory ")
    assert "over max_memory_restart 40M" in body["reason"]
    assert " big (pm_id 1) restarted for memory: memory " in body["text"]


def test_an_app_notify_url_overrides_the_daemon_url(env, webhook, tmp_path):
    own = Webhook()
    try:
        with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
            pm.start(app(tmp_path, "mine", CRASHER, max_restarts=1, notifyUrl=own.url))
            (body,) = wait_for(own.bodies, what="a POST to the app's URL")
            settled(pm)
            assert pm.describe("mine")[0].to_dict()["pm2_env"]["notify_url"] == own.url
        assert body["name"] == "mine"
        assert webhook.posts == []
    finally:
        own.close()


def test_without_a_daemon_url_only_apps_with_notify_url_send(env, webhook, tmp_path):
    env.delenv("CORRAL_NOTIFY_URL")
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        pm.start(app(tmp_path, "quiet", CRASHER, max_restarts=1))
        wait_for(lambda: status_of(pm, "quiet") == "errored", what="quiet errored")
        pm.start(app(tmp_path, "loud", CRASHER, max_restarts=1, notify_url=webhook.url))
        stats = settled(pm)
    assert stats["url"] is None
    assert stats["sent"] == 1
    # the worker posts in order: a message about quiet would have come first
    assert [b["name"] for b in webhook.bodies()] == ["loud"]


def test_posting_never_blocks_the_daemon(env, webhook, tmp_path):
    webhook.gate.clear()  # the server holds every POST until the gate opens
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        pm.start(app(tmp_path, "crashy", CRASHER, max_restarts=1))
        wait_for(lambda: status_of(pm, "crashy") == "errored", what="crashy errored")
        for _ in range(5):
            started = time.monotonic()
            assert pm.call("notify_stats")["sent"] == 0  # still in flight
            pm.list()
            assert time.monotonic() - started < 1.0
        webhook.gate.set()
        stats = settled(pm)
    assert stats["sent"] == 1


# -- settings and options ------------------------------------------------------


def test_notify_url_must_be_http(env, tmp_path):
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        with pytest.raises(corral.OptionError, match="notify_url must be an http:// or https://"):
            pm.start(app(tmp_path, "x", SLEEPER, notify_url="ftp://example.com/hook"))


def test_notify_url_names_the_plugin_when_it_is_not_loaded(corral_home, tmp_path):
    # installed but left out: the option is refused naming its plugin, never ignored
    with corral.connect(no_daemon=True, plugins=[]) as pm:
        with pytest.raises(corral.PluginError, match="notify_url needs the plugin 'notify'"):
            pm.start(app(tmp_path, "x", SLEEPER, notify_url="http://127.0.0.1:9/hook"))


def test_a_bad_setting_is_reported_and_the_daemon_runs(env):
    env.setenv("CORRAL_NOTIFY_RATE", "lots")
    with corral.connect(no_daemon=True, plugins=[corral_notify]) as pm:
        (record,) = pm.plugins()
        (error,) = record["errors"]
        assert "CORRAL_NOTIFY_RATE must be N or N/<duration>" in error
        with pytest.raises(corral.CorralError, match="not running in this daemon"):
            pm.call("notify_stats")
        assert pm.ping()


def test_loads_by_its_entry_point(env):
    with corral.connect(no_daemon=True, plugins=["notify"]) as pm:
        (record,) = pm.plugins()
        assert (record["name"], record["dist"]) == ("notify", "corral-notify")
        assert pm.call("notify_stats")["sent"] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", (10, 60.0)), ("0", (0, 60.0)), ("5/30s", (5, 30.0)), ("20/1h", (20, 3600.0))],
)
def test_parse_rate(value, expected):
    assert corral_notify.parse_rate(value) == expected


@pytest.mark.parametrize("value", ["", "-1", "1.5", "ten", "5/", "5/0", "5/soon"])
def test_a_bad_rate_names_the_variable(value):
    with pytest.raises(corral.OptionError, match="CORRAL_NOTIFY_RATE"):
        corral_notify.parse_rate(value)


def test_rate_limit_is_per_key_and_slides():
    limit = corral_notify.RateLimit(2, 10.0)
    assert [limit.admit("a", t) for t in (0.0, 1.0, 2.0, 3.0)] == [0, 0, None, None]
    assert limit.admit("b", 3.0) == 0
    assert limit.admit("a", 10.5) == 2  # the message of t=0 left the window
    assert limit.admit("a", 10.6) is None
    assert corral_notify.RateLimit(0, 10.0).admit("a", 0.0) == 0


def test_redact_keeps_only_scheme_host_and_port():
    assert corral_notify.redact("https://hooks.slack.com/services/T/B/x") == (
        "https://hooks.slack.com/…"
    )
    assert corral_notify.redact("http://127.0.0.1:8080/a?token=x") == "http://127.0.0.1:8080/…"

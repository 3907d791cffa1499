"""The prometheus plugin: a real in-process daemon, real apps, /metrics scraped over HTTP."""

from __future__ import annotations

import errno
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

import corral
import corral_prometheus
from corral.testing import kill_tree

SLEEPER = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(3600)\n"
BUSY = "while True:\n    pass\n"
CRASHER = "import sys\nsys.exit(3)\n"


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "it") -> object:
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


class Scrape:
    """One scrape of /metrics: ``value(name, **labels)`` finds a sample."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        self.types = {f.name: f.type for f in text_string_to_metric_families(text)}

    def find(self, metric: str, /, **labels: object) -> list[float]:
        wanted = {k: str(v) for k, v in labels.items()}
        return [
            s.value
            for s in self.samples
            if s.name == metric and all(s.labels.get(k) == v for k, v in wanted.items())
        ]

    def value(self, metric: str, /, **labels: object) -> float:
        found = self.find(metric, **labels)
        assert len(found) == 1, f"{metric}{labels}: {found} in\n{self.text}"
        return found[0]


def scrape(pm: corral.Client) -> Scrape:
    url = pm.call("prometheus_address")["url"]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return Scrape(response.read().decode())


@pytest.fixture
def pm(corral_home: Path) -> Iterator[corral.Client]:
    with corral.connect(no_daemon=True, plugins=[corral_prometheus]) as client:
        yield client


def test_status_memory_uptime_and_restarts_of_an_app(pm, tmp_path):
    (info,) = pm.start(app(tmp_path, "web", SLEEPER))
    wait_for(lambda: pm.describe("web")[0].status == "online", what="web online")
    labels = {"name": "web", "pm_id": info.pm_id, "namespace": "default"}

    metrics = scrape(pm)
    assert metrics.value("corral_app_status", **labels, status="online") == 1
    for status in ("launching", "stopping", "stopped", "errored", "waiting restart"):
        assert metrics.value("corral_app_status", **labels, status=status) == 0
    assert metrics.value("corral_app_memory_bytes", **labels) > 1024 * 1024
    assert metrics.value("corral_app_restarts_total", **labels) == 0
    assert metrics.types["corral_app_restarts"] == "counter"
    assert metrics.value("corral_app_unstable_restarts", **labels) == 0
    wait_for(lambda: scrape(pm).value("corral_app_uptime_seconds", **labels) > 0.05, what="uptime")

    pm.restart("web")
    wait_for(lambda: pm.describe("web")[0].status == "online", what="web online again")
    metrics = scrape(pm)
    assert metrics.value("corral_app_restarts_total", **labels) == 1
    assert metrics.value("corral_app_status", **labels, status="online") == 1

    pm.stop("web")
    metrics = scrape(pm)
    assert metrics.value("corral_app_status", **labels, status="stopped") == 1
    assert metrics.value("corral_app_status", **labels, status="online") == 0
    assert metrics.value("corral_app_memory_bytes", **labels) == 0
    assert metrics.value("corral_app_uptime_seconds", **labels) == 0


def test_cpu_of_a_busy_app(pm, tmp_path):
    (info,) = pm.start(app(tmp_path, "spin", BUSY))
    labels = {"name": "spin", "pm_id": info.pm_id, "namespace": "default"}
    # the first scrape sets the baseline; later ones average since the previous one
    wait_for(lambda: scrape(pm).value("corral_app_cpu_percent", **labels) > 20, what="cpu > 20 %")


def test_errored_app_and_unstable_restarts(pm, tmp_path):
    pm.start(app(tmp_path, "loop", CRASHER, max_restarts=1000, restart_delay=50))
    pm.start(app(tmp_path, "dead", CRASHER, max_restarts=2))
    loop = {"name": "loop", "pm_id": 0, "namespace": "default"}
    dead = {"name": "dead", "pm_id": 1, "namespace": "default"}
    wait_for(
        lambda: scrape(pm).value("corral_app_unstable_restarts", **loop) >= 2,
        what="unstable restarts counted",
    )
    pm.stop("loop")
    wait_for(
        lambda: scrape(pm).value("corral_app_status", **dead, status="errored") == 1,
        what="dead errored",
    )
    metrics = scrape(pm)
    restarts = pm.describe("dead")[0].restart_time
    assert restarts >= 1
    assert metrics.value("corral_app_restarts_total", **dead) == restarts
    assert sum(metrics.find("corral_app_status", **dead)) == 1  # exactly one status is set


def test_daemon_figures(pm, tmp_path):
    pm.start(app(tmp_path, "a", SLEEPER))
    pm.start(app(tmp_path, "b", SLEEPER, instances=2))
    metrics = scrape(pm)
    assert metrics.value("corral_daemon_apps") == 3
    assert metrics.value("corral_daemon_resident_memory_bytes") > 1024 * 1024
    assert metrics.value("corral_daemon_cpu_seconds_total") > 0
    assert metrics.types["corral_daemon_cpu_seconds"] == "counter"
    assert 0 <= metrics.value("corral_daemon_uptime_seconds") < 600
    assert metrics.value("corral_daemon_info", version=corral.__version__) == 1
    assert metrics.value("corral_prometheus_snapshot_errors_total") == 0
    # one series per instance: pm_id tells them apart
    assert len(metrics.find("corral_app_memory_bytes", name="b")) == 2


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_binds_loopback_only(pm):
    where = pm.call("prometheus_address")
    assert where["host"] == "127.0.0.1"
    assert where["address"] == f"127.0.0.1:{where['port']}"
    assert where["url"] == f"http://127.0.0.1:{where['port']}/metrics"
    listening = [
        c
        for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == where["port"]
    ]
    assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    other = _non_loopback_ipv4()
    if other is not None:  # the same port on the machine's other address refuses
        with pytest.raises(OSError) as refused:
            socket.create_connection((other, where["port"]), timeout=5).close()
        assert refused.value.errno == errno.ECONNREFUSED


def test_the_port_is_closed_when_the_daemon_stops(corral_home):
    with corral.connect(no_daemon=True, plugins=[corral_prometheus]) as client:
        port = client.call("prometheus_address")["port"]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_port_in_use_is_reported_and_the_daemon_runs(corral_home, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("CORRAL_PROMETHEUS_ADDR", f"127.0.0.1:{port}")
        with corral.connect(no_daemon=True, plugins=[corral_prometheus]) as client:
            (record,) = [p for p in client.plugins() if p["name"] == "corral_prometheus"]
            (error,) = record["errors"]
            assert f"cannot serve /metrics on 127.0.0.1:{port}" in error
            assert "CORRAL_PROMETHEUS_ADDR" in error
            with pytest.raises(corral.CorralError, match="not serving in this daemon"):
                client.call("prometheus_address")
            assert client.ping()


def test_loads_by_its_entry_point(corral_home):
    with corral.connect(no_daemon=True, plugins=["prometheus"]) as client:
        (record,) = client.plugins()
        assert record["name"] == "prometheus"
        assert record["dist"] == "corral-prometheus"
        assert scrape(client).value("corral_daemon_apps") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9726", ("127.0.0.1", 9726)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        (":9100", ("127.0.0.1", 9100)),
        ("9100", ("127.0.0.1", 9100)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_address(value, expected):
    assert corral_prometheus.parse_address(value) == expected


@pytest.mark.parametrize("value", ["", "host:", "host:port", "1:2:3", "[::1]", "[::1]x", "99999"])
def test_a_bad_address_names_the_variable(value):
    with pytest.raises(corral.OptionError, match="CORRAL_PROMETHEUS_ADDR must be host:port"):
        corral_prometheus.parse_address(value)


def test_default_address_is_loopback(monkeypatch):
    monkeypatch.delenv("CORRAL_PROMETHEUS_ADDR", raising=False)
    assert corral_prometheus.configured_address() == ("127.0.0.1", 9726)


def test_two_daemons_in_one_process_each_serve_their_own_apps(
    corral_home, second_corral_home, tmp_path
):
    """Port 0: each embedded daemon its own exporter on its own port, alive after the other."""
    a = corral.connect(corral_home, no_daemon=True, plugins=[corral_prometheus])
    pids = []
    try:
        with corral.connect(second_corral_home, no_daemon=True, plugins=[corral_prometheus]) as b:
            for client, name in ((a, "a-web"), (b, "b-web")):
                (info,) = client.start(app(tmp_path, name, SLEEPER))
                pids.append(info.pid)
            ports = {a.call("prometheus_address")["port"], b.call("prometheus_address")["port"]}
            assert len(ports) == 2
            for client, mine, other in ((a, "a-web", "b-web"), (b, "b-web", "a-web")):
                metrics = scrape(client)
                assert metrics.find("corral_app_restarts_total", name=mine) == [0]
                assert metrics.find("corral_app_restarts_total", name=other) == []
                assert metrics.value("corral_daemon_apps") == 1
            a.disconnect()
            assert scrape(b).value("corral_daemon_apps") == 1
    finally:
        a.disconnect()
        for pid in pids:
            kill_tree(pid)


def test_two_daemons_in_one_process_on_one_port_the_second_is_told(
    corral_home, second_corral_home, monkeypatch
):
    """A fixed port: the first daemon serves it, the second names the clash and runs on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CORRAL_PROMETHEUS_ADDR", f"127.0.0.1:{port}")
    with corral.connect(corral_home, no_daemon=True, plugins=[corral_prometheus]) as a:
        assert a.call("prometheus_address")["port"] == port
        with corral.connect(second_corral_home, no_daemon=True, plugins=[corral_prometheus]) as b:
            (record,) = [p for p in b.plugins() if p["name"] == "corral_prometheus"]
            (error,) = record["errors"]
            assert f"cannot serve /metrics on 127.0.0.1:{port}" in error
            assert "CORRAL_PROMETHEUS_ADDR" in error
            with pytest.raises(corral.CorralError, match="not serving in this daemon"):
                b.call("prometheus_address")
        assert scrape(a).value("corral_daemon_apps") == 0

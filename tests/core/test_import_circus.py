"""circus.ini files (tests/corpus/circus, written after circus's
docs/source/for-ops/configuration.rst) printed by `corral import` and started by
`corral start`, a circus socket app accepting TCP connections included."""

from __future__ import annotations

import json
import shutil
import socket
import warnings
from pathlib import Path

import psutil
import pytest

from corral.client import CorralWarning
from corral.options.config import load_config, read_apps
from corral.options.imports import convert
from tests.conftest import assert_start_refused, wait_for
from tests.conftest import run_cli as corral

CORPUS = Path(__file__).parents[1] / "corpus" / "circus"
FILES = sorted(CORPUS.glob("*.ini"))
SUFFIX = {"yaml": "yaml", "json": "json", "toml": "toml", "js": "config.js"}


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml", "js"])
@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_import_prints_an_ecosystem_file_that_reads_back(path: Path, fmt: str, tmp_path: Path):
    if fmt == "js" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorralWarning)
        expected, _ = convert(path)
    out = tmp_path / f"eco.{SUFFIX[fmt]}"
    out.write_text(corral("import", str(path), "--format", fmt).stdout)
    assert read_apps(out) == expected


def _quiet_read(path: Path) -> list[dict]:
    with warnings.catch_warnings(record=True):
        return read_apps(path)


def test_socket_watcher_gets_listen_and_fd_3():
    (web,) = _quiet_read(CORPUS / "web_socket.ini")
    assert web["listen"] == "127.0.0.1:18765"
    assert web["args"][-1] == "3"  # $(circus.sockets.web): corral's socket is fd 3
    assert web["instances"] == 2
    assert "filter_env" not in web and "env" not in web  # copy_env = True
    assert (web["kill_signal"], web["kill_timeout"]) == ("SIGINT", 5000)
    assert web["out_file"] == "logs/web.log"


def test_watchers_env_sections_and_circus_defaults():
    worker, cron = _quiet_read(CORPUS / "workers.ini")  # priority 10 first
    assert worker["instances"] == 3 and worker["cwd"] == "/tmp"
    assert worker["env"] == {"SHARED": "everywhere", "ROLE": "consumer"}
    assert worker["filter_env"] is True  # copy_env false, circus's default
    assert worker["max_restarts"] == 2
    assert cron["env"] == {"SHARED": "everywhere", "ROLE": "cron"}  # [env:cron*]
    assert cron["autorestart"] is False  # respawn = False
    assert (cron["kill_signal"], cron["kill_timeout"], cron["max_restarts"]) == (
        "SIGTERM",
        30000,
        5,
    )


def test_wid_makes_one_app_per_process(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    node1, node2 = _quiet_read(CORPUS / "wid_env.ini")
    assert [node1["name"], node2["name"]] == ["node-1", "node-2"]
    assert node1["args"][-2:] == ["1", str(tmp_path)] and node2["args"][-2:] == ["2", str(tmp_path)]
    assert node1["cwd"] == str(tmp_path)  # ((circus.env.home))
    assert node1["namespace"] == "node" and node1["kill_timeout"] == 2500
    assert node1["env"] == {"GREETING": "hi there"}


def test_unmapped_keys_are_one_warning_line():
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        load_config(CORPUS / "workers.ini")
    assert [w.category for w in said] == [CorralWarning]
    assert str(said[0].message) == (
        f"{CORPUS / 'workers.ini'}: not carried over: circus statsd (corral's daemon has its "
        "own), watcher:cron-job warmup_delay, watcher:cron-job stderr_stream.class StdoutStream"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[watcher:w]\nargs = x\n", "[watcher:w]: no cmd"),
        (
            "[watcher:w]\ncmd = a $(circus.sockets.nope)\n",
            "[watcher:w] cmd: $(circus.sockets.nope)",
        ),
        ("[watcher:w]\ncmd = /bin/true\nnumprocesses = many\n", "[watcher:w] numprocesses: 'many'"),
        ("[watcher:w]\ncmd = /bin/true\nstop_signal = NOPE\n", "[watcher:w] stop_signal: 'NOPE'"),
    ],
)
def test_a_bad_file_is_one_error_and_starts_nothing(body, message, pm, tmp_path: Path):
    conf = tmp_path / "circus.ini"
    conf.write_text("[watcher:ok]\ncmd = /bin/sleep 60\n" + body)
    assert_start_refused(conf, message, pm)


def _online(pm, name, count=1):
    return wait_for(
        lambda: (
            [i for i in pm.list() if i.name == name and i.status == "online" and i.pid]
            if sum(i.name == name and i.status == "online" for i in pm.list()) == count
            else None
        ),
        what=f"{count} online {name}",
    )


def _text(path) -> str:
    try:
        return Path(path).read_text()
    except (FileNotFoundError, TypeError):
        return ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_start_serves_a_circus_socket(pm, tmp_path: Path):
    port = _free_port()
    conf = tmp_path / "circus.ini"
    conf.write_text((CORPUS / "web_socket.ini").read_text().replace("18765", str(port)))
    (tmp_path / "logs").mkdir()
    done = corral("start", "circus.ini", cwd=tmp_path)
    assert "watcher:web stdout_stream.max_bytes (use the logrotate plugin)" in done.stderr
    _online(pm, "web", 2)

    def greeting() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            return conn.recv(100)

    assert greeting() == b"hi from circus web\n"
    # instances write logs/web-<pm_id>.log, as PM2 names a file each instance shares
    logs = lambda: "".join(_text(p) for p in (tmp_path / "logs").glob("web*.log"))  # noqa: E731
    wait_for(lambda: logs().count("serving") == 2, what="the web instances' log lines")


def test_start_runs_watchers_with_env_instances_and_no_copied_env(pm, tmp_path, monkeypatch):
    monkeypatch.setenv("IMPORT_TEST_LEAK", "must not reach the app")
    corral("start", str(CORPUS / "workers.ini"), "--no-wait", cwd=tmp_path)
    workers = _online(pm, "worker", 3)
    for info in workers:
        assert psutil.Process(info.pid).cwd() == "/tmp"
        assert "IMPORT_TEST_LEAK" not in psutil.Process(info.pid).environ()
    logs = {info.out_log for info in workers}
    wait_for(
        lambda: (
            "".join(_text(log) for log in logs).splitlines()
            == ["worker consumer everywhere in /tmp"] * 3
        ),
        what="each worker's line",
    )
    cron = wait_for(
        lambda: next((i for i in pm.list() if i.name == "cron-job" and i.status == "stopped"), None)
    )
    wait_for(lambda: _text(cron.out_log) == "tick\n", what="cron-job's one run")


def test_start_runs_one_app_per_wid(pm, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    corral("start", str(CORPUS / "wid_env.ini"), cwd=tmp_path)
    for wid in ("1", "2"):
        (node,) = _online(pm, f"node-{wid}")
        assert node.namespace == "node"
        assert psutil.Process(node.pid).cwd() == str(tmp_path)
        wait_for(lambda n=node, w=wid: _text(n.out_log) == f"node {w} {tmp_path}\n")


def test_include_files_are_read(tmp_path: Path):
    (tmp_path / "more.ini").write_text("[watcher:extra]\ncmd = /bin/sleep 60\n")
    main = tmp_path / "circus.ini"
    main.write_text("[circus]\ninclude = more.ini\n\n[watcher:web]\ncmd = /bin/sleep 61\n")
    assert [app["name"] for app in read_apps(main)] == ["extra", "web"]  # by name, as circus


def test_numprocesses_0_is_added_stopped_not_one_per_cpu(tmp_path: Path):
    conf = tmp_path / "circus.ini"
    conf.write_text("[env]\nWHERE = $(circus.env.home)/x\n\n[watcher:w]\ncmd = /bin/sleep 60\n"
                    "numprocesses = 0\n")  # fmt: skip
    with warnings.catch_warnings(record=True) as said:
        (app,) = read_apps(conf)
    assert "instances" not in app and app["autostart"] is False
    assert app["env"] == {"WHERE": f"{Path.home()}/x"}  # [env] values expand
    assert "watcher:w numprocesses 0 (the app is added stopped)" in str(said[0].message)


def test_import_json_flag_prints_json():
    done = corral("import", str(CORPUS / "wid_env.ini"), "--json")
    assert json.loads(done.stdout)["apps"][0]["name"] == "node-1"
    assert done.stderr.count("\n") == 1

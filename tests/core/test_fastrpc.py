"""corral.rpc.fast: one ZMTP request without pyzmq, or None and the full path."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from corral.rpc import fast as fastrpc
from tests.conftest import python_app


def test_list_and_ping_answer_as_the_client_does(pm, tmp_path):
    pm.start(python_app(tmp_path, "app.py", "import time; time.sleep(60)"), {"name": "app"})
    listed = json.loads(fastrpc.result(fastrpc.call(b"list")))
    assert [(p["name"], p["pid"]) for p in listed] == [("app", pm.describe("app")[0].pid)]
    assert listed[0]["pm2_env"]["status"] == "online"
    pong = json.loads(fastrpc.result(fastrpc.call(b"ping")))
    assert pong["pid"] == pm.ping()["pid"]


def test_the_cli_fast_path_prints_the_daemons_list(pm, tmp_path):
    pm.start(python_app(tmp_path, "app.py", "import time; time.sleep(60)"), {"name": "app"})
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "corral", "jlist"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [p["name"] for p in json.loads(done.stdout)] == ["app"]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "zmq" not in imported and "corral.client" not in imported


def test_no_daemon_means_the_full_path(corral_home: Path):
    assert fastrpc.call(b"ping") is None


def test_a_home_others_can_write_is_left_to_the_full_path(pm, corral_home: Path):
    os.chmod(corral_home, 0o777)
    try:
        assert fastrpc.call(b"ping") is None
    finally:
        os.chmod(corral_home, 0o700)
    assert fastrpc.call(b"ping") is not None


def test_a_peer_that_is_not_a_daemon_is_left_to_the_full_path(corral_home: Path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(corral_home / "rpc.sock"))
    server.listen()

    def answer_junk() -> None:
        conn, _ = server.accept()
        conn.recv(64)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer_junk, daemon=True)
    thread.start()
    try:
        assert fastrpc.call(b"ping", timeout=5) is None
    finally:
        thread.join(5)
        server.close()


def test_an_error_reply_has_no_result():
    assert fastrpc.result(b'{"id":1,"ok":false,"error":{"type":"X"}}') is None
    assert fastrpc.result(None) is None


def test_several_requests_on_one_connection_come_back_in_the_order_sent(pm, tmp_path):
    pm.start(python_app(tmp_path, "app.py", "import time; time.sleep(60)"), {"name": "app"})
    rows = (b"list", b'{"form":"rows","env":false}')
    pending = fastrpc.send([(b"ping", b"{}"), rows, (b"ping", b"{}")])
    assert pending is not None
    replies = pending.replies()
    assert [fastrpc.result(r, n) is not None for n, r in enumerate(replies, 1)] == [True] * 3
    assert json.loads(fastrpc.result(replies[0], 1))["pid"] == pm.ping()["pid"]
    assert json.loads(fastrpc.result(replies[1], 2))["rows"][0][0] == 0  # shape 0
    assert fastrpc.exchange([(b"no_such_command", b"{}")]) is not None  # an error reply

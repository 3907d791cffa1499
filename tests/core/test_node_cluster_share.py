"""Node cluster mode as PM2 users write it: no ``listen``/``port``, the app calls
``server.listen(3000)`` itself, and every instance serves that one port."""

from __future__ import annotations

import http.client
import shutil
import socket
import threading
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str = "/", timeout: float = 10.0) -> str:
    """One request on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def start_plain(pm, app_path, port: int, instances: int = 4, **extra) -> list:
    env = {"APP_PORT": str(port), **extra.pop("env", {})}
    options = {"name": "plain", "exec_mode": "cluster", "instances": instances, "env": env}
    return pm.start(app_path("plain_listen.js"), {**options, **extra})


def all_online(pm, name: str, count: int) -> list | None:
    """The instances once each is online and ready: the preload reported "listening"
    (status is online at spawn, as PM2's; readiness says the socket came)."""
    procs = pm.describe(name)
    if len(procs) == count and all(p.status == "online" and p.pid and p.ready for p in procs):
        return procs
    return None


class Load:
    """HTTP load on threads until stopped: new connections, and one keep-alive
    connection per thread that sends request after request, as browsers and
    pooling clients do. A request counts as failed unless its full answer came;
    on a kept-alive connection the server closed while idle (nothing of the
    answer came), the request goes again on a new connection, once, as RFC 9112
    9.3.1 lets a client do and every pooling client does."""

    def __init__(self, port: int, fresh: int = 2, kept: int = 2) -> None:
        self.port = port
        self.ok = 0
        self.retried = 0
        self.failed: list[str] = []
        self.pids: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]
        self._threads += [threading.Thread(target=self._kept, daemon=True) for _ in range(kept)]

    def _count(self, body: str) -> None:
        self.pids[body.split()[0]] += 1
        self.ok += 1

    def _fresh(self) -> None:
        while not self._stop.is_set():
            try:
                self._count(get(self.port))
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append(f"new connection: {exc!r}")

    def _kept(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            reused = conn.sock is not None
            try:
                conn.request("GET", "/")
                self._count(conn.getresponse().read().decode())
                continue
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if not reused:
                    self.failed.append(f"keep-alive, new: {exc!r}")
                    continue
                self.retried += 1
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.failed.append(f"keep-alive: {exc!r}")
                continue
            try:  # the idle connection was closed under it: once more, on a new one
                conn.request("GET", "/")
                self._count(conn.getresponse().read().decode())
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.failed.append(f"keep-alive, retried: {exc!r}")
        conn.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def test_four_instances_share_the_port_the_app_listens_on(pm, app_path):
    port = free_port()
    start_plain(pm, app_path, port)
    procs = wait_for(lambda: all_online(pm, "plain", 4), 15)
    pids = {str(p.pid) for p in procs}
    served: Counter[str] = Counter(get(port).split()[0] for _ in range(4000))
    assert set(served) == pids, served
    assert all(served[pid] >= 400 for pid in pids), served  # each at least 10%
    # the instances stayed up: none restarted, none errored
    assert [(p.status, p.restart_time) for p in pm.describe("plain")] == [("online", 0)] * 4
    assert {p.pid for p in pm.describe("plain")} == {p.pid for p in procs}


def listening_ports(pid: int) -> set[int]:
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def err_text(info) -> str:
    return Path(info.err_log).read_text() if info.err_log and Path(info.err_log).exists() else ""


def test_an_express_style_app_listen_shares_too(pm, app_path):
    port = free_port()
    options = {"name": "express", "exec_mode": "cluster", "instances": 4}
    pm.start(app_path("express_style.js"), {**options, "env": {"FALLBACK_PORT": str(port)}})
    procs = wait_for(lambda: all_online(pm, "express", 4), 15)
    pids = {str(p.pid) for p in procs}
    assert wait_for(lambda: pids <= {get(port).strip() for _ in range(100)} or None, 15)
    assert [p.restart_time for p in pm.describe("express")] == [0] * 4


def test_listen_0_gives_every_instance_one_shared_port(pm, app_path):
    start_plain(pm, app_path, 0)
    procs = wait_for(lambda: all_online(pm, "plain", 4), 15)
    ports = wait_for(lambda: {p.pid: listening_ports(p.pid) for p in procs}, 10)
    shared = set().union(*ports.values())
    assert len(shared) == 1 and all(found == shared for found in ports.values()), ports
    port = shared.pop()
    assert port > 0
    pids = {str(p.pid) for p in procs}
    answers = [get(port).split() for _ in range(200)]
    assert {a[1] for a in answers} == {str(port)}  # server.address() in each names it
    assert {a[0] for a in answers} == pids


def test_two_reloads_under_load_drop_nothing(pm, app_path):
    port = free_port()
    procs = start_plain(pm, app_path, port)
    wait_for(lambda: all_online(pm, "plain", 4), 15)
    before = {p.pid for p in procs}
    with Load(port) as load:
        wait_for(lambda: load.ok > 200, 15)
        for _ in range(2):
            reloaded = pm.reload("plain")
            assert [p.status for p in reloaded] == ["online"] * 4
        done = load.ok
        wait_for(lambda: load.ok > done + 200, 15)
    assert load.failed == [], load.failed[:5]
    after = {p.pid for p in pm.describe("plain")}
    assert not after & before
    assert set(load.pids) >= {str(pid) for pid in after}
    assert load.ok > 1000


def test_a_request_in_flight_finishes_when_a_plain_app_is_stopped(pm, app_path):
    port = free_port()
    start_plain(pm, app_path, port, instances=1, env={"SLOW_MS": "700"})
    (proc,) = wait_for(lambda: all_online(pm, "plain", 1), 15)
    answers: list[str] = []
    slow = threading.Thread(target=lambda: answers.append(get(port, "/slow")))
    slow.start()
    wait_for(
        lambda: (
            (
                pm.describe("plain")[0].pid
                and len(
                    [
                        c
                        for c in psutil.Process(proc.pid).net_connections("tcp")
                        if c.status == "ESTABLISHED"
                    ]
                )
            )
            or None
        ),
        5,
    )
    stopped = pm.stop("plain")
    slow.join(10)
    assert answers == [f"{proc.pid} {port}\n"]
    assert stopped[0].status == "stopped"
    assert refused(port)


def test_an_app_that_handles_the_signal_is_left_alone(pm, app_path, tmp_path):
    app = tmp_path / "own.js"
    app.write_text(
        Path(app_path("plain_listen.js")).read_text()
        + "process.on('SIGINT', () => { console.log('own SIGINT'); process.exit(3); });\n"
    )
    port = free_port()
    pm.start(
        str(app),
        {
            "name": "own",
            "exec_mode": "cluster",
            "instances": 1,
            "env": {"APP_PORT": str(port), "SLOW_MS": "2000"},
        },
    )
    (proc,) = wait_for(lambda: all_online(pm, "own", 1), 15)
    failures: list[str] = []

    def slow() -> None:
        try:
            get(port, "/slow")
        except (OSError, http.client.HTTPException) as exc:
            failures.append(repr(exc))

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for(
        lambda: (
            [
                c
                for c in psutil.Process(proc.pid).net_connections("tcp")
                if c.status == "ESTABLISHED"
            ]
            or None
        ),
        5,
    )
    pm.stop("own")
    thread.join(10)
    assert failures  # the app exited at once, as it asked
    assert "own SIGINT" in Path(proc.out_log).read_text()


def test_a_crash_restart_keeps_the_socket(pm, app_path):
    port = free_port()
    start_plain(pm, app_path, port)
    procs = wait_for(lambda: all_online(pm, "plain", 4), 15)
    victim = procs[0]
    psutil.Process(victim.pid).kill()
    again = wait_for(
        lambda: (found := all_online(pm, "plain", 4)) and found[0].pid != victim.pid and found,
        15,
    )
    assert again[0].restart_time == 1 and [p.restart_time for p in again[1:]] == [0, 0, 0]
    pids = {str(p.pid) for p in again}
    assert wait_for(lambda: pids <= {get(port).split()[0] for _ in range(100)} or None, 15)
    assert "EADDRINUSE" not in err_text(again[0])


def test_delete_closes_the_port(pm, app_path):
    port = free_port()
    start_plain(pm, app_path, port, instances=2)
    wait_for(lambda: all_online(pm, "plain", 2), 15)
    assert get(port)
    pm.delete("plain")
    assert wait_for(lambda: refused(port), 10)


def test_stop_closes_the_port_and_start_binds_it_again(pm, app_path):
    port = free_port()
    start_plain(pm, app_path, port, instances=2)
    wait_for(lambda: all_online(pm, "plain", 2), 15)
    pm.stop("plain")
    assert wait_for(lambda: refused(port), 10)
    pm.restart("plain")
    procs = wait_for(lambda: all_online(pm, "plain", 2), 15)
    pids = {str(p.pid) for p in procs}
    assert wait_for(lambda: pids <= {get(port).split()[0] for _ in range(60)} or None, 15)


def test_a_port_held_elsewhere_is_the_instance_error_not_the_daemon_s(pm, app_path):
    holder = socket.socket(socket.AF_INET6)
    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    holder.bind(("::", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        start_plain(pm, app_path, port, instances=2, max_restarts=2, restart_delay=50)
        procs = wait_for(
            lambda: (
                (found := pm.describe("plain"))
                and all(p.status == "errored" for p in found)
                and found
            ),
            30,
        )
        text = err_text(procs[0])
        assert "EADDRINUSE" in text and f":{port}" in text
        assert pm.ping()  # the daemon is fine
        port2 = free_port()  # and still binds for others
        start_plain(pm, app_path, port2, instances=1, name="other")
        wait_for(lambda: all_online(pm, "other", 1), 15)
        assert get(port2)
    finally:
        holder.close()


def test_fork_mode_instances_on_one_port_still_collide(pm, app_path):
    port = free_port()
    options = {"name": "forked", "exec_mode": "fork", "instances": 2, "max_restarts": 2}
    pm.start(app_path("plain_listen.js"), {**options, "env": {"APP_PORT": str(port)}})
    procs = wait_for(
        lambda: (
            (found := pm.describe("forked"))
            and sorted(p.status for p in found) == ["errored", "online"]
            and found
        ),
        30,
    )
    loser = next(p for p in procs if p.status == "errored")
    assert "EADDRINUSE" in err_text(loser)


def free_low_port() -> int:
    for port in range(1023, 900, -1):
        with socket.socket(socket.AF_INET6) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                s.bind(("::", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def test_an_app_run_as_a_user_gets_no_port_its_user_could_not_bind(
    app_user, pm, app_path, shared_dir
):
    script = shared_dir / "plain_listen.js"
    script.write_text(Path(app_path("plain_listen.js")).read_text())
    low = free_low_port()
    options = {"name": "low", "exec_mode": "cluster", "instances": 1, "uid": app_user}
    pm.start(str(script), {**options, "max_restarts": 1, "env": {"APP_PORT": str(low)}})
    (proc,) = wait_for(
        lambda: (found := pm.describe("low")) and found[0].status == "errored" and found, 30
    )
    assert "EACCES" in err_text(proc)
    assert refused(low)
    high = free_port()  # the same user on a port it may bind: served
    pm.start(str(script), {**options, "name": "high", "env": {"APP_PORT": str(high)}})
    (proc,) = wait_for(lambda: all_online(pm, "high", 1), 15)
    assert get(high).split()[0] == str(proc.pid)
    assert psutil.Process(proc.pid).uids().real != 0


def test_the_channel_gives_each_fd_to_its_own_message_in_order(tmp_path):
    """Plain lines and lines with an fd, queued together: node gets them in order,
    each fd with the message it was sent with (core/supervisor/channel.py ``send_fd``)."""
    import asyncio
    import json
    import os
    import subprocess

    from corral.supervisor.channel import Channel

    script = tmp_path / "echo.js"
    script.write_text(
        "process.on('message', (m, h) => {\n"
        "  const where = {};\n"
        "  if (h) h.getsockname(where);\n"
        "  process.send({ n: m.n, port: h ? where.port : null });\n"
        "  if (m.n === 6) process.disconnect();\n"
        "});\n"
    )

    async def main() -> list:
        got: list = []
        channel = Channel(got.append)
        env = dict(os.environ, NODE_CHANNEL_FD=str(channel.child_fd))
        env["NODE_CHANNEL_SERIALIZATION_MODE"] = "json"
        child = subprocess.Popen(["node", str(script)], pass_fds=[channel.child_fd], env=env)
        channel.start()
        sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
        ports = [s.getsockname()[1] for s in sockets]
        try:
            channel.send({"n": 1})
            channel.send_fd(
                {"cmd": "NODE_HANDLE", "type": "net.Native", "msg": {"n": 2}}, sockets[0].fileno()
            )
            channel.send({"n": 3})
            channel.send_fd(
                {"cmd": "NODE_HANDLE", "type": "net.Native", "msg": {"n": 4}}, sockets[1].fileno()
            )
            channel.send({"n": 5})
            channel.send({"n": 6})
            for _ in range(200):
                if len([m for m in got if "n" in m]) == 6:
                    break
                await asyncio.sleep(0.05)
        finally:
            channel.close()
            child.wait(10)
            for s in sockets:
                s.close()
        assert json.dumps(got)  # every line was JSON
        return [(m["n"], m["port"]) for m in got if "n" in m], ports

    answers, ports = asyncio.run(main())
    assert answers == [(1, None), (2, ports[0]), (3, None), (4, ports[1]), (5, None), (6, None)]


def test_an_app_cannot_make_the_daemon_hold_sockets_without_end(pm, tmp_path):
    app = tmp_path / "many.js"
    app.write_text(
        "const net = require('net');\n"
        "let done = 0, ok = 0, refused = [];\n"
        "for (let i = 1; i <= 70; i++) {\n"
        "  const server = net.createServer();\n"
        "  const end = () => { if (++done === 70) console.log(`ok ${ok} ${refused}`); };\n"
        "  server.on('error', (error) => { refused.push(error.code); end(); });\n"
        "  server.listen(0, `127.0.0.${i}`, () => { ok += 1; end(); });\n"
        "}\n"
    )
    (proc,) = pm.start(str(app), {"name": "many", "exec_mode": "cluster", "instances": 1})
    line = wait_for(
        lambda: next((x for x in Path(proc.out_log).read_text().splitlines() if "ok" in x), None),
        20,
    )
    assert line == "ok 64 " + ",".join(["EMFILE"] * 6)
    assert pm.ping()


def test_a_server_closed_before_its_socket_came_does_not_listen(pm, tmp_path):
    app = tmp_path / "early_close.js"
    app.write_text(
        "const server = require('http').createServer();\n"
        "server.listen(Number(process.env.APP_PORT));\n"
        "server.close((error) => console.log(`closed ${error && error.code}`));\n"
        "setTimeout(() => console.log(`listening ${server.listening}`), 500);\n"
        "setInterval(() => {}, 1000);\n"
    )
    port = free_port()
    options = {"name": "early", "exec_mode": "cluster", "instances": 1}
    (proc,) = pm.start(str(app), {**options, "env": {"APP_PORT": str(port)}})
    lines = wait_for(
        lambda: (
            (found := Path(proc.out_log).read_text().splitlines()) and len(found) == 2 and found
        ),
        10,
    )
    assert lines == ["closed ERR_SERVER_NOT_RUNNING", "listening false"]


def test_an_fd_message_waits_for_the_bytes_queued_before_it():
    """The child reads slowly: a big line is half written when an fd message and a
    plain one are queued. The fd reaches the child in the read that holds its own
    line's first byte, after every byte before it, and the order stays."""
    import array
    import asyncio
    import json
    import os

    from corral.supervisor.channel import Channel

    async def main() -> tuple[list[bytes], list[tuple[int, int, int]], int]:
        channel = Channel(lambda message: None)
        peer = socket.socket(fileno=os.dup(channel.child_fd))
        peer.setblocking(False)
        channel.start()
        held = socket.create_server(("127.0.0.1", 0))
        port = held.getsockname()[1]
        chunks: list[tuple[int, int, int]] = []  # (start, end, fd) of each read
        data = bytearray()
        try:
            channel.send({"pad": "x" * 2_000_000})
            assert channel._outbox  # the socket took part of it
            channel.send_fd({"n": 1}, held.fileno())
            channel.send({"n": 2})
            held.close()  # the channel holds its own copy until it is sent
            for _ in range(2000):
                try:
                    got, anc, _flags, _addr = peer.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
                except BlockingIOError:
                    await asyncio.sleep(0.002)
                    continue
                fds = array.array("i")
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[: len(payload) - len(payload) % 4])
                for fd in fds:
                    chunks.append((len(data), len(data) + len(got), fd))
                data += got
                if data.endswith(b'{"n":2}\n'):
                    break
        finally:
            channel.close()
            peer.close()
        return bytes(data).splitlines(), chunks, port

    lines, chunks, port = asyncio.run(main())
    assert [json.loads(line).get("n") for line in lines] == [None, 1, 2]
    assert len(chunks) == 1
    start, end, fd = chunks[0]
    first_byte = len(lines[0]) + 1
    assert start <= first_byte < end
    with socket.socket(fileno=fd) as passed:
        assert passed.getsockname()[1] == port


def test_a_unix_path_listen_is_left_to_node(pm, tmp_path):
    app = tmp_path / "unix.js"
    app.write_text(
        "const path = `${process.env.SOCK_DIR}/app-${process.env.NODE_APP_INSTANCE}.sock`;\n"
        "require('http').createServer((q, r) => r.end(String(process.pid))).listen(path);\n"
    )
    options = {"name": "unix", "exec_mode": "cluster", "instances": 2}
    pm.start(str(app), {**options, "env": {"SOCK_DIR": str(tmp_path)}})
    procs = wait_for(lambda: all_online(pm, "unix", 2), 15)
    for proc in procs:
        path = tmp_path / f"app-{proc.pm_id}.sock"
        wait_for(path.exists, 10)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer.endswith(str(proc.pid).encode())

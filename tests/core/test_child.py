"""The child side: ``corral.child`` and the node preload, against a fake daemon end.

Each test runs a real child process holding one end of a ``socketpair()`` as
its channel (``CORRAL_CHANNEL_FD`` or ``NODE_CHANNEL_FD``); the test plays the
daemon on the other end. Shared listening sockets reach fd 3 through a small
bash wrapper, as systemd socket activation does.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.child import _LineBuffer
from tests.conftest import wait_for

PRELOAD = Path(__file__).resolve().parents[2] / "core" / "supervisor" / "node" / "preload.js"
NODE = shutil.which("node") or "/usr/bin/node"
BASH = shutil.which("bash") or "/bin/bash"
# what a test process may have inherited that would change what the child sees
SCRUBBED = (
    "CORRAL_CHANNEL_FD",
    "CORRAL_INSTANCE",
    "NODE_APP_INSTANCE",
    "NODE_CHANNEL_FD",
    "NODE_CHANNEL_SERIALIZATION_MODE",
    "NODE_OPTIONS",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "PORT",
)

needs_node = pytest.mark.skipif(not os.path.exists(NODE), reason="node is not installed")


# -- the fake daemon ------------------------------------------------------------


class DaemonEnd:
    """The test's end of a child's channel: JSON lines in, JSON lines out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()

    def send(self, value: Any) -> None:
        self.send_raw(json.dumps(value).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def unread(self) -> int:
        """Bytes sent that the child has not read yet (SIOCOUTQ)."""
        raw = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        return struct.unpack("i", raw)[0]

    def receive(self, timeout: float = 15.0) -> Any:
        """The next message; AssertionError at the end of the channel or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no message within {timeout} s ({bytes(self.pending)!r})")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"channel closed (pending {bytes(self.pending)!r})")
            self.pending += data
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending = bytearray(rest)
        return json.loads(line)

    def receive_until(self, predicate: Any, timeout: float = 15.0) -> list[Any]:
        """Messages up to and including the first that ``predicate`` accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            seen.append(self.receive(max(deadline - time.monotonic(), 0.001)))
            if predicate(seen[-1]):
                return seen

    def rest(self, timeout: float = 15.0) -> bytes:
        """Everything up to the end of the channel."""
        deadline = time.monotonic() + timeout
        data = bytes(self.pending)
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"channel still open after {timeout} s ({data!r})"
            self.sock.settimeout(remaining)
            with contextlib.suppress(TimeoutError):
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk


def high_fd(fd: int) -> int:
    """A close-on-exec copy of ``fd`` numbered 10 or more, clear of fd 3."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)


def fd3_wrapper(fd: int) -> list[str]:
    """argv prefix that moves ``fd`` to fd 3 and sets LISTEN_PID to the exec'd program's pid."""
    return [BASH, "-c", f'exec 3<&{fd} {fd}<&-; export LISTEN_PID=$$; exec "$0" "$@"']


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(extra)
    return env


class Children:
    """Starts child processes and ends every one of them, by pid, at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []

    def start(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        channel: bool = True,
        node: bool = False,
        listener: socket.socket | None = None,
    ) -> tuple[subprocess.Popen[str], DaemonEnd | None]:
        env = clean_env(**(env or {}))
        fds = []
        ours = theirs = None
        if channel:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            fds.append(high_fd(theirs.fileno()))
            env["NODE_CHANNEL_FD" if node else "CORRAL_CHANNEL_FD"] = str(fds[-1])
            if node:
                env["NODE_CHANNEL_SERIALIZATION_MODE"] = "json"
        if listener is not None:
            fds.append(high_fd(listener.fileno()))
            env["LISTEN_FDS"] = "1"
            argv = [*fd3_wrapper(fds[-1]), *argv]
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            for fd in fds:
                os.close(fd)
            if theirs is not None:
                theirs.close()
        self.procs.append(proc)
        return proc, (DaemonEnd(ours) if ours is not None else None)

    def python(self, body: str, **kwargs: Any) -> tuple[subprocess.Popen[str], DaemonEnd | None]:
        script = self.tmp / f"child_{len(self.procs)}.py"
        script.write_text(textwrap.dedent(body))
        return self.start([sys.executable, str(script)], **kwargs)

    def node(self, body: str, **kwargs: Any) -> tuple[subprocess.Popen[str], DaemonEnd | None]:
        script = self.tmp / f"child_{len(self.procs)}.js"
        script.write_text(textwrap.dedent(body))
        return self.start([NODE, "--require", str(PRELOAD), str(script)], node=True, **kwargs)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    runner = Children(tmp_path)
    yield runner
    runner.close()


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def finish(proc: subprocess.Popen[str], timeout: float = 15.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


# -- importing ----------------------------------------------------------------


def test_import_loads_the_stdlib_only_and_starts_nothing(children: Children) -> None:
    proc, _ = children.python(
        """
        import json, sys, threading
        import corral.child
        first_party = ("corral", "zmq", "psutil", "structlog", "pluggy", "click", "rich", "yaml")
        print(json.dumps({
            "modules": sorted(m for m in sys.modules if m.split(".")[0] in first_party),
            "threads": threading.active_count(),
            "excepthook": sys.excepthook is sys.__excepthook__,
        }))
        """
    )
    code, out, err = finish(proc)
    assert code == 0, err
    assert last_json(out) == {
        "modules": ["corral", "corral.child"],
        "threads": 1,
        "excepthook": True,
    }


# -- child to daemon ----------------------------------------------------------


def test_send_and_ready_write_one_compact_json_line_each(children: Children) -> None:
    proc, end = children.python(
        """
        import corral.child as child
        child.send({"a": 1, "b": "é"}, topic="stats")
        child.send("text")
        child.ready()
        print(child.under_corral())
        """
    )
    assert end is not None
    assert end.rest() == (
        b'{"type":"process:msg","data":{"a":1,"b":"\\u00e9"},"topic":"stats"}\n'
        b'{"type":"process:msg","data":"text"}\n'
        b'"ready"\n'
    )
    code, out, err = finish(proc)
    assert (code, out.strip()) == (0, "True"), err


def test_sends_from_many_threads_never_interleave(children: Children) -> None:
    proc, end = children.python(
        """
        import threading
        import corral.child as child
        def burst(n):
            for i in range(200):
                child.send({"thread": n, "i": i, "pad": "x" * 5000})
        threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        """
    )
    assert end is not None
    lines = end.rest().splitlines()
    assert len(lines) == 800
    got = sorted((m["data"]["thread"], m["data"]["i"]) for m in map(json.loads, lines))
    assert got == [(n, i) for n in range(4) for i in range(200)]
    assert finish(proc)[0] == 0


def test_uncaught_exception_is_reported_before_the_usual_traceback(children: Children) -> None:
    proc, end = children.python(
        """
        import corral.child as child
        child.send("hi")
        def fail():
            raise ValueError("boom")
        fail()
        """
    )
    assert end is not None
    assert end.receive()["data"] == "hi"
    report = end.receive()
    assert report["type"] == "process:exception"
    data = report["data"]
    assert (data["name"], data["message"]) == ("ValueError", "boom")
    assert "in fail" in data["stack"]
    assert data["stack"].rstrip().endswith("ValueError: boom")
    code, _, err = finish(proc)
    assert code == 1
    assert "ValueError: boom" in err  # the previous hook still ran


def test_keyboard_interrupt_is_not_reported(children: Children) -> None:
    proc, end = children.python(
        """
        import corral.child as child
        child.send("hi")
        raise KeyboardInterrupt
        """
    )
    assert end is not None
    assert end.rest() == b'{"type":"process:msg","data":"hi"}\n'
    assert finish(proc)[0] != 0


# -- daemon to child ----------------------------------------------------------


def test_messages_and_on_message_each_get_every_message(children: Children) -> None:
    proc, end = children.python(
        """
        import sys, time
        import corral.child as child
        @child.on_message
        def broken(message):
            raise RuntimeError("a broken callback")
        seen = []
        child.on_message(seen.append)  # called after broken, in the order registered
        iterated = []
        inbox = child.messages()
        child.ready()
        for message in inbox:
            iterated.append(message)
            if child.is_shutdown_message(message):
                break
        deadline = time.monotonic() + 10
        while len(seen) < len(iterated) and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send({"seen": seen, "iterated": iterated})
        """
    )
    assert end is not None
    assert end.receive() == "ready"
    packet = {"id": 0, "topic": "cfg", "data": {"city": "Montréal"}}
    raw = json.dumps(packet, ensure_ascii=False).encode() + b"\n"
    cut = raw.index("é".encode()) + 1  # inside the two bytes of é
    end.send_raw(raw[:cut])
    wait_for(lambda: end.unread() == 0, what="the child read the first half")
    end.send_raw(raw[cut:])
    end.send_raw(b'"shutdown"\n')
    report = end.receive()["data"]
    assert report["iterated"] == [packet, "shutdown"]
    assert report["seen"] == [packet, "shutdown"]
    code, _, err = finish(proc)
    assert code == 0
    assert err.count("RuntimeError: a broken callback") == 2  # printed, and delivery went on


def test_end_of_channel_ends_messages_and_silences_send(children: Children) -> None:
    proc, end = children.python(
        """
        import corral.child as child
        inbox = child.messages()
        child.ready()
        print(list(inbox))
        print(list(child.messages()))
        child.send("after the end")
        child.send("and again")
        """
    )
    assert end is not None
    assert end.receive() == "ready"
    end.send({"topic": "a", "data": 1})
    end.send({"topic": "b", "data": 2})
    end.sock.close()
    code, out, err = finish(proc)
    assert code == 0, err
    assert out.splitlines() == [
        "[{'topic': 'a', 'data': 1}, {'topic': 'b', 'data': 2}]",
        "[]",
    ]


def test_a_forked_process_does_not_use_its_parents_channel(children: Children) -> None:
    proc, end = children.python(
        """
        import os
        import corral.child as child
        child.send("parent before")
        pid = os.fork()
        if pid == 0:
            child.send("from the fork")
            print(child.under_corral(), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        child.send("parent after")
        """
    )
    assert end is not None
    data = [json.loads(line)["data"] for line in end.rest().splitlines()]
    assert data == ["parent before", "parent after"]
    code, out, _ = finish(proc)
    assert (code, out.strip()) == (0, "False")


def test_line_buffer_joins_reads_split_anywhere() -> None:
    raw = '{"a":"é"}\n"ready"\n\nnot json\n[1,2]\n'.encode()
    for cut in range(len(raw) + 1):
        lines = _LineBuffer()
        got = lines.feed(raw[:cut]) + lines.feed(raw[cut:])
        assert got == [{"a": "é"}, "ready", "not json", [1, 2]], cut


# -- outside corral -----------------------------------------------------------

OUTSIDE = """
    import json
    import corral.child as child
    child.send({"a": 1})
    child.ready()
    child.on_message(print)
    try:
        child.listen_socket()
        error = None
    except RuntimeError as e:
        error = str(e)
    print(json.dumps({
        "under_corral": child.under_corral(),
        "messages": list(child.messages()),
        "instance": child.instance(),
        "error": error,
    }))
"""


@pytest.mark.parametrize("channel_fd", [None, "0", "99", "nonsense", "-1"])
def test_outside_corral_every_call_is_harmless(children: Children, channel_fd: str | None) -> None:
    env = {} if channel_fd is None else {"CORRAL_CHANNEL_FD": channel_fd}
    proc, _ = children.python(OUTSIDE, env=env, channel=False)
    code, out, err = finish(proc)
    assert code == 0, err
    result = last_json(out)
    assert result["under_corral"] is False
    assert result["messages"] == []
    assert result["instance"] == 0
    assert "listen" in result["error"] and "corral start" in result["error"]


def test_a_channel_fd_that_is_another_kind_of_socket_is_ignored(children: Children) -> None:
    dgram, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with dgram, peer:
        fd = high_fd(peer.fileno())
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(OUTSIDE)],
                env=clean_env(CORRAL_CHANNEL_FD=str(fd)),
                pass_fds=[fd],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            os.close(fd)
        children.procs.append(proc)
        code, out, err = finish(proc)
        assert code == 0, err
        assert last_json(out)["under_corral"] is False
        dgram.setblocking(False)
        with pytest.raises(BlockingIOError):
            dgram.recv(100)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CORRAL_INSTANCE": "2", "NODE_APP_INSTANCE": "5"}, 2),
        ({"NODE_APP_INSTANCE": "3"}, 3),
        ({"CORRAL_INSTANCE": "x", "NODE_APP_INSTANCE": "4"}, 4),
        ({}, 0),
    ],
)
def test_instance(children: Children, env: dict[str, str], expected: int) -> None:
    proc, _ = children.python(
        "import corral.child as c; print(c.instance())", env=env, channel=False
    )
    code, out, err = finish(proc)
    assert (code, out.strip()) == (0, str(expected)), err


# -- readiness through NOTIFY_SOCKET --------------------------------------------


@pytest.fixture
def notify_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="corral-notify-", dir="/tmp"))  # short: sun_path
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_without_a_channel_notifies_systemd(
    children: Children, notify_dir: Path, abstract: bool
) -> None:
    name = f"@corral-test-{uuid.uuid4().hex}" if abstract else str(notify_dir / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:] if abstract else name)
        sock.settimeout(15)
        proc, _ = children.python(
            "import corral.child as c; c.ready()", env={"NOTIFY_SOCKET": name}, channel=False
        )
        assert sock.recv(100) == b"READY=1"
    assert finish(proc)[0] == 0


def test_ready_prefers_the_channel_to_notify_socket(children: Children, notify_dir: Path) -> None:
    path = notify_dir / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        proc, end = children.python(
            "import corral.child as c; c.ready()", env={"NOTIFY_SOCKET": str(path)}
        )
        assert end is not None
        assert end.rest() == b'"ready"\n'
        assert finish(proc)[0] == 0
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(100)


def test_ready_with_a_dead_notify_socket_does_not_fail(
    children: Children, notify_dir: Path
) -> None:
    env = {"NOTIFY_SOCKET": str(notify_dir / "nobody")}
    proc, _ = children.python("import corral.child as c; c.ready()", env=env, channel=False)
    code, _, err = finish(proc)
    assert code == 0, err


# -- the shared listening socket ------------------------------------------------


def test_listen_socket_is_the_inherited_fd_3(
    children: Children, tcp_listener: socket.socket
) -> None:
    proc, _ = children.python(
        """
        import json, os, socket
        import corral.child as child
        sock = child.listen_socket()
        assert sock is child.listen_socket()
        conn, _ = sock.accept()
        conn.sendall(json.dumps({
            "fd": sock.fileno(),
            "family": sock.family == socket.AF_INET,
            "type": sock.type == socket.SOCK_STREAM,
            "inheritable": os.get_inheritable(3),
        }).encode())
        conn.close()
        """,
        channel=False,
        listener=tcp_listener,
    )
    with socket.create_connection(tcp_listener.getsockname(), timeout=15) as conn:
        data = b"".join(iter(lambda: conn.recv(4096), b""))
    assert json.loads(data) == {"fd": 3, "family": True, "type": True, "inheritable": False}
    code, _, err = finish(proc)
    assert code == 0, err


def test_listen_socket_meant_for_another_process_is_refused(
    children: Children, tcp_listener: socket.socket
) -> None:
    fd = high_fd(tcp_listener.fileno())
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import corral.child as c; c.listen_socket()"],
            env=clean_env(LISTEN_FDS="1", LISTEN_PID="1"),
            pass_fds=[fd],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(fd)
    children.procs.append(proc)
    code, _, err = finish(proc)
    assert code == 1
    assert "RuntimeError" in err and "--listen" in err


# -- node: the preload ----------------------------------------------------------

NODE_SERVER = """
    const http = require('http');
    const server = http.createServer((req, res) => res.end('served by ' + process.pid));
    const ready = () => process.send({type: 'process:msg', data: {a: 1}});
    process.on('message', (message) => {
      if (message === 'shutdown') {
        server.close();
        process.disconnect();
        return;
      }
      process.send({type: 'process:msg', data: {echo: message}});
    });
    LISTEN;
"""


def http_get(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@needs_node
@pytest.mark.parametrize(
    "listen",
    [
        "server.listen(process.env.PORT, ready)",
        "server.listen(Number(process.env.PORT), '0.0.0.0', ready)",
        "server.listen({port: process.env.PORT, host: '::'}, ready)",
    ],
)
def test_node_listen_on_port_uses_the_shared_socket(
    children: Children, tcp_listener: socket.socket, listen: str
) -> None:
    port = tcp_listener.getsockname()[1]
    proc, end = children.node(
        NODE_SERVER.replace("LISTEN", listen), env={"PORT": str(port)}, listener=tcp_listener
    )
    assert end is not None
    got = end.receive_until(lambda m: m.get("data") == {"a": 1})
    listening = [m for m in got if m["type"] == "corral:listening"]
    assert listening, got
    address = listening[0]["data"]["address"]
    assert (address["address"], address["port"]) == ("127.0.0.1", port)

    assert http_get(port) == f"served by {proc.pid}"

    end.send({"topic": "hello", "data": [1, 2]})
    assert end.receive() == {
        "type": "process:msg",
        "data": {"echo": {"topic": "hello", "data": [1, 2]}},
    }
    end.send("shutdown")
    code, out, err = finish(proc)
    assert (code, out, err) == (0, "", "")  # the preload prints nothing


@needs_node
def test_node_without_a_shared_socket_listens_as_usual(children: Children) -> None:
    proc, end = children.node(
        NODE_SERVER.replace("LISTEN", "server.listen(0, '127.0.0.1', ready)"),
        env={"PORT": "1"},  # PORT alone, without LISTEN_FDS, changes nothing
    )
    assert end is not None
    got = end.receive_until(lambda m: m.get("data") == {"a": 1})
    port = next(m for m in got if m["type"] == "corral:listening")["data"]["address"]["port"]
    assert port > 1
    assert http_get(port) == f"served by {proc.pid}"
    end.send("shutdown")
    assert finish(proc)[0] == 0


@needs_node
def test_node_shared_socket_for_another_pid_is_left_alone(
    children: Children, tcp_listener: socket.socket
) -> None:
    port = tcp_listener.getsockname()[1]
    proc, end = children.node(
        NODE_SERVER.replace("LISTEN", "server.listen(process.env.PORT, '127.0.0.1')"),
        env={"PORT": str(port), "LISTEN_FDS": "1", "LISTEN_PID": "1"},
    )
    assert end is not None
    # node binds PORT itself, which the test holds: EADDRINUSE, uncaught, reported
    report = end.receive()
    assert report["type"] == "process:exception"
    assert "EADDRINUSE" in report["data"]["message"]
    code, _, err = finish(proc)
    assert code == 1
    assert "EADDRINUSE" in err


@needs_node
def test_node_uncaught_exception_is_reported_and_node_still_exits(children: Children) -> None:
    proc, end = children.node(
        """
        process.on('message', () => {});
        setImmediate(() => { throw new TypeError('boom'); });
        """
    )
    assert end is not None
    report = end.receive()
    assert report["type"] == "process:exception"
    data = report["data"]
    assert (data["name"], data["message"]) == ("TypeError", "boom")
    assert "TypeError: boom" in data["stack"]
    code, _, err = finish(proc)
    assert code == 1
    assert "TypeError: boom" in err

"""The remote plugin: TCP only with CURVE, and nothing of it without the plugin.

Without ``rpc_address`` the daemon has no inet socket at all (see
tests/faults/test_security.py); with it, only clients holding an authorised
key get an answer, and every other client (plain text, an unknown key, the
wrong server key) is refused without changing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import zmq

import corral
from corral.client.requests import start_request
from corral.plugins.remote import keys as remote_keys
from corral.plugins.remote import server as remote_server
from corral.plugins.remote import settings as remote_settings
from corral.plugins.remote import target as remote_target
from corral.rpc.wire import encode
from corral.testing import wait_for
from tests.faults.test_security import PY, free_port, inet_listeners, mode, new_children, run_cli

REFUSED_WITHIN = 2.0  # seconds a refused client waits for an answer that never comes


# -- TCP with CURVE -------------------------------------------------------------------


@dataclass
class TCPDaemon:
    home: Path
    address: str
    port: int
    local: corral.Client  # over the unix socket

    @property
    def keys(self) -> remote_keys.Keys:
        return remote_keys.Keys(self.home / "keys")

    def connect(self, **keys: object) -> corral.Client:
        keys.setdefault("server_key", self.keys.server_public)
        keys.setdefault("client_key", self.keys.client_secret)
        return corral.connect(address=self.address, **keys)  # type: ignore[arg-type]

    def refusals(self) -> list[dict]:
        lines = (self.home / "corral.log").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r.get("event", "").startswith("refused a TCP client")]


@pytest.fixture
def tcp_daemon(corral_home: Path) -> Iterator[TCPDaemon]:
    port = free_port()
    (corral_home / "corral.yaml").write_text(f"rpc_address: tcp://127.0.0.1:{port}\n")
    local = corral.connect()
    yield TCPDaemon(corral_home, f"tcp://127.0.0.1:{port}", port, local)
    with contextlib.suppress(corral.CorralError):
        local.kill_daemon()
    local.disconnect()


def raw_requests(
    address: str, options: dict[int, object], requests: list[tuple[str, dict]]
) -> zmq.Socket:
    """A DEALER socket with ``options`` that sent ``requests`` on the wire, all at once."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in options.items():
        sock.setsockopt(option, value)
    sock.connect(address)
    for n, (cmd, args) in enumerate(requests, 1):
        sock.send(encode({"id": n, "cmd": cmd, "args": args}))
    return sock


def answered(sockets: list[zmq.Socket], timeout: float) -> list[zmq.Socket]:
    """The sockets that got any reply within ``timeout`` seconds."""
    poller = zmq.Poller()
    for sock in sockets:
        poller.register(sock, zmq.POLLIN)
    ready = dict(poller.poll(int(timeout * 1000)))
    return [sock for sock in sockets if sock in ready]


def stranger_key(tmp_path: Path) -> Path:
    """A client keypair the daemon never saw: its secret file."""
    return remote_keys.new_keypair(tmp_path, "stranger")[1]


def test_tcp_keys_are_made_private_and_only_the_tcp_port_listens(tcp_daemon: TCPDaemon) -> None:
    keys = tcp_daemon.keys
    for secret in (keys.server_secret, keys.client_secret):
        assert mode(secret) == 0o600, secret.name
    assert mode(keys.root) == 0o700
    assert mode(keys.clients) == 0o700
    authorised = remote_keys.allowed_keys(keys.clients)
    client_public = remote_keys.read_public_key(keys.client_public, "key")
    assert list(authorised) == [client_public]
    assert remote_keys.read_public_key(keys.client_secret, "key") == client_public
    assert inet_listeners(tcp_daemon.local.daemon_pid) == [("127.0.0.1", tcp_daemon.port)]


def test_an_authorised_client_drives_the_daemon_over_tcp(
    tcp_daemon: TCPDaemon, scripted_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    far = tcp_daemon.connect()
    assert far.home is None
    assert far.ping()["pid"] == tcp_daemon.local.daemon_pid
    far.start(scripted_app(), {"name": "far"})
    online = wait_for(
        lambda: [p for p in far.list() if p.name == "far" and p.status == "online"],
        what="the app started over TCP online",
    )
    assert [p.pid for p in tcp_daemon.local.list()] == [online[0].pid]
    with pytest.raises(corral.DaemonError, match="daemon's machine only"):
        far.launch_bus()

    # the same from the environment, as the CLI reads it
    monkeypatch.setenv("CORRAL_ADDRESS", tcp_daemon.address)
    monkeypatch.setenv("CORRAL_SERVER_KEY", str(tcp_daemon.keys.server_public))
    monkeypatch.setenv("CORRAL_CLIENT_KEY", str(tcp_daemon.keys.client_secret))
    assert [p.name for p in corral.connect().list()] == ["far"]

    async def over_asyncio() -> list[str]:
        client = await corral.AsyncClient.connect()
        try:
            return [p.name for p in await client.list()]
        finally:
            await client.disconnect()

    assert asyncio.run(over_asyncio()) == ["far"]
    far.stop("far")
    assert tcp_daemon.local.describe("far")[0].status == "stopped"


def test_the_cli_drives_a_remote_daemon_and_never_starts_one(
    tcp_daemon: TCPDaemon, scripted_app
) -> None:
    tcp_daemon.local.start(scripted_app(), {"name": "app"})
    elsewhere = Path(tempfile.mkdtemp(prefix="corral-", dir="/tmp"))
    try:
        env = dict(os.environ, CORRAL_HOME=str(elsewhere))
        keys = tcp_daemon.keys
        flags = ["--address", tcp_daemon.address, "--server-key", str(keys.server_public)]
        flags += ["--client-key", str(keys.client_secret)]
        done = run_cli(*flags, "jlist", env=env)
        assert done.returncode == 0, done.stderr
        assert [p["name"] for p in json.loads(done.stdout)] == ["app"]
        assert not (elsewhere / "corral.pid").exists()  # no local daemon was started
    finally:
        with contextlib.suppress(OSError):
            for path in elsewhere.rglob("*"):
                path.unlink()
            elsewhere.rmdir()


def test_unauthenticated_clients_get_no_answer_and_change_nothing(
    tcp_daemon: TCPDaemon, scripted_app, tmp_path: Path
) -> None:
    local = tcp_daemon.local
    local.start(scripted_app(), {"name": "app"})
    before = [(p.name, p.pid, p.status) for p in local.list()]
    stranger = stranger_key(tmp_path)
    stranger_public, stranger_secret = remote_keys.read_secret_key(stranger, "key")
    keys = tcp_daemon.keys
    server_public = remote_keys.read_public_key(keys.server_public, "key")
    client_public, client_secret = remote_keys.read_secret_key(keys.client_secret, "key")
    wrong_server, _ = zmq.curve_keypair()

    def curve(server: bytes, public: bytes, secret: bytes) -> dict[int, object]:
        return remote_target.Remote(tcp_daemon.address, server, public, secret).socket_options()

    refused = {
        "plain text": {},
        "unknown client key": curve(server_public, stranger_public, stranger_secret),
        "wrong server key": curve(wrong_server, client_public, client_secret),
    }
    intruder = {"script": scripted_app(name="intruder"), "name": "intruder"}
    requests = [("start", start_request(intruder, None, None)), ("kill_daemon", {})]
    # the authorised key, sent the same way, shows that an answer would be seen
    authorised = curve(server_public, client_public, client_secret)
    allowed = raw_requests(tcp_daemon.address, authorised, [("ping", {})])
    clients = [raw_requests(tcp_daemon.address, options, requests) for options in refused.values()]
    try:
        assert answered([allowed], timeout=15.0) == [allowed]
        assert answered(clients, timeout=REFUSED_WITHIN) == []
    finally:
        for sock in [*clients, allowed]:
            sock.close(linger=0)
    with pytest.raises(corral.DaemonError, match="your client key is in its keys/clients/"):
        tcp_daemon.connect(client_key=stranger, timeout=REFUSED_WITHIN)

    assert local.ping()["pid"] == local.daemon_pid
    assert [(p.name, p.pid, p.status) for p in local.list()] == before
    refusals = wait_for(
        lambda: (
            {r["refusal"] for r in tcp_daemon.refusals()} >= {"client-key", "server-key"}
            and tcp_daemon.refusals()
        ),
        what="the refusals in corral.log",
    )
    kinds = [r["refusal"] for r in refusals]
    # a refused client retries every 100 ms or so: each kind is logged once a minute
    assert sorted(set(kinds)) == sorted(kinds), kinds
    assert set(kinds) <= {"plain-text", "handshake", "client-key", "server-key"}
    assert {"plain-text", "handshake"} & set(kinds), kinds
    unknown = next(r for r in refusals if r["refusal"] == "client-key")
    assert unknown["client_public_key"] == stranger_public.decode()


def test_authorisations_change_without_a_restart(tcp_daemon: TCPDaemon, tmp_path: Path) -> None:
    secret = stranger_key(tmp_path)
    public = tmp_path / "stranger.key"
    with pytest.raises(corral.DaemonError):
        tcp_daemon.connect(client_key=secret, timeout=REFUSED_WITHIN)
    done = run_cli("keys", "add", str(public), "--name", "laptop")
    assert done.returncode == 0, done.stderr
    assert tcp_daemon.connect(client_key=secret).ping()["pid"] == tcp_daemon.local.daemon_pid

    (tcp_daemon.keys.clients / "laptop.key").unlink()  # revoked
    with pytest.raises(corral.DaemonError):
        tcp_daemon.connect(client_key=secret, timeout=REFUSED_WITHIN)

    done = run_cli("keys", "new", "phone")
    assert done.returncode == 0, done.stderr
    phone = tcp_daemon.keys.root / "phone.key_secret"
    assert str(phone) in done.stdout
    assert mode(phone) == 0o600
    assert tcp_daemon.connect(client_key=phone).ping()["pid"] == tcp_daemon.local.daemon_pid


def test_an_in_process_daemon_stopped_over_tcp_lets_its_owner_disconnect(
    corral_home: Path, corral_daemon
) -> None:
    port = free_port()
    (corral_home / "corral.yaml").write_text(f"rpc_address: tcp://127.0.0.1:{port}\n")
    owner = corral_daemon(plugins=["remote"])
    far = corral.connect(address=f"tcp://127.0.0.1:{port}")  # the keys of CORRAL_HOME
    assert far.ping()["pid"] == os.getpid()
    far.kill_daemon()
    # the owner's own pid never dies: before, its disconnect waited for it forever
    leaving = threading.Thread(target=owner.disconnect, daemon=True)
    leaving.start()
    leaving.join(30)
    assert not leaving.is_alive()


@pytest.mark.parametrize(
    "setting, words",
    [
        ("rpc_address: tcp://nohost", "has no port"),
        ("rpc_address: http://x", "must be tcp://HOST:PORT"),
        ("rpc_address: tcp://127.0.0.1:99999", "port must be a number from 1 to 65535"),
        ("rpc_address: 5800", "must be a string"),
        ("rcp_address: tcp://127.0.0.1:5800", "unknown setting 'rcp_address'"),
    ],
)
def test_a_bad_rpc_address_stops_the_start(corral_home: Path, setting: str, words: str) -> None:
    (corral_home / "corral.yaml").write_text(setting + "\n")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(corral.ConfigError) as caught:
        corral.connect()
    message = str(caught.value)
    assert "\n" not in message
    assert words in message
    assert ("rpc_address" in message) or ("did you mean 'rpc_address'" in message)
    # the daemon's own check, for a daemon started by other means (a boot script)
    done = subprocess.run(
        [PY, "-m", "corral.daemon.main"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert words in done.stderr
    assert new_children(before) == set()
    for left in ("rpc.sock", "corral.pid", "notify.sock", "keys"):
        assert not (corral_home / left).exists(), left


def test_an_rpc_address_that_cannot_be_bound_stops_the_start(corral_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (corral_home / "corral.yaml").write_text(f"rpc_address: tcp://127.0.0.1:{port}\n")
        with pytest.raises(corral.DaemonError, match=f"rpc_address tcp://127.0.0.1:{port}"):
            corral.connect()
    assert not (corral_home / "rpc.sock").exists()
    assert not (corral_home / "corral.pid").exists()


# -- the pieces, without a daemon ---------------------------------------------------------


def test_settings_come_from_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    assert remote_settings.load_settings(tmp_path, {}) == remote_settings.Settings()
    (tmp_path / "corral.yaml").write_text("rpc_address: tcp://127.0.0.1:5800\n")
    assert remote_settings.load_settings(tmp_path, {}).rpc_address == "tcp://127.0.0.1:5800"
    env = {"CORRAL_RPC_ADDRESS": "tcp://[::1]:5801"}
    assert remote_settings.load_settings(tmp_path, env).rpc_address == "tcp://[::1]:5801"
    assert remote_settings.load_settings(tmp_path, {"CORRAL_RPC_ADDRESS": ""}).rpc_address is None
    with pytest.raises(corral.ConfigError, match=r"rpc_address \(from CORRAL_RPC_ADDRESS\)"):
        remote_settings.load_settings(tmp_path, {"CORRAL_RPC_ADDRESS": "http://x"})
    (tmp_path / "corral.yaml").write_text("- rpc_address\n")
    with pytest.raises(corral.ConfigError, match="must be a mapping of settings"):
        remote_settings.load_settings(tmp_path, {})


def test_refusals_are_logged_once_a_minute_per_kind() -> None:
    lines: list[tuple[str, dict]] = []

    class Log:
        def warning(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

    now = [0.0]
    refusals = remote_server.RefusalLog(Log(), interval=60.0, clock=lambda: now[0])
    for _ in range(50):
        refusals.refused("plain-text", "plain")
        now[0] += 0.1
    refusals.refused("client-key", "key", client_key="k")
    assert [fields["refusal"] for _, fields in lines] == ["plain-text", "client-key"]
    now[0] = 61.0
    refusals.refused("plain-text", "plain")
    assert lines[-1][1]["similar_since_last"] == 49


def test_client_keys_must_be_given_private_and_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "empty-home"))
    for name in ("CORRAL_ADDRESS", "CORRAL_SERVER_KEY", "CORRAL_CLIENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert remote_target.remote_target() is None
    with pytest.raises(corral.ConfigError, match="needs server_key"):
        remote_target.remote_target("tcp://127.0.0.1:5800")
    with pytest.raises(corral.ConfigError, match="need address="):
        corral.connect(server_key="x")
    public, secret = remote_keys.new_keypair(tmp_path, "me")
    with pytest.raises(corral.ConfigError, match="holds no secret key"):
        os.chmod(public, 0o600)
        remote_target.remote_target("tcp://127.0.0.1:5800", server_key=public, client_key=public)
    os.chmod(secret, 0o644)
    with pytest.raises(corral.ConfigError, match=f"run `chmod 600 {secret}`"):
        remote_target.remote_target("tcp://127.0.0.1:5800", server_key=public, client_key=secret)
    os.chmod(secret, 0o600)
    z85 = remote_keys.read_public_key(public, "server_key").decode()
    target = remote_target.remote_target("tcp://127.0.0.1:5800", server_key=z85, client_key=secret)
    assert target is not None and target.server_key == z85.encode()
    with pytest.raises(corral.ConfigError, match="neither a key file nor a 40-character key"):
        remote_target.remote_target("tcp://127.0.0.1:5800", server_key="short", client_key=secret)

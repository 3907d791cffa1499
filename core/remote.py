"""Remote control: the daemon's optional TCP endpoint, authenticated with zmq CURVE.

By default the daemon serves RPC on ``ipc://$CORRAL_HOME/rpc.sock`` only: a
unix socket (0600) in a 0700 directory, so only its user reaches it, and the
daemon opens no inet socket. A TCP endpoint opens only when asked for, with
``rpc_address: tcp://HOST:PORT`` in ``$CORRAL_HOME/corral.yaml`` or
``CORRAL_RPC_ADDRESS`` in the daemon's environment (the environment wins; an
empty value turns TCP off). It is served in addition to the unix socket,
always with CURVE: encrypted, and only for clients whose public key is
authorised. There is no plain-text TCP.

``corral.yaml`` holds the daemon's own settings: ``rpc_address``, and the caps
of its TCP acceptor (:mod:`corral.acceptor`): ``tcp_max_connections`` (256),
``tcp_max_per_source`` (16 per IP address) and ``tcp_handshake_timeout`` (10
seconds). An unknown key or a bad value stops the daemon before it binds
anything, with a one-line error naming the setting.

Keys, made on the first start with TCP, in zmq's certificate format (what
``zmq.auth.load_certificate`` reads)::

    keys/server.key          the daemon's public key: every client needs it
    keys/server.key_secret   its secret key (0600); it never leaves this machine
    keys/client.key_secret   a client keypair made for you (0600): copy it to
    keys/client.key          the machine you drive the daemon from
    keys/clients/            the authorised public keys, one ``*.key`` file each

A client that speaks plain text, that does not know the server's public key,
or whose public key is not in ``keys/clients/`` is refused during the
handshake: its requests never reach the daemon. Each kind of refusal is
logged to ``corral.log`` at most once a minute, with the number of similar
ones since. ``keys/clients/`` is read again when it changes, so adding or
deleting a key file takes effect on the next connection without a restart; a
connection already accepted lasts until it closes (restart the daemon to cut
it). An authorised key is as powerful as the daemon's user: it can start any
program on this machine.

A client names the daemon and its keys::

    corral.connect(address="tcp://host:5800",
                   server_key="server.key",          # a file, or the 40-character key
                   client_key="client.key_secret")

or sets ``CORRAL_ADDRESS``, ``CORRAL_SERVER_KEY`` and ``CORRAL_CLIENT_KEY``
(which the CLI reads too). Keys not given are looked for in the local
``$CORRAL_HOME/keys/``, which is what a client on the daemon's own machine
needs. A remote client never starts a daemon; when none answers within the
timeout the error says to check the address and the keys.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import shlex
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from . import paths
from .acceptor import Acceptor, Limits, listen_socket
from .errors import ConfigError, DaemonError, shorten
from .rpc import MAX_FRAME, SyncTransport

RPC_ADDRESS_ENV = "CORRAL_RPC_ADDRESS"
ADDRESS_ENV = "CORRAL_ADDRESS"  # also in corral.client, which must not import this module
SERVER_KEY_ENV = "CORRAL_SERVER_KEY"
CLIENT_KEY_ENV = "CORRAL_CLIENT_KEY"
SETTINGS = ("rpc_address", "tcp_max_connections", "tcp_max_per_source", "tcp_handshake_timeout")
EXAMPLE = "tcp://127.0.0.1:5800"
REFUSAL_LOG_INTERVAL = 60.0  # seconds between two log lines about the same kind of refusal
CONNECT_TIMEOUT = 5.0

# -- the daemon's settings ------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What ``corral.yaml`` and the environment ask of the daemon."""

    rpc_address: str | None = None  # the TCP endpoint; None: the unix socket only
    # connections the TCP endpoint accepts (corral.acceptor)
    limits: Limits = field(default_factory=Limits)


def load_settings(home: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """The daemon's settings for ``home``; ConfigError naming the setting when one is bad."""
    environ = os.environ if environ is None else environ
    path = paths.settings_file(home)
    values = _read_settings(path)
    address, source = values.get("rpc_address"), f"rpc_address in {path}"
    if RPC_ADDRESS_ENV in environ:
        address, source = environ[RPC_ADDRESS_ENV], f"rpc_address (from {RPC_ADDRESS_ENV})"
    limits = Limits(
        **{
            key[len("tcp_") :]: _positive(values[key], f"{key} in {path}", key.endswith("timeout"))
            for key in SETTINGS[1:]
            if key in values
        }
    )
    if address is None or address == "":
        return Settings(limits=limits)
    return Settings(rpc_address=check_tcp_address(address, source), limits=limits)


def _positive(value: Any, source: str, fraction: bool) -> Any:
    """``value`` if it is a number above 0 (an integer unless ``fraction``), else ConfigError."""
    kinds = (int, float) if fraction else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        what = "a number of seconds above 0" if fraction else "a whole number above 0"
        raise ConfigError(f"{source} must be {what}, got {shorten(value)}")
    return value


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    from .config import safe_yaml  # only when the file exists: most homes have none

    values = safe_yaml(text, path)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a mapping of settings, e.g. 'rpc_address: {EXAMPLE}'")
    for key in values:
        if key not in SETTINGS:
            close = difflib.get_close_matches(str(key), SETTINGS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(SETTINGS)}"
            raise ConfigError(f"{path}: unknown setting {shorten(key)} ({hint})")
    return values


def check_tcp_address(value: Any, source: str) -> str:
    """``value`` if it is ``tcp://HOST:PORT``, else ConfigError naming ``source``."""
    if not isinstance(value, str):
        raise ConfigError(f"{source} must be a string like {EXAMPLE}, got {type(value).__name__}")
    if not value.startswith("tcp://"):
        raise ConfigError(
            f"{source} {shorten(value)} must be tcp://HOST:PORT, e.g. {EXAMPLE} "
            "(the local unix socket is always served)"
        )
    host, sep, port = value[len("tcp://") :].rpartition(":")
    if not sep or not host:
        raise ConfigError(
            f"{source} {shorten(value)} has no port: write tcp://HOST:PORT, e.g. {EXAMPLE}"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{source} {shorten(value)}: the port must be a number from 1 to 65535")
    if any(c.isspace() or c in "/?#" for c in host):
        raise ConfigError(
            f"{source} {shorten(value)}: {shorten(host)} is not a host name or IP address"
        )
    return value


def _ipv6(address: str) -> bool:
    return address.startswith("tcp://[")


# -- keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """The key files under ``$CORRAL_HOME/keys``."""

    root: Path

    @property
    def server_public(self) -> Path:
        return self.root / "server.key"

    @property
    def server_secret(self) -> Path:
        return self.root / "server.key_secret"

    @property
    def client_public(self) -> Path:
        return self.root / "client.key"

    @property
    def client_secret(self) -> Path:
        return self.root / "client.key_secret"

    @property
    def clients(self) -> Path:
        return self.root / "clients"


def ensure_keys(home: Path) -> Keys:
    """The keys of ``home``, made on first use: the server's pair, one client pair, authorised.

    The client pair is made only with the server's, so a client key deleted
    from ``keys/clients/`` (revoked) is never authorised again behind your back.
    """
    keys = Keys(paths.keys_dir(home))
    keys.root.mkdir(mode=0o700, exist_ok=True)
    keys.clients.mkdir(mode=0o700, exist_ok=True)
    for directory in (keys.root, keys.clients):
        _check_private_dir(directory)
    if not keys.server_secret.exists():
        new_keypair(keys.root, "server")
        new_keypair(keys.root, "client")
        shutil.copyfile(keys.client_public, keys.clients / "client.key")
    check_secret_file(keys.server_secret, "the server's secret key")
    return keys


def new_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """``name.key`` and ``name.key_secret`` (0600) in ``directory``: ``(public, secret)``.

    Made in a private temporary directory and moved in, secret last, so a
    secret key is never readable by others, and never seen half-written.
    """
    import zmq.auth

    tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=directory))
    try:
        public, secret = (Path(p) for p in zmq.auth.create_certificates(tmp, name))
        os.chmod(secret, 0o600)
        os.replace(public, directory / public.name)
        os.replace(secret, directory / secret.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory / public.name, directory / secret.name


def authorize(home: Path, key: str | os.PathLike, name: str | None = None) -> Path:
    """Allow a client in: copy its public key (a file or 40 characters) to ``keys/clients/``."""
    keys = ensure_keys(home)
    public = read_public_key(key, "key")
    default = Path(key).stem if _is_file(key) else f"client-{hashlib.sha1(public).hexdigest()[:8]}"
    label = _check_name(name or default)
    target = keys.clients / f"{label}.key"
    if target.exists() and read_public_key(target, "key") != public:
        raise ConfigError(f"{target} exists with another key: pick another name, or delete it")
    target.write_text(
        f"# a client allowed to drive this corral daemon over TCP\n"
        f'curve\n    public-key = "{public.decode()}"\n'
    )
    return target


def new_client(home: Path, name: str) -> Path:
    """Make the client keypair ``keys/NAME.key_secret``, authorise it, return its secret file."""
    keys = ensure_keys(home)
    if (keys.root / f"{_check_name(name)}.key_secret").exists():
        raise ConfigError(f"a key named {shorten(name)} exists in {keys.root}: pick another name")
    public, secret = new_keypair(keys.root, name)
    authorize(home, public, name)
    return secret


def _check_name(name: str) -> str:
    if not name or name.startswith(".") or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"name {shorten(name)}: use letters, digits, '-' and '_'")
    return name


def allowed_keys(directory: Path) -> dict[bytes, Path]:
    """The public keys (z85) of the ``*.key`` files in ``directory``; unreadable files skipped."""
    import zmq.auth

    found: dict[bytes, Path] = {}
    for path in sorted(directory.glob("*.key")):
        with contextlib.suppress(OSError, ValueError):
            public, _ = zmq.auth.load_certificate(path)
            found[public] = path
    return found


def read_public_key(value: str | bytes | os.PathLike, field: str) -> bytes:
    """A z85 public key from a certificate file or from its 40 characters."""
    if not _is_file(value):
        text = os.fsdecode(value).strip() if isinstance(value, (str, bytes)) else ""
        if _is_z85_key(text):
            return text.encode()
        raise ConfigError(
            f"{field} {shorten(os.fsdecode(value))} is neither a key file nor a 40-character key: "
            "pass the daemon's keys/server.key (or what `corral keys` prints)"
        )
    try:
        import zmq.auth

        public, _ = zmq.auth.load_certificate(value)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field} {os.fsdecode(value)}: no public key in it ({exc})") from None
    return public


def read_secret_key(path: str | os.PathLike, field: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``*.key_secret`` file that only its owner can read."""
    import zmq.auth

    check_secret_file(Path(path), field)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{field} {os.fsdecode(path)}: cannot read a key from it ({exc})"
        ) from None
    if not secret:
        raise ConfigError(
            f"{field} {os.fsdecode(path)} holds no secret key: pass the .key_secret file"
        )
    return public, secret


def check_secret_file(path: Path, what: str) -> None:
    """Refuse a secret key file that is missing, or that other users could read."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} {path} is open to other users: run `chmod 600 {path}`")


def _check_private_dir(path: Path) -> None:
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to uid {info.st_uid}, not to you: delete it")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{path} is writable by other users: run `chmod 700 {path}`")


def _is_file(value: Any) -> bool:
    try:
        return os.path.isfile(value)
    except (TypeError, ValueError):
        return False


def _is_z85_key(text: str) -> bool:
    from zmq.utils import z85

    if len(text) != 40:
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, KeyError, TypeError):
        return False


# -- the daemon's side -------------------------------------------------------------


class RefusalLog:
    """Logs refused TCP clients: each kind at most once per ``interval``, with a count.

    A refused client reconnects every 100 ms or so; one line a minute says
    as much as six hundred.
    """

    def __init__(
        self,
        log: Any,
        interval: float = REFUSAL_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._since = Counter[str]()

    def refused(self, kind: str, why: str, **fields: Any) -> None:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._since[kind] += 1
            return
        self._last[kind] = now
        similar = self._since.pop(kind, 0)
        if similar:
            fields["similar_since_last"] = similar
        self.log.warning(f"refused a TCP client: {why}", refusal=kind, **fields)


# handshake failures the socket monitor reports, by zmq's protocol error code
_PROTOCOL_REFUSALS = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: (
        "plain-text",
        "it does not use CURVE (a plain-text client)",
    ),
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: (
        "server-key",
        "its server key is not this daemon's (keys/server.key)",
    ),
}


def _refusal(event: dict[str, Any]) -> tuple[str, str]:
    """``(kind, why)`` of a failed handshake the socket monitor reported."""
    value = int(event["value"])
    if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return _PROTOCOL_REFUSALS.get(value, ("handshake", f"zmq protocol error {value:#x}"))
    # a plain-text client often hangs up on CURVE's greeting before the daemon reads its own
    why = f"it hung up during the handshake ({os.strerror(value)}; often a plain-text client)"
    return "handshake", why


class AllowedKeys:
    """zmq's CURVE credentials provider: the keys in ``keys/clients/``, read again on change."""

    def __init__(self, directory: Path, refusals: RefusalLog) -> None:
        self.directory = directory
        self.refusals = refusals
        self._stamp: tuple | None = None
        self._keys: dict[bytes, Path] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        self._refresh()
        if key in self._keys:
            return True
        self.refusals.refused(
            "client-key",
            "its public key is not in keys/clients/",
            client_public_key=key.decode(),
            fix=f"to allow it: corral keys add {shlex.quote(key.decode())}",
        )
        return False

    def _refresh(self) -> None:
        try:
            stamp = tuple(
                (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                for entry in os.scandir(self.directory)
            )
        except OSError:
            stamp = ()
        if stamp != self._stamp:
            self._stamp = stamp
            self._keys = allowed_keys(self.directory)


class TCPServer:
    """The daemon's TCP endpoint: the RPC wire behind CURVE, on a zmq context of its own.

    Its own context keeps zmq's authenticator (which serves a whole context)
    away from the unix socket, which stays as it was.
    """

    def __init__(
        self, address: str, keys: Keys, handler: Any, log: Any, limits: Limits | None = None
    ) -> None:
        import asyncio

        import zmq.asyncio
        import zmq.auth
        from zmq.auth.asyncio import AsyncioAuthenticator

        from .rpc_async import RPCServer

        self.address = address
        self.refusals = RefusalLog(log)
        public, secret = zmq.auth.load_certificate(keys.server_secret)
        self.ctx = zmq.asyncio.Context()
        # pyzmq logs every ZAP decision at debug level; corral.log gets the rate-limited lines
        self.auth = AsyncioAuthenticator(self.ctx, log=logging.getLogger("corral.remote.zap"))
        self.auth.start()
        self.auth.configure_curve_callback("*", AllowedKeys(keys.clients, self.refusals))
        options: dict[int, Any] = {
            zmq.CURVE_SERVER: 1,
            zmq.CURVE_PUBLICKEY: public,
            zmq.CURVE_SECRETKEY: secret,
            zmq.MAXMSGSIZE: MAX_FRAME + 1024,  # a bigger frame drops the connection, unread
        }
        limits = limits or Limits()
        # a peer that stalls in the handshake is dropped (the acceptor then closes its TCP)
        options[zmq.HANDSHAKE_IVL] = int(limits.handshake_timeout * 1000)
        # zmq serves CURVE on a private unix socket; the acceptor splices TCP to it
        self.endpoint = keys.root.parent / "tcp.sock"
        with contextlib.suppress(FileNotFoundError):
            self.endpoint.unlink()  # a dead daemon's
        try:
            listener = listen_socket(address)
        except OSError as exc:
            self.auth.stop()
            self.ctx.destroy(linger=0)
            raise DaemonError(
                f"rpc_address {address}: cannot listen there: {exc.strerror or exc}: use an "
                "address of this machine (an IP, an interface name or *) and a free port"
            ) from None
        try:
            self.server = RPCServer(self.ctx, f"ipc://{self.endpoint}", handler, options, log=log)
        except zmq.ZMQError as exc:
            listener.close()
            self.auth.stop()
            self.ctx.destroy(linger=0)
            raise DaemonError(f"cannot serve CURVE on {self.endpoint}: {exc.strerror}") from None
        os.chmod(self.endpoint, 0o600)
        self.acceptor = Acceptor(listener, str(self.endpoint), limits, self.refusals)
        self.monitor = self.server.socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._tasks = [
            asyncio.ensure_future(self.server.serve()),
            asyncio.ensure_future(self._watch_handshakes()),
            asyncio.ensure_future(self.acceptor.start()),
        ]

    async def _watch_handshakes(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = await recv_monitor_message(self.monitor)
            except zmq.ZMQError:
                return
            self.refusals.refused(*_refusal(event))

    async def close(self) -> None:
        """Let in-flight replies go out, then close the endpoint."""
        await self.server.drain()
        await self.acceptor.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(zmq.ZMQError):
            self.server.socket.disable_monitor()
        self.monitor.close(linger=0)
        self.server.close()
        self.auth.stop()
        self.ctx.destroy(linger=200)
        with contextlib.suppress(FileNotFoundError):
            self.endpoint.unlink()


def open_server(home: Path, handler: Any, log: Any) -> TCPServer | None:
    """The TCP endpoint the settings of ``home`` ask for (keys made on first use), or None.

    Call it on the daemon's running loop before anything else is bound: a bad
    ``rpc_address`` raises ConfigError (DaemonError when the address cannot
    be bound), and the daemon has started nothing.
    """
    settings = load_settings(home)
    if settings.rpc_address is None:
        return None
    keys = ensure_keys(home)
    try:
        server = TCPServer(settings.rpc_address, keys, handler, log, settings.limits)
    except DaemonError as exc:
        log.error("daemon failed to start", error=str(exc))
        raise
    log.info(
        "serving RPC over TCP with CURVE",
        address=settings.rpc_address,
        server_key=str(keys.server_public),
        clients=str(keys.clients),
        max_connections=settings.limits.total(),
        max_per_source=settings.limits.max_per_source,
    )
    return server


# -- the client's side -------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """A remote daemon's address and the keys to reach it."""

    address: str
    server_key: bytes  # z85, the daemon's public key
    public_key: bytes  # z85, this client's
    secret_key: bytes  # z85, this client's

    def socket_options(self) -> dict[int, Any]:
        """What a DEALER socket needs set before it connects."""
        options: dict[int, Any] = {
            zmq.CURVE_SERVERKEY: self.server_key,
            zmq.CURVE_PUBLICKEY: self.public_key,
            zmq.CURVE_SECRETKEY: self.secret_key,
        }
        if _ipv6(self.address):
            options[zmq.IPV6] = 1
        return options


def remote_target(
    address: str | None = None,
    server_key: str | bytes | os.PathLike | None = None,
    client_key: str | os.PathLike | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Remote | None:
    """The remote daemon a client was told to use (arguments, then environment), or None.

    Keys not given are the local ``$CORRAL_HOME/keys/server.key`` and
    ``keys/client.key_secret``, when they exist.
    """
    environ = os.environ if environ is None else environ
    address = address or environ.get(ADDRESS_ENV) or None
    if address is None:
        if server_key is not None or client_key is not None:
            raise ConfigError("server_key and client_key need address='tcp://HOST:PORT'")
        return None
    check_tcp_address(address, "address")
    local = Keys(paths.keys_dir(paths.home()))
    server_key = server_key or environ.get(SERVER_KEY_ENV) or _existing(local.server_public)
    client_key = client_key or environ.get(CLIENT_KEY_ENV) or _existing(local.client_secret)
    if not server_key:
        raise ConfigError(
            f"connecting to {address} needs server_key (or {SERVER_KEY_ENV}): "
            "the daemon's keys/server.key, or the key `corral keys` prints there"
        )
    if not client_key:
        raise ConfigError(
            f"connecting to {address} needs client_key (or {CLIENT_KEY_ENV}): a .key_secret "
            "file whose public key is in the daemon's keys/clients/ (its keys/client.key_secret)"
        )
    public, secret = read_secret_key(client_key, "client_key")
    return Remote(address, read_public_key(server_key, "server_key"), public, secret)


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def ping_remote(remote: Remote, timeout: float) -> dict[str, Any] | None:
    """The daemon's ping reply over a fresh connection, or None if none comes in time."""
    transport = SyncTransport(remote.address, lambda: True, remote.socket_options())
    try:
        return transport.call("ping", {}, timeout=timeout)
    except DaemonError:
        return None
    finally:
        transport.close()


def no_answer(remote: Remote, timeout: float) -> DaemonError:
    return DaemonError(
        f"no corral daemon answered at {remote.address} within {timeout:g} s: check the "
        "address, that the daemon has rpc_address set, that server_key is its "
        "keys/server.key and that your client key is in its keys/clients/"
    )


class RemoteAlive:
    """``daemon_alive`` for a remote daemon: a ping on a fresh connection, now and then.

    The transport asks while it waits for a slow reply; a daemon that answered
    within ``every`` seconds is taken to be alive without asking again.
    """

    def __init__(self, remote: Remote, every: float = 5.0, timeout: float = 3.0) -> None:
        self.remote = remote
        self.every = every
        self.timeout = timeout
        self._confirmed = time.monotonic()

    def __call__(self) -> bool:
        if time.monotonic() - self._confirmed < self.every:
            return True
        if ping_remote(self.remote, self.timeout) is None:
            return False
        self._confirmed = time.monotonic()
        return True

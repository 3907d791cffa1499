"""The CURVE keys of the TCP endpoint, in zmq's certificate format, under ``$CORRAL_HOME/keys``.

Made on the first start with TCP (what ``zmq.auth.load_certificate`` reads)::

    keys/server.key          the daemon's public key: every client needs it
    keys/server.key_secret   its secret key (0600); it never leaves this machine
    keys/client.key_secret   a client keypair made for you (0600): copy it to
    keys/client.key          the machine you drive the daemon from
    keys/clients/            the authorised public keys, one ``*.key`` file each
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq.auth
from zmq.utils import z85

from corral import ConfigError
from corral.api import shorten


def keys_dir(home: Path) -> Path:
    """The CURVE keys of the TCP endpoint of the daemon of ``home``."""
    return home / "keys"


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
    keys = Keys(keys_dir(home))
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
        public, _ = zmq.auth.load_certificate(value)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field} {os.fsdecode(value)}: no public key in it ({exc})") from None
    return public


def read_secret_key(path: str | os.PathLike, field: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``*.key_secret`` file that only its owner can read."""
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
    if len(text) != 40:
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, KeyError, TypeError):
        return False

"""The dashboard's secrets, in ``$CORRAL_HOME/web/`` (0700): the API's bearer token
and the one-time login tokens that ``corral web url`` prints.

A login token is 32 random bytes, URL-safe; only its SHA-256 is written (a file
named after it, holding its expiry), so a reader of the directory cannot log in
with what it finds. Taking a token removes its file first: of two requests with
one token, one wins (``unlink`` succeeds once), and an expired one is refused.
The bearer token is kept in clear (0600), as ``keys/`` keeps the daemon's keys:
scripts read it from there.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

LOGIN_TTL = 300.0  # seconds a login URL stays usable


def web_dir(home: Path) -> Path:
    """``home/web``, made 0700 if missing."""
    folder = home / "web"
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "logins").mkdir(mode=0o700, exist_ok=True)
    return folder


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_login_token(home: Path, ttl: float = LOGIN_TTL) -> str:
    """A fresh one-time login token, usable for ``ttl`` seconds."""
    token = secrets.token_urlsafe(32)
    path = web_dir(home) / "logins" / _digest(token)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(str(time.time() + ttl))
    return token


def take_login_token(home: Path, token: str) -> bool:
    """Whether ``token`` is a login token not used yet and not expired; it is used now."""
    if not token or len(token) > 200:
        return False
    path = home / "web" / "logins" / _digest(token)
    try:
        expiry = float(path.read_text())
        path.unlink()  # the one request that removes it is the one that logs in
    except (OSError, ValueError):
        return False
    return time.time() < expiry


def sweep_login_tokens(home: Path) -> None:
    """Remove the login tokens that expired unused."""
    folder = home / "web" / "logins"
    now = time.time()
    for path in folder.glob("*") if folder.is_dir() else ():
        try:
            if float(path.read_text()) < now:
                path.unlink()
        except (OSError, ValueError):
            continue


def api_token(home: Path) -> str:
    """The API's bearer token, made on first use (``home/web/api.token``, 0600)."""
    path = web_dir(home) / "api.token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another start made it meanwhile
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def same(given: str, expected: str) -> bool:
    """A comparison whose time does not tell how much of ``given`` was right."""
    return hmac.compare_digest(given.encode(), expected.encode())

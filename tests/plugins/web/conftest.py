"""What the web tests share: a real daemon with the bus, a real ``corral web start``
on a free port, and a plain HTTP client (``http.client``: no cookie jar, no redirect
followed, so each test sees exactly what the server answered)."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import corral
from tests.conftest import run_cli

APP = "corral-web"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request over a new connection; the reply as it came (no redirect followed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, target, body=data, headers=headers or {})
        answer = conn.getresponse()
        return Reply(answer.status, answer.headers, answer.read())
    finally:
        conn.close()


@dataclass
class Session:
    """A logged-in browser, as far as the server can tell: its cookie and the key its
    login page kept in ``localStorage``."""

    cookie: str  # "corral_session_<port>=..."
    key: str

    def headers(self, key: bool = True) -> dict[str, str]:
        chosen = {"Cookie": self.cookie}
        if key:
            chosen["X-Corral-Key"] = self.key
        return chosen


def login_key(page: str) -> str:
    """The key a login page hands its script."""
    found = re.search(r'<meta name="corral-key" content="([^"]+)">', page)
    assert found, page
    return found.group(1)


@dataclass
class Dashboard:
    """A dashboard ``corral web start`` started, and what it printed."""

    home: Path
    host: str
    port: int
    login_url: str  # the one `web start` printed (unused yet)
    stderr: str
    used: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The API's bearer token, where scripts read it."""
        return (self.home / "web" / "api.token").read_text().strip()

    def bearer(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def new_login_url(self) -> str:
        """A fresh one-time login URL, from `corral web url`."""
        return run_cli("web", "url").stdout.strip()

    def get(self, path: str, **kw: Any) -> Reply:
        return request("GET", self.base + path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return request("POST", self.base + path, **kw)

    def api(self, path: str) -> Any:
        """GET ``/api/...`` with the bearer token; its JSON (asserting a 200)."""
        reply = self.get(path, headers=self.bearer())
        assert reply.status == 200, (path, reply.status, reply.text)
        return reply.json()

    def login(self, url: str | None = None) -> Session:
        """Open a session with a login URL (a fresh one by default), as a browser does."""
        url = url or self.new_login_url()
        reply = request("GET", url)
        assert reply.status == 200, (reply.status, reply.text)
        cookie = reply.headers["set-cookie"].split(";")[0]
        assert cookie.startswith(f"corral_session_{self.port}="), cookie
        return Session(cookie, login_key(reply.text))


@pytest.fixture
def web_plugins() -> str:
    """The plugins of the daemon and the CLI (parametrize it to add one)."""
    return "bus,web"


@pytest.fixture
def web_pm(
    corral_home: Path, monkeypatch: pytest.MonkeyPatch, web_plugins: str
) -> Iterator[corral.Client]:
    """A client of a real detached daemon loading ``web_plugins``; killed at teardown."""
    monkeypatch.setenv("CORRAL_PLUGINS", web_plugins)
    client = corral.connect()
    yield client
    with contextlib.suppress(Exception):
        client.kill_daemon()
    client.disconnect()


@pytest.fixture
def start_dashboard(web_pm: corral.Client, corral_home: Path) -> Callable[..., Dashboard]:
    """``start_dashboard("--readonly", host=...)``: `corral web start` on a free port,
    waited for until its list has been sampled once."""

    def start(*flags: str, host: str | None = None) -> Dashboard:
        port = free_port()
        argv = ["web", "start", "--port", str(port), *flags]
        if host is not None:
            argv += ["--host", host]
        done = run_cli(*argv)
        url = done.stdout.strip().splitlines()[-1]
        assert url.startswith(f"http://127.0.0.1:{port}/login?token="), done.stdout
        dash = Dashboard(corral_home, host or "127.0.0.1", port, url, done.stderr)
        # the sampler's first jlist: before it, /api/processes/{id} knows no app
        wait_sampled(dash)
        return dash

    return start


def wait_sampled(dash: Dashboard, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = dash.get(f"/api/processes/{_web_pm_id(dash)}", headers=dash.bearer())
        if reply.status == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"the dashboard did not sample the list within {timeout:g} s")


def _web_pm_id(dash: Dashboard) -> int:
    listed = dash.api("/api/processes")
    return next(p["pm_id"] for p in listed if p["name"] == APP)


class Stream:
    """``GET /api/stream`` read as a browser's EventSource does: one message at a time."""

    def __init__(self, dash: Dashboard, query: str = "", headers: dict | None = None) -> None:
        parts = urllib.parse.urlsplit(dash.base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.conn.request("GET", f"/api/stream{query}", headers=headers or dash.bearer())
        self.reply = self.conn.getresponse()

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next ``data:`` message (keep-alive comments skipped)."""
        assert self.conn.sock is not None
        self.conn.sock.settimeout(timeout)
        while True:
            try:
                line = self.reply.readline()  # through the chunked encoding
            except TimeoutError:
                raise AssertionError(f"no message on the stream within {timeout:g} s") from None
            if not line:
                raise AssertionError("the stream ended")
            if line.startswith(b"data: "):
                return json.loads(line[len(b"data: ") :])

    def until(self, wanted: Callable[[dict], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no wanted message on the stream within {timeout:g} s")
            message = self.next(left)
            if wanted(message):
                return message

    def close(self) -> None:
        self.conn.close()

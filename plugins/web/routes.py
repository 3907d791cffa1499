"""The dashboard's HTTP side: its pages, its JSON API under ``/api/``, its event
stream, and its actions, each behind :class:`~corral.plugins.web.auth.Gate`.

- ``GET /login?token=T``: opens a session (a one-time token): a page that keeps its
  key in ``localStorage``, then goes to ``/``;
- ``GET /``, ``GET /app/{pm_id}``: the list, an app's page;
- ``GET /api/processes``: every process, in ``pm2 jlist``'s shape; ``/{pm_id}``: one;
- ``GET /api/processes/{pm_id}/history``: its cpu and memory over the last hour;
- ``GET /api/processes/{pm_id}/events``: its recent events;
- ``GET /api/processes/{pm_id}/logs?lines=&out=&err=&q=``: its last log lines, the
  page before the offsets ``out`` and ``err``, or the lines holding ``q``;
- ``GET /api/stream?logs={pm_id}``: server-sent events: the list every second, the
  events, and that app's log lines;
- ``POST /api/processes/{pm_id}/{action}``: start, stop, restart, reload, flush,
  scale (``{"instances": n}``, 1 to 100);
- ``POST /api/logout``: ends the session.

Actions act on existing apps only: nothing here starts a new script or command,
which would hand a shell to whoever holds a session. In read-only mode every
action is refused (403) and the pages show no button. What every response carries
and what every request must pass (headers, the Host check, the body limit) is
:class:`Guard`.
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

import corral
from corral import api

from . import logs
from .auth import KEY_HEADER, Gate, Session, cookie_name
from .loopback import is_loopback

STATIC = Path(__file__).parent / "static"
ASSETS = {"corral.js": "text/javascript", "corral.css": "text/css", "login.js": "text/javascript"}
ACTIONS = ("start", "stop", "restart", "reload", "flush", "scale")
KEEPALIVE = 15.0  # seconds between two comments on an idle stream
MAX_LINES = 2000
MAX_BODY = 4096  # bytes of a request's body
MAX_STREAMS = 64  # event streams open at once
MAX_INSTANCES = 100  # what one scale from the dashboard may ask
UNAUTHORIZED = (
    "401: not logged in. Run `corral web url` and open the URL it prints "
    "(or send Authorization: Bearer <$CORRAL_HOME/web/api.token>)."
)
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class Dashboard:
    """The routes, with what they share: the hub, the gate, one client for actions."""

    def __init__(
        self,
        hub: Any,
        gate: Gate,
        *,
        readonly: bool,
        port: int = 9615,
        host: str = "127.0.0.1",
        connect: Any = corral.connect,
    ):
        self.hub, self.gate, self.readonly = hub, gate, readonly
        self.port, self.host = port, host
        self.cookie = cookie_name(port)
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()  # one action at a time on the one client
        self.streams = 0  # event streams open now

    def app(self) -> Any:
        starlette = Starlette(
            routes=[
                Route("/login", self.login),
                Route("/favicon.ico", _no_icon),
                Route("/", self.page("index.html")),
                Route("/app/{pm_id:int}", self.page("app.html")),
                Route("/static/{name}", self.asset),
                Route("/api/processes", self.processes),
                Route("/api/processes/{pm_id:int}", self.process),
                Route("/api/processes/{pm_id:int}/history", self.history),
                Route("/api/processes/{pm_id:int}/events", self.events),
                Route("/api/processes/{pm_id:int}/logs", self.logs),
                Route("/api/stream", self.stream),
                Route("/api/logout", self.logout, methods=["POST"]),
                Route("/api/processes/{pm_id:int}/{action}", self.action, methods=["POST"]),
            ]
        )
        hosts = _allowed_hosts(self.host, self.port)
        return Guard(starlette, hosts)

    # -- who is asking -------------------------------------------------------

    def who(self, request: Request) -> Session | str | None:
        """For ``/api/``: the request's session (its cookie AND its key), ``"bearer"``
        for the API token, or None."""
        if self.gate.bearer_ok(request.headers.get("authorization")):
            return "bearer"
        key = request.headers.get(KEY_HEADER)
        if key is None and request.url.path == "/api/stream":
            key = request.query_params.get("key")  # an EventSource sets no header
        return self.gate.keyed(request.cookies.get(self.cookie), key)

    async def login(self, request: Request) -> Response:
        opened = self.gate.login(request.query_params.get("token", ""))
        if opened is None:
            return PlainTextResponse(
                "401: this login link is unknown, used or expired: run `corral web url` "
                "for a new one",
                status_code=401,
                headers=_NO_STORE,
            )
        session_id, session = opened
        # a page, not a redirect: its script keeps the key where only this origin
        # (this port) reads it, then goes to / from this origin (so a link opened
        # from another site gets the SameSite=Strict cookie there too)
        text = (STATIC / "login.html").read_text().replace("{{key}}", html.escape(session.key))
        response = HTMLResponse(text, headers=_NO_STORE)
        response.set_cookie(self.cookie, session_id, httponly=True, samesite="strict", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        who = self.who(request)
        if who is None:
            return _unauthorized()
        if isinstance(who, Session):
            self.gate.logout(request.cookies.get(self.cookie))
        response = JSONResponse({"ok": True, "logged_out": isinstance(who, Session)})
        response.delete_cookie(self.cookie, path="/", httponly=True, samesite="strict")
        return response

    # -- pages -----------------------------------------------------------------

    def page(self, name: str) -> Any:
        async def serve(request: Request) -> Response:
            if self.gate.session(request.cookies.get(self.cookie)) is None:
                return PlainTextResponse(UNAUTHORIZED, status_code=401)
            text = (STATIC / name).read_text()  # no data, no secret: the script reads K
            text = text.replace("{{readonly}}", "true" if self.readonly else "false")
            return HTMLResponse(text, headers=_NO_STORE)

        return serve

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        session = self.gate.session(request.cookies.get(self.cookie))
        if session is None and not self.gate.bearer_ok(request.headers.get("authorization")):
            return PlainTextResponse(UNAUTHORIZED, status_code=401)
        if name not in ASSETS:
            return PlainTextResponse("404: no such file", status_code=404)
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])

    # -- the API -----------------------------------------------------------------

    async def processes(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        raw = await run_in_threadpool(self._call, lambda c: c.jlist_json())
        masked = await run_in_threadpool(lambda: [masked_process(p) for p in json.loads(raw)])
        return JSONResponse(masked)

    async def process(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        proc = self.hub.process(request.path_params["pm_id"])
        return JSONResponse(masked_process(proc)) if proc is not None else _no_such(request)

    async def history(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        if not await self._exists(request.path_params["pm_id"]):
            return _no_such(request)
        samples = self.hub.samples(request.path_params["pm_id"])
        return JSONResponse({"samples": samples})

    async def events(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        if not await self._exists(request.path_params["pm_id"]):
            return _no_such(request)
        return JSONResponse({"events": self.hub.events(request.path_params["pm_id"])})

    async def _exists(self, pm_id: int) -> bool:
        """Whether the daemon has ``pm_id``: the hub's last word, else the daemon's own
        (an app started since the last sample is no 404)."""
        if self.hub.knows(pm_id):
            return True
        try:
            await run_in_threadpool(self._call, lambda client: client.describe(pm_id))
        except corral.NotFoundError:
            return False
        return True

    async def logs(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        proc = self.hub.process(request.path_params["pm_id"])
        if proc is None:
            return _no_such(request)
        query = request.query_params
        needle = query.get("q", "")
        if needle:
            return JSONResponse(await run_in_threadpool(logs.search, proc, needle[:200]))
        try:
            count = min(max(_number(query.get("lines", "200")), 1), MAX_LINES)
            before = {s: _number(query[s]) if query.get(s) else None for s in ("out", "err")}
        except ValueError:
            return JSONResponse({"error": "lines, out and err are numbers"}, status_code=400)
        return JSONResponse(await run_in_threadpool(logs.page, proc, count, before))

    async def stream(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        wanted = request.query_params.get("logs")
        try:
            logs_of = _number(wanted) if wanted else None
        except ValueError:
            logs_of = None
        if self.streams >= MAX_STREAMS:
            return JSONResponse(
                {"error": f"{MAX_STREAMS} streams are open already: close a tab"},
                status_code=503,
            )
        self.streams += 1
        try:
            subscriber = self.hub.subscribe(logs_of)
        except BaseException:
            self.streams -= 1
            raise

        async def send() -> Any:
            try:
                while not subscriber.dropped:
                    try:
                        message = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE)
                    except asyncio.TimeoutError:
                        yield ": still here\n\n"
                        continue
                    yield f"data: {json.dumps(message)}\n\n"
            finally:
                self.streams -= 1
                self.hub.unsubscribe(subscriber)

        headers = {**_NO_STORE, "X-Accel-Buffering": "no"}
        return StreamingResponse(send(), media_type="text/event-stream", headers=headers)

    # -- actions -----------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        if self.readonly:
            return JSONResponse({"error": "the dashboard is read-only"}, status_code=403)
        action, pm_id = request.path_params["action"], request.path_params["pm_id"]
        if action not in ACTIONS:
            return JSONResponse(
                {"error": f"unknown action {action!r}: one of {', '.join(ACTIONS)}"},
                status_code=404,
            )
        proc = self.hub.process(pm_id)
        if proc is None:
            return _no_such(request)
        try:
            body = json.loads(await _read_body(request)) if action == "scale" else {}
            act = _act(action, pm_id, proc["name"], body)
        except BodyTooLarge:
            return _too_large()
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if action == "scale":
            shared = self._namespaces_sharing(proc)
            if shared:
                return JSONResponse({"error": shared}, status_code=409)
        try:
            await run_in_threadpool(self._call, act)
        except corral.CorralError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        self.hub.wake()
        return JSONResponse({"ok": True, "action": action, "pm_id": pm_id})

    def _namespaces_sharing(self, proc: dict[str, Any]) -> str | None:
        """Why a scale of ``proc`` is refused: the daemon scales by name, across
        namespaces, so it would add or remove instances of another namespace's app."""
        name = proc.get("name")
        mine = str((proc.get("pm2_env") or {}).get("namespace", "default"))
        others = sorted(self.hub.namespaces_of(name) - {mine})
        if not others:
            return None
        return (
            f"scale refused: apps of namespace {', '.join(others)} are named {name!r} too, "
            f"and a scale acts on every app of that name; rename one of them first"
        )

    def _call(self, work: Any) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return work(self._client)


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    """The request's body, refused once it passes :data:`MAX_BODY` (never read whole)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def masked_process(proc: dict[str, Any]) -> dict[str, Any]:
    """A process of ``jlist`` fit to show, as ``corral describe`` masks it: every value
    under a secret name (in ``pm2_env``, where PM2 copies the app's variables, in its
    ``env`` and below), and every known secret value or URL password wherever it is."""
    env = proc.get("pm2_env") or {}
    known = api.secret_values(env.get("env") or {}) | api.secret_values(
        {k: v for k, v in env.items() if isinstance(v, str)}
    )
    return api.mask_data(proc, known)


def _act(action: str, pm_id: int, name: str, body: Any) -> Any:
    """The client call of ``action`` (ValueError for a bad scale)."""
    if action == "scale":
        instances = body.get("instances") if isinstance(body, dict) else None
        if (
            not isinstance(instances, int)
            or isinstance(instances, bool)
            or not 1 <= instances <= MAX_INSTANCES
        ):
            raise ValueError(
                f'scale takes {{"instances": n}}, n a whole number from 1 to {MAX_INSTANCES}'
            )
        return lambda client: client.scale(name, instances)
    if action == "start":
        return lambda client: client.restart(pm_id)  # a stopped app's start, as PM2's
    return lambda client: getattr(client, action)(pm_id)


def _number(text: str) -> int:
    """A whole number of ASCII digits (``int`` and ``isdigit`` take "²" or "٣")."""
    if not text or len(text) > 18 or not all("0" <= c <= "9" for c in text):
        raise ValueError(text)
    return int(text)


def _allowed_hosts(host: str, port: int) -> frozenset[bytes] | None:
    """The Host headers a dashboard bound to loopback answers (a DNS-rebinding
    defence); None (any) when bound to another address."""
    if not is_loopback(host):
        return None
    names = [*LOOPBACK_HOSTS]
    return frozenset(n.encode() for n in names + [f"{n}:{port}" for n in names])


class Guard:
    """Around the whole app, at the ASGI level (streams untouched): the Host check, a
    body larger than :data:`MAX_BODY` refused by its Content-Length, and the headers
    every response carries (no framing, no sniffing, no referrer)."""

    def __init__(self, app: Any, hosts: frozenset[bytes] | None) -> None:
        self.app, self.hosts = app, hosts

    @property
    def routes(self) -> list[Any]:
        return self.app.routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in _SECURITY_NAMES]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").lower()
        if self.hosts is not None and host not in self.hosts:
            reply = PlainTextResponse(
                "421: this dashboard answers only to 127.0.0.1, localhost or [::1]",
                status_code=421,
            )
            await reply(scope, receive, send_guarded)
            return
        length = headers.get(b"content-length", b"")
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            await _too_large()(scope, receive, send_guarded)
            return
        await self.app(scope, receive, send_guarded)


_SECURITY_NAMES = frozenset(name for name, _value in SECURITY_HEADERS)
_NO_STORE = {"Cache-Control": "no-store"}


async def _no_icon(request: Request) -> Response:
    return Response(status_code=204)


def _unauthorized() -> Response:
    return JSONResponse({"error": UNAUTHORIZED}, status_code=401)


def _too_large() -> Response:
    return JSONResponse({"error": f"the request's body is over {MAX_BODY} bytes"}, status_code=413)


def _no_such(request: Request) -> Response:
    pm_id = request.path_params["pm_id"]
    return JSONResponse({"error": f"no process with pm_id {pm_id}"}, status_code=404)

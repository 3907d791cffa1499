"""The dashboard's HTTP side: its pages, its JSON API under ``/api/``, its event
stream, and its actions, each behind :class:`~corral.plugins.web.auth.Gate`.

- ``GET /login?token=T``: opens a session (a one-time token), then ``/``;
- ``GET /``, ``GET /app/{pm_id}``: the list, an app's page;
- ``GET /api/processes``: every process, in ``pm2 jlist``'s shape; ``/{pm_id}``: one;
- ``GET /api/processes/{pm_id}/history``: its cpu and memory over the last hour;
- ``GET /api/processes/{pm_id}/events``: its recent events;
- ``GET /api/processes/{pm_id}/logs?lines=&out=&err=&q=``: its last log lines, the
  page before the offsets ``out`` and ``err``, or the lines holding ``q``;
- ``GET /api/stream?logs={pm_id}``: server-sent events: the list every second, the
  events, and that app's log lines;
- ``POST /api/processes/{pm_id}/{action}``: start, stop, restart, reload, flush,
  scale (``{"instances": n}``).

Actions act on existing apps only: nothing here starts a new script or command,
which would hand a shell to whoever holds a session. In read-only mode every
action is refused (403) and the pages show no button.
"""

from __future__ import annotations

import asyncio
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
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

import corral

from . import logs
from .auth import COOKIE, Gate, Session

STATIC = Path(__file__).parent / "static"
ASSETS = {"corral.js": "text/javascript", "corral.css": "text/css"}
ACTIONS = ("start", "stop", "restart", "reload", "flush", "scale")
KEEPALIVE = 15.0  # seconds between two comments on an idle stream
MAX_LINES = 2000
UNAUTHORIZED = (
    "401: not logged in. Run `corral web url` and open the URL it prints "
    "(or send Authorization: Bearer <$CORRAL_HOME/web/api.token>)."
)


class Dashboard:
    """The routes, with what they share: the hub, the gate, one client for actions."""

    def __init__(self, hub: Any, gate: Gate, *, readonly: bool, connect: Any = corral.connect):
        self.hub, self.gate, self.readonly = hub, gate, readonly
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()  # one action at a time on the one client

    def app(self) -> Starlette:
        return Starlette(
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
                Route("/api/processes/{pm_id:int}/{action}", self.action, methods=["POST"]),
            ]
        )

    # -- who is asking -------------------------------------------------------

    def who(self, request: Request) -> Session | str | None:
        """The request's session, ``"bearer"`` for the API token, or None."""
        session = self.gate.session(request.cookies.get(COOKIE))
        if session is not None:
            return session
        return "bearer" if self.gate.bearer_ok(request.headers.get("authorization")) else None

    async def login(self, request: Request) -> Response:
        session_id = self.gate.login(request.query_params.get("token", ""))
        if session_id is None:
            return PlainTextResponse(
                "401: this login link is unknown, used or expired: run `corral web url` "
                "for a new one",
                status_code=401,
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", path="/")
        return response

    # -- pages -----------------------------------------------------------------

    def page(self, name: str) -> Any:
        async def serve(request: Request) -> Response:
            who = self.who(request)
            if not isinstance(who, Session):  # a page needs a session: it posts with CSRF
                return PlainTextResponse(UNAUTHORIZED, status_code=401)
            text = (STATIC / name).read_text()
            text = text.replace("{{csrf}}", who.csrf)
            text = text.replace("{{readonly}}", "true" if self.readonly else "false")
            return HTMLResponse(text, headers=_NO_STORE)

        return serve

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.who(request) is None:
            return PlainTextResponse(UNAUTHORIZED, status_code=401)
        if name not in ASSETS:
            return PlainTextResponse("404: no such file", status_code=404)
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])

    # -- the API -----------------------------------------------------------------

    async def processes(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        raw = await run_in_threadpool(self._call, lambda c: c.jlist_json())
        return Response(raw, media_type="application/json")

    async def process(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        proc = self.hub.process(request.path_params["pm_id"])
        return JSONResponse(proc) if proc is not None else _no_such(request)

    async def history(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        samples = self.hub.samples(request.path_params["pm_id"])
        return JSONResponse({"samples": samples})

    async def events(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        return JSONResponse({"events": self.hub.events(request.path_params["pm_id"])})

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
            count = min(max(int(query.get("lines", "200")), 1), MAX_LINES)
            before = {s: int(query[s]) if query.get(s) else None for s in ("out", "err")}
        except ValueError:
            return JSONResponse({"error": "lines, out and err are numbers"}, status_code=400)
        return JSONResponse(await run_in_threadpool(logs.page, proc, count, before))

    async def stream(self, request: Request) -> Response:
        if self.who(request) is None:
            return _unauthorized()
        wanted = request.query_params.get("logs")
        logs_of = int(wanted) if wanted and wanted.isdigit() else None
        subscriber = self.hub.subscribe(logs_of)

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
                self.hub.unsubscribe(subscriber)

        headers = {**_NO_STORE, "X-Accel-Buffering": "no"}
        return StreamingResponse(send(), media_type="text/event-stream", headers=headers)

    # -- actions -----------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        who = self.who(request)
        if who is None:
            return _unauthorized()
        if isinstance(who, Session) and not self.gate.csrf_ok(
            who, request.headers.get("x-csrf-token")
        ):
            return JSONResponse({"error": "missing or wrong X-CSRF-Token"}, status_code=403)
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
            body = await request.json() if action == "scale" else {}
            act = _act(action, pm_id, proc["name"], body)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            await run_in_threadpool(self._call, act)
        except corral.CorralError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        self.hub.wake()
        return JSONResponse({"ok": True, "action": action, "pm_id": pm_id})

    def _call(self, work: Any) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return work(self._client)


def _act(action: str, pm_id: int, name: str, body: Any) -> Any:
    """The client call of ``action`` (ValueError for a bad scale)."""
    if action == "scale":
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
            raise ValueError('scale takes {"instances": n}, n a whole number of at least 1')
        return lambda client: client.scale(name, instances)
    if action == "start":
        return lambda client: client.restart(pm_id)  # a stopped app's start, as PM2's
    return lambda client: getattr(client, action)(pm_id)


_NO_STORE = {"Cache-Control": "no-store"}


async def _no_icon(request: Request) -> Response:
    return Response(status_code=204)


def _unauthorized() -> Response:
    return JSONResponse({"error": UNAUTHORIZED}, status_code=401)


def _no_such(request: Request) -> Response:
    pm_id = request.path_params["pm_id"]
    return JSONResponse({"error": f"no process with pm_id {pm_id}"}, status_code=404)

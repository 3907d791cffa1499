"""Who may use the dashboard: a session opened by a one-time login token, or the
API's bearer token; and the CSRF token every session's POST must carry.

- ``GET /login?token=T`` with a token ``corral web url`` made (and not used yet)
  opens a session: a cookie ``corral_session`` (HttpOnly, SameSite=Strict, Path=/)
  naming it, and a CSRF token the pages carry in ``<meta name="csrf-token">``.
- Every other request needs that cookie, or ``Authorization: Bearer <api token>``
  (``$CORRAL_HOME/web/api.token``). Neither: 401, and nothing is done.
- A POST with the cookie must also carry ``X-CSRF-Token`` with the session's token:
  else 403. The bearer token is no ambient credential a page could borrow, so a
  POST with it needs none.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from .tokens import api_token, same, take_login_token

COOKIE = "corral_session"
SESSION_TTL = 12 * 3600.0  # seconds a session lasts
MAX_SESSIONS = 1000  # the oldest go first: a token holder cannot grow the server's memory


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = field(default_factory=lambda: time.time() + SESSION_TTL)


class Gate:
    """The sessions of this server and the checks of each request."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.bearer = api_token(home)
        self.sessions: dict[str, Session] = {}

    def login(self, token: str) -> str | None:
        """A new session's id for a valid one-time ``token``, else None."""
        if not take_login_token(self.home, token):
            return None
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions, key=lambda sid: self.sessions[sid].expires)
            del self.sessions[oldest]
        session_id = secrets.token_urlsafe(32)
        self.sessions[session_id] = Session()
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self.sessions.get(session_id)
        if session is None or session.expires < time.time():
            self.sessions.pop(session_id, None)
            return None
        return session

    def bearer_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return same(header[len("Bearer ") :].strip(), self.bearer)

    def csrf_ok(self, session: Session, header: str | None) -> bool:
        return bool(header) and same(header or "", session.csrf)

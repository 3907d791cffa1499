"""Who may use the dashboard: a session opened by a one-time login token, or the
API's bearer token; and the CSRF token every session's POST must carry.

That token is the session's key K. A session is two secrets, and every ``/api/``
request needs both:

- a cookie ``corral_session_<port>`` (HttpOnly, SameSite=Strict, Path=/) naming it;
- its key K, sent in the header ``X-Corral-Key`` (or, for the event stream, which
  cannot set a header, as ``/api/stream?key=K``).

Why both: a browser sends a cookie of 127.0.0.1 to *every* port of 127.0.0.1 (cookies
are not scoped by port, and another port is the same site, so SameSite does not help):
any other local program serving a page there would receive the cookie. K is kept in the
page's ``localStorage``, which is scoped by origin, port included: a page of another
port cannot read it. ``GET /login?token=T`` answers a small page that stores K there,
then goes to ``/``. The pages and static files need the cookie alone, and hold no data
and no secret: their script reads K from ``localStorage``.

The same check (cookie and K) guards a POST: a page of another site can neither read K
nor send it, so K is also the CSRF defence. ``Authorization: Bearer <api token>``
(``$CORRAL_HOME/web/api.token``) opens the API to scripts: a header, never a cookie.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from .tokens import api_token, same, sweep_login_tokens, take_login_token

KEY_HEADER = "x-corral-key"
SESSION_TTL = 12 * 3600.0  # seconds a session lasts
MAX_SESSIONS = 1000  # the oldest go first: a token holder cannot grow the server's memory


def cookie_name(port: int) -> str:
    """The session cookie of the dashboard on ``port``: two dashboards of one host (two
    ports) each keep their own, as a browser shares cookies across ports."""
    return f"corral_session_{port}"


@dataclass
class Session:
    key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = field(default_factory=lambda: time.time() + SESSION_TTL)


class Gate:
    """The sessions of this server and the checks of each request."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.bearer = api_token(home)
        self.sessions: dict[str, Session] = {}

    def login(self, token: str) -> tuple[str, Session] | None:
        """A new session (its id and itself) for a valid one-time ``token``, else None.
        Each attempt also removes the login tokens that expired unused."""
        sweep_login_tokens(self.home)
        if not take_login_token(self.home, token):
            return None
        now = time.time()
        for stale in [sid for sid, s in self.sessions.items() if s.expires < now]:
            del self.sessions[stale]
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions, key=lambda sid: self.sessions[sid].expires)
            del self.sessions[oldest]
        session_id = secrets.token_urlsafe(32)
        session = self.sessions[session_id] = Session()
        return session_id, session

    def logout(self, session_id: str | None) -> None:
        self.sessions.pop(session_id or "", None)

    def session(self, session_id: str | None) -> Session | None:
        """The live session the cookie names (no key checked: the pages' rule)."""
        if not session_id:
            return None
        session = self.sessions.get(session_id)
        if session is None or session.expires < time.time():
            self.sessions.pop(session_id, None)
            return None
        return session

    def keyed(self, session_id: str | None, key: str | None) -> Session | None:
        """The session the cookie names, if ``key`` is its key (the API's rule)."""
        session = self.session(session_id)
        if session is None or not key or not same(key, session.key):
            return None
        return session

    def bearer_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return same(header[len("Bearer ") :].strip(), self.bearer)

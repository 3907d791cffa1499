"""notify: a webhook message when an app fails: errored, gave up restarting, or grew too big.

Three process events send a message:

- ``errored``: the app could not be started, or its child survived SIGKILL;
- ``restart overlimit``: the app crashed ``max_restarts`` times in a row and
  corral stopped restarting it;
- ``restart`` whose reason starts with ``memory ``: the ``memory`` plugin
  restarted the app over its ``max_memory_restart``.

Each message is one JSON POST with a Slack-compatible body: ``text`` (one
line for people) plus ``event``, ``name``, ``pm_id``, ``namespace``,
``reason``, ``at`` (ms since the epoch), ``host``, ``status``,
``restart_time`` and ``dropped`` (messages about this app the rate limit cut
since the last one sent).

Options, the daemon's environment, read when the daemon starts:

- ``CORRAL_NOTIFY_URL``: the webhook for every app (unset: only apps with
  ``notify_url`` send);
- ``CORRAL_NOTIFY_RATE``: at most this many messages per app (by name) per
  minute, default 10; ``N/<duration>`` sets the window too (``5/30s``,
  ``20/1h``); ``0``: no limit;
- ``CORRAL_NOTIFY_TRIES``: attempts per message, default 3; a failed attempt
  (no connection, a timeout, HTTP 429 or 5xx) is retried after
  ``CORRAL_NOTIFY_BACKOFF`` (default ``1s``), doubling each time. Other 4xx
  answers are not retried.

Per app: ``notify_url``, this app's webhook instead of ``CORRAL_NOTIFY_URL``.

Messages are built and rate-limited on the daemon's loop (cheap) and posted by
one worker thread, never on the loop. RPC: ``notify_stats`` ->
``{"url", "rate", "window_s", "sent", "failed", "retried", "dropped",
"waiting_drops", "queued"}``.

Each daemon has its own notifier (its own worker thread, rate limits and
counts), daemons embedded in one process too.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import corral
from corral.api import parse_ms

ENV_URL = "CORRAL_NOTIFY_URL"
ENV_RATE = "CORRAL_NOTIFY_RATE"
ENV_TRIES = "CORRAL_NOTIFY_TRIES"
ENV_BACKOFF = "CORRAL_NOTIFY_BACKOFF"
DEFAULT_RATE = 10
DEFAULT_WINDOW_MS = 60_000
DEFAULT_TRIES = 3
DEFAULT_BACKOFF_MS = 1000
POST_TIMEOUT_S = 5.0
QUEUE_SIZE = 1000  # messages waiting for the worker; past it they are dropped
JOIN_TIMEOUT_S = 2.0  # what the daemon's stop gives the messages still queued
MEMORY_REASON = "memory "
WORDS = {
    "errored": "errored",
    "restart overlimit": "stopped restarting (restart overlimit)",
    "restart": "restarted for memory",
}
STATE_KEY = "notify.notifier"  # each daemon's Notifier, or None (DaemonAPI.state)


# -- settings ------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    url: str | None
    rate: int  # messages per window per app; 0 = no limit
    window_s: float
    tries: int
    backoff_s: float  # before the first retry; doubles


def check_url(value: Any, field: str = "notify_url") -> str:
    """An http(s) URL with a host, or OptionError naming ``field``."""
    text = str(value).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise corral.OptionError(
            f"{field} must be an http:// or https:// URL, got {value!r}", field=field
        )
    return text


def parse_rate(value: str) -> tuple[int, float]:
    """``"10"`` -> ``(10, 60.0)``; ``"5/30s"`` -> ``(5, 30.0)``: count and window in seconds."""
    count, slash, window = value.strip().partition("/")
    if not count.strip().isdigit() or (slash and not window.strip()):
        raise corral.OptionError(
            f"{ENV_RATE} must be N or N/<duration> (10, 5/30s, 20/1h; 0 for no limit), "
            f"got {value!r}",
            field=ENV_RATE,
        )
    window_ms = parse_ms(window.strip(), ENV_RATE) if window.strip() else DEFAULT_WINDOW_MS
    if window_ms <= 0:
        raise corral.OptionError(
            f"{ENV_RATE}: the window must be > 0, got {value!r}", field=ENV_RATE
        )
    return int(count), window_ms / 1000


def _tries(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise corral.OptionError(
            f"{ENV_TRIES} must be an integer >= 1, got {value!r}", field=ENV_TRIES
        )
    return int(value)


def read_settings(environ: Any = os.environ) -> Settings:
    """The daemon-level settings, from the environment."""
    url = environ.get(ENV_URL, "").strip()
    rate, window = parse_rate(environ.get(ENV_RATE, "") or str(DEFAULT_RATE))
    return Settings(
        url=check_url(url, ENV_URL) if url else None,
        rate=rate,
        window_s=window,
        tries=_tries(environ.get(ENV_TRIES, "") or str(DEFAULT_TRIES)),
        backoff_s=parse_ms(environ.get(ENV_BACKOFF, "") or DEFAULT_BACKOFF_MS, ENV_BACKOFF) / 1000,
    )


def redact(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/secret`` -> ``https://hooks.slack.com/…``."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


# -- what is sent --------------------------------------------------------------


def wants(event: Any) -> bool:
    """Whether a process event is one that notifies."""
    if event.event in ("errored", "restart overlimit"):
        return True
    return event.event == "restart" and event.reason.startswith(MEMORY_REASON)


def message_body(event: Any, host: str, dropped: int) -> dict[str, Any]:
    """The JSON POSTed for ``event``: Slack's ``text`` plus the structured fields."""
    process = event.process
    name, pm_id = event.name, event.pm_id
    text = f"[{host}] {name} (pm_id {pm_id}) {WORDS.get(event.event, event.event)}"
    if event.reason:
        text += f": {event.reason}"
    if dropped:
        text += f" ({dropped} earlier message{'s' if dropped > 1 else ''} about {name} dropped "
        text += "by the rate limit)"
    return {
        "text": text,
        "event": event.event,
        "name": name,
        "pm_id": pm_id,
        "namespace": process.get("namespace", "default"),
        "reason": event.reason,
        "at": event.at,
        "host": host,
        "status": process.get("status"),
        "restart_time": process.get("restart_time", 0),
        "dropped": dropped,
    }


class RateLimit:
    """At most ``rate`` messages per ``window_s`` for each key; counts what it refuses."""

    def __init__(self, rate: int, window_s: float) -> None:
        self.rate = rate
        self.window_s = window_s
        self._sent: dict[str, collections.deque[float]] = {}
        self.dropped: dict[str, int] = {}  # refused since the key's last accepted message

    def admit(self, key: str, now: float) -> int | None:
        """None if ``key`` is over its rate (the drop is counted); else the drops to report."""
        if self.rate:
            sent = self._sent.setdefault(key, collections.deque())
            while sent and sent[0] <= now - self.window_s:
                sent.popleft()
            if len(sent) >= self.rate:
                self.dropped[key] = self.dropped.get(key, 0) + 1
                return None
            sent.append(now)
        return self.dropped.pop(key, 0)


# -- the notifier --------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    url: str
    body: dict[str, Any]


class _Retry(Exception):
    """A failed attempt worth another: no answer, a timeout, HTTP 429 or 5xx."""


class Notifier:
    """Decides on the loop; posts on its worker thread."""

    def __init__(self, daemon: Any, settings: Settings) -> None:
        self.daemon = daemon
        self.loop = daemon.loop
        self.settings = settings
        self.host = socket.gethostname()
        self.limit = RateLimit(settings.rate, settings.window_s)
        self.queue: queue.Queue[Message | None] = queue.Queue(QUEUE_SIZE)
        self.sent = self.failed = self.retried = self.dropped = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corral-notify", daemon=True)
        self.user_agent = f"corral-notify/{corral.__version__}"

    # -- on the daemon's loop ----------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # no more waiting between tries: each queued message gets one
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass  # the thread is a daemon thread: it goes with the process
        self._thread.join(JOIN_TIMEOUT_S)

    def on_event(self, event: Any) -> None:
        if not wants(event):
            return
        url = event.process.get("notify_url") or self.settings.url
        if not url:
            return
        dropped = self.limit.admit(event.name, time.monotonic())
        if dropped is None:
            self.dropped += 1
            if self.limit.dropped[event.name] == 1:  # once per streak, not per drop
                self.daemon.log.warning(
                    "notify rate limit",
                    name=event.name,
                    rate=self.settings.rate,
                    window_s=self.settings.window_s,
                )
            return
        message = Message(url, message_body(event, self.host, dropped))
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            self.daemon.log.warning("notify queue full", name=event.name, size=QUEUE_SIZE)

    def stats(self) -> dict[str, Any]:
        return {
            "url": redact(self.settings.url) if self.settings.url else None,
            "rate": self.settings.rate,
            "window_s": self.settings.window_s,
            "sent": self.sent,
            "failed": self.failed,
            "retried": self.retried,
            "dropped": self.dropped,
            "waiting_drops": dict(self.limit.dropped),
            "queued": self.queue.qsize(),
        }

    # -- on the worker thread ----------------------------------------------

    def _run(self) -> None:
        while True:
            message = self.queue.get()
            if message is None:
                return
            self._deliver(message)

    def _deliver(self, message: Message) -> None:
        delay = self.settings.backoff_s
        for attempt in range(1, self.settings.tries + 1):
            try:
                self._post(message)
            except _Retry as exc:
                last_try = attempt == self.settings.tries or self._stopping.is_set()
                if last_try:
                    self._fail(message, str(exc), attempt)
                    return
                self.retried += 1
                if self._stopping.wait(delay):
                    self._fail(message, f"{exc} (daemon stopping)", attempt)
                    return
                delay *= 2
            except Exception as exc:  # a 4xx: the same body would fail again
                self._fail(message, str(exc), attempt)
                return
            else:
                self.sent += 1
                return

    def _post(self, message: Message) -> None:
        data = json.dumps(message.body).encode()
        request = urllib.request.Request(
            message.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": self.user_agent},
        )
        try:
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code}") from None
            raise RuntimeError(f"HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            raise _Retry(f"{type(exc).__name__}: {exc}") from None

    def _fail(self, message: Message, error: str, attempts: int) -> None:
        self.failed += 1
        fields = {
            "name": message.body["name"],
            "about": message.body["event"],
            "url": redact(message.url),
            "attempts": attempts,
            "error": error,
        }
        try:  # the daemon's log is the loop's: hand the line over
            self.loop.call_soon_threadsafe(lambda: self.daemon.log.error("notify failed", **fields))
        except RuntimeError:
            pass  # the loop is closed: the daemon is gone


# -- hooks ---------------------------------------------------------------------


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "notify_url",
            "str",
            help="webhook the notify plugin POSTs this app's failures to "
            "(instead of CORRAL_NOTIFY_URL)",
            validate=check_url,
        )
    ]


def notifier_of(daemon: Any) -> Notifier | None:
    """The :class:`Notifier` of ``daemon`` (a ``corral.api.DaemonAPI``), or None."""
    return daemon.state(STATE_KEY, lambda: None)


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    daemon.forget_state(STATE_KEY)
    notifier = Notifier(daemon, read_settings())
    notifier.start()
    daemon.state(STATE_KEY, lambda: notifier)


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    notifier = daemon.forget_state(STATE_KEY)
    if notifier is not None:
        notifier.stop()


# on_event only decides and queues (the posting thread does the I/O): safe on the loop
corral_runs_on_loop = True


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    notifier = notifier_of(daemon)
    if notifier is not None:
        notifier.on_event(event)


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"notify_stats": notify_stats}


def notify_stats(daemon: Any) -> dict[str, Any]:
    """What the notifier sent, failed, retried and dropped (the URL without its path)."""
    notifier = notifier_of(daemon)
    if notifier is None:
        raise corral.PluginError(
            "the notify plugin is not running in this daemon (see `corral plugins --errors`)"
        )
    return notifier.stats()

"""What an action command prints: its progress on a terminal, a line per app, or
with ``--json`` one JSON document (see corral.client.actions for the records and events).

On a terminal a long action shows a status line while it runs (``reload web
2/4 ready``, ``starting 50 apps 37/50``), fed by corral.client.actions' events; then
one line per app (``restarted api (id 3)``). Without a terminal there is no
status line, only the lines. With ``--json``, stdout gets one document once
the command is done::

    {"action": "reload", "ok": true, "apps": [{"name": "web", "pm_ids": [0, 1],
     "action": "reloaded", "status": "online", "statuses": [...], ...}],
     "failures": [], "down": [], "errors": []}

``failures`` are the start verdict's instances that exited within min_uptime,
``down`` the apps none of whose instances stayed up, ``errors`` the targets
that failed (also said on stderr).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from corral.client.actions import Applied, Progress, line, summarize

if TYPE_CHECKING:
    from corral.client.verdict import StartVerdict


def records(verb: str, infos: list[Any], before: int | None = None) -> list[dict[str, Any]]:
    """What ``verb`` did per app: a start's reply says it (started or restarted)."""
    if isinstance(infos, Applied):
        return infos.actions
    return summarize(verb, infos, before=before)


def status_text(label: str, verb: str, done: int, total: int | None) -> str:
    """The status line: ``reload web 2/4 ready``, ``starting 50 apps 37/50``."""
    count = f"{done}/{total}" if total is not None else f"{done}"
    return f"{label} {count}" if verb == "start" else f"{label} {count} ready"


class Report:
    """One action command's output; ``as_json``: one document at :meth:`finish`."""

    def __init__(self, verb: str, as_json: bool = False) -> None:
        self.verb = verb
        self.as_json = as_json
        self.tty = not as_json and sys.stdout.isatty()
        self.apps: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.verdict: StartVerdict | None = None

    @contextlib.contextmanager
    def progress(self) -> Iterator[Progress | None]:
        """On a terminal, a callback that keeps a status line up to date while the
        block runs (the line goes when it ends); None elsewhere."""
        if not self.tty:
            yield None
            return
        # deferred: rich (~25 ms) loads only for a status line on a terminal
        from corral.cli.render import make_console

        state: dict[str, Any] = {"label": self.verb, "total": None}
        console = make_console()
        with console.status(state["label"]) as status:

            def update(event: dict[str, Any]) -> None:
                if event["event"] == "begin":
                    state.update(label=event["label"], total=event["total"])
                done = event.get("done", 0)
                status.update(status_text(state["label"], self.verb, done, state["total"]))

            yield update

    @contextlib.contextmanager
    def waiting(self, text: str) -> Iterator[None]:
        """A status line ``text`` while the block runs, on a terminal only."""
        if not self.tty:
            yield
            return
        # deferred: rich (~25 ms) loads only for a status line on a terminal
        from corral.cli.render import make_console

        with make_console().status(text):
            yield

    def add(self, records: list[dict[str, Any]], *, say: bool = True) -> None:
        """What one target's action did; its lines now (``say``, and not --json)."""
        self.apps.extend(records)
        if say and not self.as_json:
            for record in records:
                sys.stdout.write(line(record) + "\n")
            if not records:
                sys.stdout.write(f"no process to {self.verb.replace('_', ' ')}\n")
            sys.stdout.flush()

    def error(self, exc: Exception) -> None:
        self.errors.append(str(exc))
        sys.stderr.write(f"error: {exc}\n")

    def report_verdict(self, verdict: StartVerdict | None) -> None:
        """The start verdict: kept for the document, or said on stderr."""
        self.verdict = verdict
        if verdict is None or self.as_json:
            return
        for level, text in verdict.report():
            sys.stderr.write(f"{level}: {text}\n")

    @property
    def ok(self) -> bool:
        return not self.errors and (self.verdict is None or self.verdict.ok)

    def finish(self) -> None:
        """The JSON document (--json); exit 1 when a target failed or an app is down."""
        if self.as_json:
            verdict = self.verdict
            document = {
                "action": self.verb,
                "ok": self.ok,
                "apps": self.apps,
                "failures": [asdict(e) for e in verdict.exited] if verdict else [],
                "down": list(verdict.down) if verdict else [],
                "errors": self.errors,
            }
            sys.stdout.write(json.dumps(document) + "\n")
        if not self.ok:
            raise SystemExit(1)


__all__ = ["Report", "records", "status_text"]

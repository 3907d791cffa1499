"""What an action did, one line per app, and its progress while it runs.

Each action command (start, restart, reload, graceful_reload, stop, delete,
reset, scale) says what it did per app, as PM2's ``[PM2] [web](0) ✓`` lines do:
``started web (4 instances, cluster)``, ``restarted api (id 3)``, ``scaled web
2 -> 4``. :func:`summarize` turns a reply into one record per app (``name``,
``pm_ids``, ``action``, ``status``, ``statuses``); :func:`line` says one record.
A start's reply carries the daemon's word for each app (``actions``: started,
or restarted when the app already existed, stopped); the other replies keep
their list shape, the command being what happened.

Progress: :func:`watch` runs a call while a thread polls ``list`` (every
:data:`POLL_S`) and hands the callback one event per instance as it becomes
ready. Polling was chosen over the bus (a plugin, maybe not loaded; its
messages may drop) and over a streamed reply (a new reply shape in the RPC
layer): it needs nothing of the daemon, works over TCP too, and the final
reply settles every instance the polls missed, so the callback always sees
each instance once, in the order they got ready. Events (dicts):

- ``{"event": "begin", "action", "label", "total"}`` (``total`` may be None);
- ``{"event": "ready" | "online" | "exited", "action", "name", "pm_id", "pid",
  "status", "done", "total"}``: ``ready`` for an instance that signalled
  readiness, ``online`` for one that runs (no readiness signal, or
  ``listen_timeout`` passed), ``exited`` for one that is down;
- ``{"event": "end", "action", "done", "total"}``, once the call returned (a call
  that raises, a reload rolled back say, ends with its exception instead).

The callback runs on the polling thread, and for the last events and ``end``
in the caller's thread, never two at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from corral.client.info import ProcessInfo

if TYPE_CHECKING:
    from corral.client import Client

POLL_S = 0.1
DONE = {
    "start": "started",
    "restart": "restarted",
    "reload": "reloaded",
    "graceful_reload": "gracefully reloaded",
    "stop": "stopped",
    "delete": "deleted",
    "reset": "reset",
    "scale": "scaled",
    "resurrect": "resurrected",
}
DOING = {
    "start": "starting",
    "restart": "restart",
    "reload": "reload",
    "graceful_reload": "graceful reload",
    "scale": "scale",
}
# reconcile's step kinds (corral.daemon.commands.reconcile.Step) as actions
STEP_ACTIONS = {
    "start": "started",
    "replace": "replaced",
    "scale": "scaled",
    "delete": "deleted",
    "keep": "kept",
}
_DOWN = ("stopped", "errored", "waiting restart", "stopping")

Progress = Callable[[dict[str, Any]], None]


class Applied(list):
    """The processes an action returned (a list, as before), with ``actions``: what it
    did per app (see :func:`summarize`)."""

    actions: list[dict[str, Any]]

    def __init__(self, infos: Iterable[ProcessInfo], actions: list[dict[str, Any]]) -> None:
        super().__init__(infos)
        self.actions = actions


def summarize(
    verb: str,
    infos: Iterable[ProcessInfo],
    outcomes: list[dict[str, Any]] | None = None,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """One record per app of ``infos``, in pm_id order: ``name``, ``pm_ids``, ``action``
    (started, restarted, ...), ``status`` (the instances' one status, else ``mixed``),
    ``statuses``, ``instances``, ``exec_mode``. ``outcomes``: the daemon's word per app
    (a start's ``actions``); ``before``: a scale's count before."""
    said = {o["name"]: o.get("action") for o in outcomes or ()}
    apps: dict[str, list[ProcessInfo]] = {}
    for info in sorted(infos, key=lambda i: i.pm_id):
        apps.setdefault(info.name, []).append(info)
    records = []
    for name, group in apps.items():
        statuses = [i.status for i in group]
        record: dict[str, Any] = {
            "name": name,
            "pm_ids": [i.pm_id for i in group],
            "action": said.get(name) or DONE.get(verb, verb),
            "status": statuses[0] if len(set(statuses)) == 1 else "mixed",
            "statuses": statuses,
            "instances": len(group),
            "exec_mode": group[0].exec_mode,
        }
        if verb == "scale" and before is not None:
            record["before"] = before
        records.append(record)
    for outcome in outcomes or ():  # apps the reply does not list (a resurrect's reused)
        if outcome["name"] not in apps and "pm_ids" in outcome:
            records.append({**outcome, "statuses": [], "instances": len(outcome["pm_ids"])})
    return records


def from_steps(steps: list[dict[str, Any]], infos: Iterable[ProcessInfo]) -> list[dict[str, Any]]:
    """The records of a config file's reconcile (its plan steps), as :func:`summarize`'s."""
    by_name: dict[str, list[ProcessInfo]] = {}
    for info in sorted(infos, key=lambda i: i.pm_id):
        by_name.setdefault(info.name, []).append(info)
    records = []
    for step in steps:
        kind = step.get("kind", "")
        action = STEP_ACTIONS.get(kind) or ("unchanged" if kind == "unchanged" else "changed")
        group = by_name.get(step["name"], [])
        statuses = [i.status for i in group]
        records.append(
            {
                "name": step["name"],
                "pm_ids": [i.pm_id for i in group],
                "action": action,
                "status": statuses[0] if len(set(statuses)) == 1 else "mixed" if group else "",
                "statuses": statuses,
                "instances": len(group),
                "before": step.get("before", 0),
            }
        )
    return records


def line(record: dict[str, Any]) -> str:
    """One app's line: ``started web (4 instances, cluster)``, ``restarted api (id 3)``,
    ``scaled web 2 -> 4``, ``reused worker: already online``."""
    name, action, ids = record["name"], record["action"], record["pm_ids"]
    if action == "reused":
        return f"reused {name}: already {record['status']}"
    if action == "scaled" and "before" in record:
        return f"scaled {name} {record['before']} -> {len(ids)}"
    what = f"{len(ids)} instances" if len(ids) != 1 else f"id {ids[0]}" if ids else "no instance"
    if action == "started" and record.get("exec_mode"):
        what += ", " + record["exec_mode"].replace("_mode", "")
    down = record["status"] not in ("online", "launching", "stopped") and action not in (
        "stopped",
        "deleted",
    )
    status = f": {record['status']}" if down and record["status"] else ""
    return f"{action} {name} ({what}){status}"


def _total(apps: list[dict[str, Any]]) -> int:
    """How many instances a start of ``apps`` makes (None when one says "max" and the
    cpus are not ours to count)."""
    total = 0
    for app in apps:
        value = app.get("instances", 1)
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0 if value == "max" else 1
        total += count if count > 0 else max((os.cpu_count() or 1) + min(count, 0), 1)
    return total


def scope(
    client: Client,
    verb: str,
    *,
    request: dict[str, Any] | None = None,
    target: Any = None,
    count: int | str | None = None,
) -> dict[str, Any]:
    """What :func:`watch` counts for one call: ``label``, ``total``, ``ids``, ``names``."""
    if request is not None:  # a start (or a config file's reconcile)
        apps = request["apps"]
        names = [str(a["name"]) for a in apps if a.get("name")]
        what = names[0] if names else os.path.basename(str(apps[0].get("script", "")))
        label = f"{DOING['start']} {len(apps)} apps" if len(apps) > 1 else f"starting {what}"
        return {"label": label, "total": _total(apps), "names": names}
    current = client.describe(target)
    label = f"{DOING.get(verb, verb)} {target if not isinstance(target, list) else 'apps'}"
    if verb != "scale":
        return {"label": label, "total": len(current), "ids": [i.pm_id for i in current]}
    text = str(count).strip()
    try:
        wanted = len(current) + int(text) if text[:1] in "+-" else int(text)
    except ValueError:
        wanted = len(current)
    return {"label": label, "total": max(wanted - len(current), 0)}


class Watch:
    """Polls ``list`` while an action runs; says each instance once, as it gets ready.

    ``ids``: the instances the action acts on (restart, reload); ``names``: apps
    whose instances count when they change (start, scale); new pm_ids always count.
    """

    def __init__(
        self,
        client: Client,
        verb: str,
        callback: Progress,
        *,
        label: str,
        total: int | None,
        ids: Iterable[int] = (),
        names: Iterable[str] = (),
    ) -> None:
        self.client, self.verb, self.callback = client, verb, callback
        self.reply_counts = verb != "scale"  # a scale's reply lists the instances it kept
        self.label, self.total = label, total
        self.ids, self.names = set(ids), set(names)
        self.base = {i.pm_id: i for i in client.list()}
        self.seen: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="corral-progress", daemon=True)

    def _counts(self, info: ProcessInfo) -> bool:
        old = self.base.get(info.pm_id)
        if old is None:
            return True
        return info.pm_id in self.ids or info.name in self.names

    def _changed(self, info: ProcessInfo) -> bool:
        old = self.base.get(info.pm_id)
        return (
            old is None
            or old.pid != info.pid
            or old.pm_uptime != info.pm_uptime
            or old.restart_time != info.restart_time
        )

    def feed(self, infos: Iterable[ProcessInfo], final: bool = False) -> None:
        """Say every counted instance of ``infos`` that is done and not yet said;
        ``final``: the action's reply, so every instance in it is done."""
        with self.lock:
            for info in sorted(infos, key=lambda i: (i.ready_at or 0, i.pm_id)):
                if info.pm_id in self.seen:
                    continue
                if not (final and self.reply_counts) and not self._counts(info):
                    continue
                if info.status == "launching" and not final:
                    continue
                if not final and (not self._changed(info) or info.status == "stopping"):
                    continue
                event = "exited" if info.status in _DOWN else "ready" if info.ready else "online"
                self.seen.add(info.pm_id)
                self.callback(
                    {
                        "event": event,
                        "action": self.verb,
                        "name": info.name,
                        "pm_id": info.pm_id,
                        "pid": info.pid,
                        "status": info.status,
                        "done": len(self.seen),
                        "total": self.total,
                    }
                )

    def _poll(self) -> None:
        while not self.stopped.wait(POLL_S):
            try:
                self.feed(self.client.list())
            except Exception:  # a poll that fails is only a missed update
                continue

    def run(self, call: Callable[[], Any]) -> Any:
        """``call()``, with the events around it; returns its result."""
        self.callback(
            {"event": "begin", "action": self.verb, "label": self.label, "total": self.total}
        )
        self.thread.start()
        try:
            result = call()
        finally:
            self.stopped.set()
            self.thread.join()
        infos = result if isinstance(result, list) else getattr(result, "processes", [])
        self.feed(infos, final=True)
        self.callback(
            {"event": "end", "action": self.verb, "done": len(self.seen), "total": self.total}
        )
        return result


def watch(
    client: Client,
    verb: str,
    callback: Progress,
    call: Callable[[], Any],
    *,
    label: str,
    total: int | None = None,
    ids: Iterable[int] = (),
    names: Iterable[str] = (),
) -> Any:
    """Run ``call()`` (one action's RPC), giving ``callback`` its progress events."""
    return Watch(client, verb, callback, label=label, total=total, ids=ids, names=names).run(call)


__all__ = [
    "DOING",
    "DONE",
    "Applied",
    "Progress",
    "Watch",
    "from_steps",
    "line",
    "scope",
    "summarize",
    "watch",
]

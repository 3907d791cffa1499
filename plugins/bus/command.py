"""``corral bus [-t TOPIC] [--json]``: stream the daemon's events until Ctrl-C."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

import corral

from .protocol import KILL, LOG_ERR, LOG_OUT, PROCESS_EVENT
from .subscriber import BusEvent


def format_event(event: BusEvent) -> list[str]:
    """``HH:MM:SS topic name[pm_id] text`` lines for one event (one per log line)."""
    payload = event.payload
    at = payload.get("at")
    clock = time.strftime("%H:%M:%S", time.localtime(at / 1000 if at else time.time()))
    process = payload.get("process") or {}
    who = f" {process.get('name')}[{process.get('pm_id')}]" if process else ""
    head = f"{clock} {event.topic}{who}"
    if event.topic == PROCESS_EVENT:
        reason = payload.get("reason")
        return [f"{head} {payload.get('event')}" + (f" ({reason})" if reason else "")]
    if event.topic in (LOG_OUT, LOG_ERR):
        lines = str(payload.get("data", "")).rstrip("\n").split("\n")
        return [f"{head} {line}" for line in lines]
    if event.topic == KILL:
        return [f"{head} {payload.get('msg', '')}"]
    if event.topic == "process:exception" and isinstance(payload.get("data"), dict):
        error = payload["data"]
        return [f"{head} {error.get('name', 'Error')}: {error.get('message', '')}"]
    body = payload["data"] if "data" in payload else payload.get("raw")
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    topic = f" ({payload['topic']})" if payload.get("topic") else ""
    return [f"{head}{topic} {text}"]


@click.command("bus")
@click.option(
    "--topic",
    "-t",
    "topics",
    multiple=True,
    help="Only this topic; '*' wildcards (process:*). Repeat for several.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def bus_command(topics: tuple[str, ...], as_json: bool) -> None:
    """Stream the daemon's events, logs and messages until Ctrl-C."""
    wanted = list(topics)
    # corral:kill ends the stream, so it is always subscribed
    subscribed = [*wanted, KILL] if wanted else None
    client = corral.connect()
    try:
        with client.launch_bus(subscribed) as bus:
            for event in bus:
                lines = [json.dumps(event.to_dict())] if as_json else format_event(event)
                sys.stdout.write("".join(line + "\n" for line in lines))
                sys.stdout.flush()
                if event.topic == KILL:
                    return
    finally:
        client.disconnect()


def add_to(group: Any) -> None:
    """Add ``corral bus`` to the CLI's ``group``."""
    group.add_command(bus_command)

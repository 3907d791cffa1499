"""The bus's wire protocol, defined once: what the publisher sends and the subscriber reads.

The daemon publishes on ``ipc://$CORRAL_HOME/pub.sock`` (mode 0600), a zmq
XPUB socket. Each message is two frames, the topic and a JSON object (UTF-8):

- ``process:event``: ``{event, manually, process, at, reason}``, ``event``
  being ``start``, ``online``, ``exit``, ``restart``, ``stop``, ``delete``,
  ``restart overlimit``, ``reload``...
- ``log:out`` / ``log:err``: ``{process: {pm_id, name, namespace}, at, data}``.
- ``process:msg`` and any ``type`` a child sends as ``{type, data, topic?}``:
  ``{at, data, process, topic?}``; any other message: ``{at, raw, process}``.
- ``process:exception``: ``{at, data: {name, message, stack}, process}``.
- ``corral:plugin-error``: ``{plugin, hook, error, at}`` when a plugin's hook raised.
- ``corral:kill``: ``{status: "killed", msg}`` when the daemon stops.

Every payload also carries ``v`` (:data:`SCHEMA_VERSION`) and ``seq``, a
counter per topic bumped for every message, delivered or not, so a subscriber
counts the messages it lost. A new connection first receives the single frame
:data:`WELCOME` (zmq's ``XPUB_WELCOME_MSG``): the subscription is in place,
and the daemon's counters start again.

Topics a subscriber asks for are exact names (``log:out``) or patterns with
``*`` wildcards (``process:*``, PM2's style); ``""`` or ``"*"`` means every topic.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

SCHEMA_VERSION = 1
WELCOME = b"corral:welcome"  # the first frame every new subscriber receives

PROCESS_EVENT = "process:event"
PROCESS_MSG = "process:msg"
LOG_OUT = "log:out"
LOG_ERR = "log:err"
KILL = "corral:kill"
PLUGIN_ERROR = "corral:plugin-error"
# topics only the daemon speaks on: a child's message claiming one goes out as process:msg
DAEMON_TOPICS = frozenset({PROCESS_EVENT, LOG_OUT, LOG_ERR, KILL, PLUGIN_ERROR, "corral:welcome"})

WILDCARDS = "*?["


def encode(topic: str, payload: dict[str, Any], seq: int) -> list[bytes]:
    """The two frames of one message; stamps ``v`` and ``seq`` into ``payload``."""
    payload["v"] = SCHEMA_VERSION
    payload["seq"] = seq
    return [topic.encode(), json.dumps(payload, separators=(",", ":"), default=str).encode()]


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]] | None:
    """``(topic, payload)`` from the frames of one message; None for anything else
    (the welcome, a wrong frame count); ValueError for a payload that is not JSON."""
    if len(frames) != 2:
        return None
    payload = json.loads(frames[1])
    if not isinstance(payload, dict):
        payload = {"raw": payload}
    return frames[0].decode("utf-8", "replace"), payload


def matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` is ``pattern``, or fits it as a ``*`` wildcard pattern."""
    if pattern in ("", "*"):
        return True
    if any(char in pattern for char in WILDCARDS):
        return fnmatch.fnmatchcase(topic, pattern)
    return topic == pattern


def prefix(pattern: str) -> str:
    """The zmq subscription (a prefix of the topic frame) that covers ``pattern``."""
    for index, char in enumerate(pattern):
        if char in WILDCARDS:
            return pattern[:index]
    return pattern


def message_packet(message: Any) -> tuple[str | None, dict[str, Any]]:
    """PM2's rules: ``{type, data}`` goes out under its type, anything else as raw process:msg.

    Returns ``(None, {})`` for messages PM2 swallows (those carrying ``node_version``).
    """
    if isinstance(message, dict):
        if "node_version" in message:
            return None, {}
        kind = message.get("type")
        if isinstance(kind, str) and kind and "data" in message and kind not in DAEMON_TOPICS:
            payload = {"data": message["data"]}
            if "topic" in message:
                payload["topic"] = message["topic"]
            return kind, payload
    return PROCESS_MSG, {"raw": message}

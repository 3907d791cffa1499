"""An app's log files as the dashboard shows them: the last lines of out and err in
time order, earlier lines page by page, and a search.

A line's time is the one written in it (``log_date_format``, ``log_type: json``,
read by ``corral.api.log_time_reader``); a line without one takes the time of the
line before it in its file, and the lines before a file's first timed one take the
file's modification time. So files without times come whole, each in its own
order, the one modified first first: what ``corral logs`` prints. The lines of a
page end before a cursor (a byte offset per file), which the next page starts from.
"""

from __future__ import annotations

import os
from typing import Any

from corral import api

BLOCK = 64 * 1024
PAGE_BYTES = 4 * 1024 * 1024  # bytes one page reads in each file, at most
SEARCH_BYTES = 16 * 1024 * 1024  # how far back a search reads in each file
SEARCH_HITS = 500
LINE_MAX = 16 * 1024  # characters of one line sent to a browser


def lines_before(path: str, end: int | None, count: int) -> tuple[list[str], int]:
    """The last ``count`` lines of ``path`` before byte ``end`` (None: its end), and the
    offset where the first of them starts. A missing file has none.

    At most :data:`PAGE_BYTES` are read for one page: a line longer than that (a file
    of 150 MB without a newline) comes cut, its last :data:`PAGE_BYTES` only, marked
    ``[cut]``, and the cursor points where the read began, so the next page goes on."""
    try:
        handle = open(path, "rb")
    except OSError:
        return [], 0
    with handle:
        size = os.fstat(handle.fileno()).st_size
        end = size if end is None else max(0, min(end, size))
        blocks: list[bytes] = []  # read backwards, joined once
        start, newlines = end, 0
        while start > 0 and newlines <= count and end - start < PAGE_BYTES:
            step = min(BLOCK, start, PAGE_BYTES - (end - start))
            start -= step
            handle.seek(start)
            block = handle.read(step)
            newlines += block.count(b"\n")
            blocks.append(block)
        if start > 0:  # did the read stop inside a line?
            handle.seek(start - 1)
            inside = handle.read(1) != b"\n"
        else:
            inside = False
    data = b"".join(reversed(blocks))
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()  # the file ends with a newline
    cut_first = inside and len(parts) <= count  # the first line's start was not read
    if len(parts) > count:  # the first is cut, or older than the page
        cut = len(parts) - count
        start += sum(len(p) + 1 for p in parts[:cut])
        parts = parts[cut:]
    lines = [_text(p) for p in parts]
    if cut_first and lines:
        lines[0] = "[cut] " + lines[0]
    return lines, start


def _text(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= LINE_MAX else text[:LINE_MAX] + " [cut]"


def log_paths(proc: dict[str, Any]) -> dict[str, str]:
    """``{"out": path, "err": path}`` of a process of ``jlist``, the files it writes."""
    env = proc.get("pm2_env") or {}
    paths = {"out": env.get("pm_out_log_path"), "err": env.get("pm_err_log_path")}
    return {s: p for s, p in paths.items() if isinstance(p, str) and p and p != os.devnull}


def page(proc: dict[str, Any], count: int, before: dict[str, int | None]) -> dict[str, Any]:
    """The last ``count`` lines of each of the app's files (before ``before``'s
    offsets), merged in time order, and the cursor of the page before this one: each
    file's offset where its lines of this page begin."""
    read_time = api.log_time_reader(proc.get("pm2_env") or {})
    entries: list[dict[str, Any]] = []
    cursor: dict[str, int] = {}
    paths = log_paths(proc)
    for stream, path in paths.items():
        if stream == "err" and path == paths.get("out"):
            continue  # one combined file
        lines, start = lines_before(path, before.get(stream), count)
        cursor[stream] = start
        entries.extend(_timed(lines, stream, read_time, _mtime(path)))
    entries.sort(key=lambda e: e["time"])  # stable: each file keeps its order
    return {"lines": entries, "cursor": cursor}


def _timed(lines: list[str], stream: str, read_time: Any, mtime: float) -> list[dict]:
    keys = api.log_order_keys([read_time(line) for line in lines], mtime)
    return [{"stream": stream, "text": t, "time": k} for t, k in zip(lines, keys, strict=True)]


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def search(proc: dict[str, Any], needle: str) -> dict[str, Any]:
    """The lines of the app's files holding ``needle`` (any case), the last
    :data:`SEARCH_HITS`, from the last :data:`SEARCH_BYTES` of each file."""
    wanted = needle.lower()
    read_time = api.log_time_reader(proc.get("pm2_env") or {})
    hits: list[dict[str, Any]] = []
    for stream, path in log_paths(proc).items():
        lines, _start = _tail_bytes(path, SEARCH_BYTES)
        found = [line for line in lines if wanted in line.lower()]
        hits.extend(_timed(found[-SEARCH_HITS:], stream, read_time, _mtime(path)))
    hits.sort(key=lambda e: e["time"])
    return {"lines": hits[-SEARCH_HITS:], "searched_bytes": SEARCH_BYTES}


def _tail_bytes(path: str, size: int) -> tuple[list[str], int]:
    try:
        with open(path, "rb") as handle:
            end = os.fstat(handle.fileno()).st_size
            start = max(0, end - size)
            handle.seek(start)
            data = handle.read(end - start)
    except OSError:
        return [], 0
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first one is cut
    return [_text(line) for line in lines if line], start

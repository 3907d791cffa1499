"""Lines of app output on their way to the log files: :class:`LineWriter`.

One writer per (process, stream) turns the chunks read from a pipe into whole
lines, each written in one write to every :class:`~corral.supervisor.logfile.LogFile` of
the stream, so the out and err streams of an app can share a file without a
line of one landing inside a line of the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from corral.datefmt import date_formatter, iso_timestamp

if TYPE_CHECKING:
    from corral.supervisor.logfile import LogFile

MAX_LINE = 1 << 20  # bytes: a longer line is cut in pieces of this size
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # as JSON.stringify


class LineWriter:
    """Writes one stream of one process to its files, whole lines at a time.

    ``feed`` writes every complete line, in one write per file, and holds the
    rest. ``flush`` writes what is held without ending the line (the daemon
    calls it when a partial line has waited :data:`corral.supervisor.output.PARTIAL_DELAY`,
    so progress output such as ``10%\r20%\r`` reaches the file at once); the
    next ``feed`` continues that line, or starts a new one if another writer
    wrote to the file in between. ``close`` writes what is held with a newline
    added, when the process has exited.

    A line is at most ``max_line`` bytes in the file (:data:`MAX_LINE`, 1 MiB),
    its newline not counted. A longer one is cut: pieces of exactly
    ``max_line`` bytes (one to three fewer when the cut would split a UTF-8
    character), each ended with a newline, and the last with its own; no
    byte is lost and no empty line is made, so joining the pieces gives the
    line back. Memory held per writer stays under ``max_line`` plus a read.

    ``date_format`` (a :mod:`corral.datefmt` format) prefixes each line with
    ``"<date>: "`` as PM2 does, each piece of a cut line too; ``json_fields``
    (PM2's ``log_type: json``) turns each line into ``{"message",
    "timestamp", **json_fields}``, the daemon passing ``{"type":
    "out"|"err", "process_id": pm_id, "app_name": name}``; the timestamp is
    ``date_format`` if given, else ISO 8601 UTC. In JSON a flushed partial
    line is a record of its own, as PM2 writes one record per chunk.
    """

    __slots__ = ("_date", "_json", "_max", "_partial", "_targets", "_written")

    def __init__(
        self,
        targets: Sequence[LogFile],
        *,
        date_format: str | None = None,
        json_fields: Mapping[str, Any] | None = None,
        max_line: int = MAX_LINE,
    ) -> None:
        if max_line < 4:
            raise ValueError("max_line must be at least 4 bytes (one UTF-8 character)")
        # One write per file: the same file given twice (out_file == log_file) is written once.
        self._targets = tuple({id(t): t for t in targets}.values())
        self._date = date_formatter(date_format) if date_format else None
        self._json = dict(json_fields) if json_fields is not None else None
        self._max = max_line
        self._partial = bytearray()
        self._written = 0  # bytes of the current line already written by flush() (line open)

    @property
    def pending(self) -> bytes:
        """The partial line held until its newline arrives."""
        return bytes(self._partial)

    @property
    def holds_partial(self) -> bool:
        """Whether a partial line is held (``pending`` without copying it)."""
        return bool(self._partial)

    def feed(self, data: bytes) -> bytes:
        """Write the complete lines ``data`` ends; return what was written (without
        prefixes, with the newlines of cut lines), or b""."""
        end = data.rfind(b"\n") + 1
        if end == 0:
            self._partial += data
            return self._cut() if self._written + len(self._partial) > self._max else b""
        if self._partial:
            block = bytes(self._partial) + data[:end]
            self._partial = bytearray(data[end:])
        else:
            block = data[:end]
            self._partial = bytearray(data[end:]) if end < len(data) else bytearray()
        if self._written + len(block) > self._max + 1:  # a line in it may be too long
            block = self._split(block)
        self._emit(block)
        self._written = 0
        if len(self._partial) > self._max:
            return block + self._cut()
        return block

    def flush(self) -> bytes:
        """Write the held partial line now, leaving it open; return it, or b"" if none."""
        if not self._partial:
            return b""
        data, self._partial = bytes(self._partial), bytearray()
        if self._json is not None:
            self._emit(data + b"\n")  # a record can't stay open: this part is one of its own
            return data + b"\n"
        self._emit(data)
        self._written += len(data)
        return data

    def close(self) -> bytes:
        """Write the held partial line with a newline added; return it, or b"" if none."""
        if not self._partial and not self._written:
            return b""
        lines, self._partial = bytes(self._partial) + b"\n", bytearray()
        self._emit(lines)
        self._written = 0
        return lines if lines != b"\n" else b""

    def _cut(self) -> bytes:
        """Write the held line's first pieces of ``max_line`` bytes; keep the rest (1 to
        ``max_line`` bytes), which may be the end of the line."""
        held = bytes(self._partial)
        out = bytearray()
        start, room = 0, self._max - self._written
        while len(held) - start > room:
            cut = _char_boundary(held, start + room, start)
            out += held[start:cut] + b"\n"
            start, room = cut, self._max
        self._partial = bytearray(held[start:])
        self._emit(bytes(out))
        self._written = 0
        return bytes(out)

    def _split(self, block: bytes) -> bytes:
        """``block`` (whole lines, the first continuing an open line) with a newline
        inserted in each line longer than ``max_line``."""
        out = bytearray()
        room = self._max - self._written
        start = 0
        while start < len(block):
            end = block.index(b"\n", start)
            while end - start > room:
                cut = _char_boundary(block, start + room, start)
                out += block[start:cut] + b"\n"
                start, room = cut, self._max
            out += block[start : end + 1]
            start, room = end + 1, self._max
        return bytes(out)

    def _emit(self, data: bytes) -> None:
        """Write ``data`` (continuing the current line) to every target, one write each."""
        if not data or not self._targets:
            return
        if self._json is not None:
            out = self._as_json(data)
            for target in self._targets:
                target.write(out)
            return
        variants: dict[bool, bytes] = {}
        for target in self._targets:
            continues = self._written > 0 and target.holds_line_of(self)
            if continues not in variants:
                chunk = data
                if self._written > 0 and not continues and chunk.startswith(b"\n"):
                    chunk = chunk[1:]  # its line was ended by another writer already
                variants[continues] = self._prefixed(chunk, continues)
            if variants[continues]:
                target.write(variants[continues], self)

    def _prefixed(self, data: bytes, continues: bool) -> bytes:
        if self._date is None or not data:
            return data
        prefix = self._date(time.time()).encode() + b": "
        whole = data.endswith(b"\n")
        body = (data[:-1] if whole else data).replace(b"\n", b"\n" + prefix)
        return (body if continues else prefix + body) + (b"\n" if whole else b"")

    def _as_json(self, lines: bytes) -> bytes:
        now = time.time()
        stamp = self._date(now) if self._date is not None else iso_timestamp(now)
        # Every record of a chunk shares its fields after "message": serialise them once.
        rest = _JSON.encode({"timestamp": stamp, **(self._json or {})})[1:]
        # Decoding the chunk at once equals decoding line by line: b"\n" never ends inside a
        # UTF-8 sequence, so each invalid byte becomes U+FFFD on the same line either way.
        messages = lines[:-1].decode("utf-8", "replace").split("\n")
        return "".join(f'{{"message":{_JSON.encode(m)},{rest}\n' for m in messages).encode()


def _char_boundary(data: bytes, cut: int, start: int) -> int:
    """``cut``, moved back (at most 3 bytes) so it does not split a UTF-8 character."""
    for back in range(4):
        at = cut - back
        if at <= start:
            break
        if data[at] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return at
    return cut

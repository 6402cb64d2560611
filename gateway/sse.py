"""An incremental Server-Sent Events parser that works on raw network reads.

It follows the WHATWG SSE rules that matter to LLM streams: events end at a blank line
(LF, CRLF or CR), ``data:`` may or may not be followed by a space, several ``data`` lines
join with LF, lines starting with ``:`` are comments, and an event may be split across any
number of reads. Each event also keeps its exact bytes so that a same-protocol relay can
forward them untouched. No library parses SSE from raw bytes while keeping the bytes of
each event, which pass-through relaying needs; hence this small module.
"""

from __future__ import annotations

from typing import Any

__all__ = ("SSEDecoder", "SSEEvent")


class SSEEvent:
    """One dispatched event: its ``event`` name, joined ``data`` and original bytes.

    ``parsed`` holds the JSON object of ``data`` once a decoder has read it, so a relay that
    looks at the same event again does not decode it twice.
    """

    __slots__ = ("data", "event", "parsed", "raw")

    def __init__(self, event: str, data: str, raw: bytes) -> None:
        self.event = event
        self.data = data
        self.raw = raw
        self.parsed: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"


class SSEDecoder:
    """Feed bytes as they arrive; get back every event completed by them."""

    __slots__ = ("_buffer", "_data", "_event", "_saw_field", "_scanned")

    def __init__(self) -> None:
        self._buffer = b""
        self._scanned = 0
        self._event = ""
        self._data: list[str] = []
        self._saw_field = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completes, in order."""
        buffer = self._buffer + chunk
        events: list[SSEEvent] = []
        event_start = 0
        position = self._scanned
        length = len(buffer)
        while position < length:
            newline = _find_line_end(buffer, position)
            if newline < 0:
                break
            end = newline + 1
            if buffer[newline] == 0x0D:  # CR: maybe the first half of CRLF
                if end >= length:
                    break
                if buffer[end] == 0x0A:
                    end += 1
            if newline > position:
                self._field(buffer[position:newline])
            elif self._saw_field:
                events.append(self._dispatch(buffer[event_start:end]))
                event_start = end
            else:
                event_start = end
            position = end
        self._buffer = buffer[event_start:]
        self._scanned = position - event_start
        return events

    def flush(self) -> list[SSEEvent]:
        """Return the last event when the stream ended without its blank line."""
        remainder, tail = self._buffer, self._buffer[self._scanned :]
        self._buffer = b""
        self._scanned = 0
        for line in tail.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
            if line:
                self._field(line)
        if self._saw_field:
            return [self._dispatch(remainder)]
        return []

    def _field(self, line: bytes) -> None:
        if line[:1] == b":":
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", errors="replace"))
            self._saw_field = True
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
            self._saw_field = True
        elif name in (b"id", b"retry"):
            self._saw_field = True

    def _dispatch(self, raw: bytes) -> SSEEvent:
        event = SSEEvent(self._event or "message", "\n".join(self._data), raw)
        self._event = ""
        self._data = []
        self._saw_field = False
        return event


def _find_line_end(buffer: bytes, start: int) -> int:
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start)
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(lf, cr)

"""ASGI plumbing: the parsed request, the two response kinds, and the writer that applies faults.

A handler returns either a `JsonResponse` or a `StreamResponse`. A stream is a list of frames,
each one network write; a frame is *content* (one word, one tool-argument fragment, one thought
word) or *structure* (role chunk, block start and stop, ...) or *tail* (finish chunk, usage
chunk, `[DONE]`, `message_delta`, `message_stop`, `response.completed`...). `cut` and
`error_after` count content frames: with n, the writer stops where the (n+1)-th content frame
would be written, or at the first tail frame after the last content frame when there are n or
fewer, so a cut or failed stream never carries its protocol's terminal signal.

Granian (the ASGI server the simulator runs under) writes each `http.response.body` message
as its own chunk of a chunked body, and drops the connection, without the last-chunk
terminator, when the application returns without sending `more_body: False`. That is how
`cut` and replay `abort` end a response. ASGI gives no way to close a connection before the
status line (granian then answers 500 itself), so a non-streamed `cut` sends the status line
and headers, announcing the full body length, and drops the connection before the body.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias
from urllib.parse import parse_qs

import msgspec

from gateway.simulator.errors import ProviderError

if TYPE_CHECKING:
    from gateway.simulator.composer import Composer
    from gateway.simulator.faults import FaultSpec

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
Headers: TypeAlias = list[tuple[bytes, bytes]]

JSON_TYPE: Final = b"application/json"
SSE_TYPE: Final = b"text/event-stream; charset=utf-8"

_decode_json = msgspec.json.decode
_encode_json = msgspec.json.encode


class Request:
    """One request as the handlers see it: the path is the one after any `/_fault/` prefix."""

    __slots__ = ("_json", "_query", "body", "headers", "method", "path", "query_string")

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self._json: Any = None
        self._query: dict[str, list[str]] | None = None

    def json(self) -> Any:
        """Return the decoded JSON body.

        Raises:
            ProviderError: the body is not valid JSON (400).
        """
        if self._json is None:
            try:
                self._json = _decode_json(self.body) if self.body else {}
            except msgspec.DecodeError as exc:
                msg = f"The request body is not valid JSON: {exc}"
                raise ProviderError(400, msg) from exc
        return self._json

    def json_object(self) -> dict[str, Any]:
        """Return the decoded JSON body, which must be an object.

        Raises:
            ProviderError: the body is not a JSON object (400).
        """
        body = self.json()
        if not isinstance(body, dict):
            msg = "The request body must be a JSON object."
            raise ProviderError(400, msg)
        return body

    def query(self, name: str) -> str | None:
        """Return the first value of query parameter `name`."""
        if self._query is None:
            self._query = parse_qs(self.query_string)
        values = self._query.get(name)
        return values[0] if values else None


class Call(NamedTuple):
    """What a handler gets: the request, its fault spec, the composer and the path's model."""

    request: Request
    fault: FaultSpec
    composer: Composer
    model: str = ""
    """Model named by the path (Gemini, Workers AI), empty when the body names it."""


class JsonResponse(NamedTuple):
    """A whole response body."""

    status: int
    body: bytes
    content_type: bytes = JSON_TYPE


class FrameKind(enum.IntEnum):
    """Role of a stream frame for `cut` and `error_after`."""

    STRUCTURE = 0
    CONTENT = 1
    TAIL = 2


class Frame(NamedTuple):
    """One network write of a stream."""

    data: bytes
    kind: FrameKind


class StreamResponse(NamedTuple):
    """A streamed response: its frames and how to render a mid-stream error at a position."""

    frames: list[Frame]
    error_frame: Callable[[int], bytes]
    """Return the error event written in place of frame `index` (for `error_after`)."""
    content_type: bytes = SSE_TYPE


Response: TypeAlias = JsonResponse | StreamResponse
Handler: TypeAlias = Callable[[Call], Response]


def json_response(body: Any, status: int = 200) -> JsonResponse:
    """Return a JSON response of `body`."""
    return JsonResponse(status, _encode_json(body))


def sse(data: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    """Return one server-sent event carrying `data` as JSON (or as is, when bytes)."""
    payload = data if isinstance(data, bytes) else _encode_json(data)
    end = b"\r\n\r\n" if crlf else b"\n\n"
    if event is None:
        return b"data: " + payload + end
    return b"event: " + event.encode() + b"\ndata: " + payload + end


class DisconnectWatch:
    """Tell when the client has gone away, from the ASGI `http.disconnect` message.

    The watching task starts at the first question, so requests that never wait pay nothing.
    """

    __slots__ = ("_receive", "_task")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None

    async def _wait(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    def _started(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._wait())
        return self._task

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds` (at least one loop turn); return False early if the client goes away."""
        task = self._started()
        if seconds <= 0:
            await asyncio.sleep(0)
            return not task.done()
        done, _ = await asyncio.wait({task}, timeout=seconds)
        return not done

    def close(self) -> None:
        """Stop watching."""
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            # Mark a failed receive as seen, so asyncio does not report it.
            task.exception()


def stop_index(frames: list[Frame], count: int) -> int:
    """Return where a stream stops after `count` content frames (see the module docstring)."""
    seen = 0
    last_content = -1
    for index, frame in enumerate(frames):
        if frame.kind is FrameKind.CONTENT:
            if seen == count:
                return index
            seen += 1
            last_content = index
    for index in range(last_content + 1, len(frames)):
        if frames[index].kind is FrameKind.TAIL:
            return index
    return len(frames)


async def read_body(receive: Receive) -> bytes:
    """Read the whole request body."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_whole(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """Send a complete response."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_headers_then_drop(send: Send, status: int, headers: Headers, length: int) -> None:
    """Send the status line and headers announcing `length` body bytes, then drop the connection."""
    headers = [*headers, (b"content-length", str(length).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": True})


async def send_stream(
    send: Send,
    headers: Headers,
    stream: StreamResponse,
    fault: FaultSpec,
    watch: DisconnectWatch,
) -> None:
    """Write a stream frame by frame, applying `slow`, `cut` and `error_after`.

    Writing stops early, with no terminator, when the client disconnects during a pause.
    """
    frames = stream.frames
    end = len(frames)
    failing = False
    if fault.cut is not None:
        end = stop_index(frames, fault.cut)
    elif fault.error_after is not None:
        end = stop_index(frames, fault.error_after)
        failing = True

    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for index in range(end):
        # Without pauses the stream is written at once; only a slow one watches the client.
        if index and fault.slow and not await watch.sleep(fault.slow):
            return
        await send({"type": "http.response.body", "body": frames[index].data, "more_body": True})

    if failing:
        if fault.slow and end and not await watch.sleep(fault.slow):
            return
        await send(
            {"type": "http.response.body", "body": stream.error_frame(end), "more_body": True}
        )
    elif fault.cut is not None:
        # Returning without the final message makes granian drop the connection with no
        # chunked terminator, as an upstream that dies mid-stream does.
        if end == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": True})
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})

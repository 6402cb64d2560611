"""Replay scripts: exact bytes, written at exact boundaries, for byte-level tests.

`POST /_sim/replay` with a `ReplayScript` returns `{"id": "<id>"}`; every request under
`/_replay/<id>/<any path>` then gets the script's status and headers and its chunks, each as
its own write (a chunk of the chunked body), `gap` seconds apart. `close: "abort"` drops the
connection after the last chunk, without the chunked terminator. Scripts are kept (up to
`MAX_SCRIPTS`, oldest dropped first) and can be replayed any number of times; the id is a hash
of the script, so registering the same script twice gives the same id. Scripts live in the
memory of the worker process that registered them: run the simulator with one worker when
tests use replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, Annotated, Final, Literal, NamedTuple

import msgspec

if TYPE_CHECKING:
    from gateway.simulator.wire import DisconnectWatch, Headers, Send

MAX_SCRIPTS: Final = 1024
"""Scripts kept per process."""


class ReplayScriptError(ValueError):
    """Raised when a replay script is malformed."""


class ReplayScript(msgspec.Struct, forbid_unknown_fields=True):
    """The body of `POST /_sim/replay`."""

    status: Annotated[int, msgspec.Meta(ge=200, le=599)] = 200
    """HTTP status of the replayed response."""

    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Response headers, written as given."""

    chunks: list[str] | None = None
    """Body chunks as UTF-8 text."""

    chunks_b64: list[str] | None = None
    """Body chunks as base64, for bytes that are not UTF-8."""

    gap: Annotated[float, msgspec.Meta(ge=0.0, le=60.0)] = 0.0
    """Seconds between two chunks."""

    close: Literal["clean", "abort"] = "clean"
    """End the body cleanly, or drop the connection with no chunked terminator."""


class Replay(NamedTuple):
    """A compiled script."""

    status: int
    headers: Headers
    chunks: tuple[bytes, ...]
    gap: float
    abort: bool


def compile_script(raw: bytes) -> tuple[str, Replay]:
    """Validate a script body and return its id and compiled form.

    Raises:
        ReplayScriptError: the body is not a valid script.
    """
    try:
        script = msgspec.json.decode(raw, type=ReplayScript)
    except msgspec.ValidationError as exc:
        msg = f"invalid replay script: {exc}"
        raise ReplayScriptError(msg) from exc
    except msgspec.DecodeError as exc:
        msg = f"the replay script is not valid JSON: {exc}"
        raise ReplayScriptError(msg) from exc
    if script.chunks is not None and script.chunks_b64 is not None:
        msg = "a replay script has either `chunks` or `chunks_b64`, not both"
        raise ReplayScriptError(msg)
    if script.chunks_b64 is not None:
        try:
            chunks = tuple(base64.b64decode(c, validate=True) for c in script.chunks_b64)
        except binascii.Error as exc:
            msg = f"a `chunks_b64` item is not valid base64: {exc}"
            raise ReplayScriptError(msg) from exc
    else:
        chunks = tuple(c.encode() for c in script.chunks or ())
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in script.headers.items()
    ]
    replay = Replay(script.status, headers, chunks, script.gap, script.close == "abort")
    script_id = hashlib.blake2b(msgspec.json.encode(script), digest_size=8).hexdigest()
    return script_id, replay


class ReplayStore:
    """The scripts of one process, by id."""

    def __init__(self) -> None:
        self._scripts: dict[str, Replay] = {}

    def add(self, raw: bytes) -> str:
        """Compile and keep a script; return its id.

        Raises:
            ReplayScriptError: the body is not a valid script.
        """
        script_id, replay = compile_script(raw)
        self._scripts.pop(script_id, None)
        if len(self._scripts) >= MAX_SCRIPTS:
            del self._scripts[next(iter(self._scripts))]
        self._scripts[script_id] = replay
        return script_id

    def get(self, script_id: str) -> Replay | None:
        """Return the script with `script_id`, if kept."""
        return self._scripts.get(script_id)

    def clear(self) -> None:
        """Forget every script."""
        self._scripts.clear()


async def play(send: Send, replay: Replay, extra_headers: Headers, watch: DisconnectWatch) -> None:
    """Write a replay: each chunk as its own body message, then end or drop the connection.

    Writing stops early, with no terminator, when the client disconnects.
    """
    headers = [*replay.headers, *extra_headers]
    await send({"type": "http.response.start", "status": replay.status, "headers": headers})
    for index, chunk in enumerate(replay.chunks):
        # Yield even without a gap, so each chunk leaves as its own write.
        if index and not await watch.sleep(replay.gap):
            return
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if replay.abort:
        if not replay.chunks:
            await send({"type": "http.response.body", "body": b"", "more_body": True})
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})

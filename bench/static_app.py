"""A trivial ASGI endpoint that answers with fixed bytes: the load generator's yardstick.

It replays, byte for byte, a completion and a stream captured from the simulator (each
stream event written as its own body message, as the simulator writes them), but without
any of the simulator's work. Load against it measures what the generator can drive on its
core, on the same wire as the real runs. ``POST /stream`` streams; any other request gets
the whole completion.

Run it with ``python -m bench.static_app --port N --fixture FILE`` (granian, one worker).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from bench.processes import HOST

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
    Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FIXTURE_ENV: Final = "BENCH_STATIC_FIXTURE"
"""Environment variable naming the fixture file, for the granian workers."""


class Fixture(msgspec.Struct, frozen=True):
    """The bytes to answer with."""

    completion: bytes
    stream_events: list[bytes]


class StaticApp:
    """Drains the request body and answers with the fixture."""

    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self._json = [(b"content-type", b"application/json")]
        self._sse = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body", False):
            pass
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": self._sse})
            for event in self.fixture.stream_events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.start", "status": 200, "headers": self._json})
        await send({"type": "http.response.body", "body": self.fixture.completion})


def create_app() -> StaticApp:
    """Build the app from the fixture file named in the environment (granian factory)."""
    fixture = msgspec.msgpack.decode(Path(os.environ[FIXTURE_ENV]).read_bytes(), type=Fixture)
    return StaticApp(fixture)


def main(argv: list[str] | None = None) -> None:
    """Serve the static endpoint on 127.0.0.1 until interrupted."""
    from granian import Granian
    from granian.constants import Interfaces

    parser = argparse.ArgumentParser(prog="python -m bench.static_app", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fixture", required=True, help="msgpack file of a Fixture")
    args = parser.parse_args(argv)
    os.environ[FIXTURE_ENV] = str(Path(args.fixture).resolve())
    Granian(
        target="bench.static_app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=HOST,
        port=args.port,
        workers=1,
        backlog=2048,
        websockets=False,
    ).serve()


if __name__ == "__main__":
    main()

"""The load generator: a closed loop of aiohttp requests, run as its own process.

``python -m bench.loadgen SPEC`` reads a :class:`LoadSpec` (JSON), says ``ready`` on its
standard output once its imports are done, and reads from its standard input the wall-clock
time (``time.time()``) at which to start, the same for every generator of a cell. It then
opens ``concurrency`` keep-alive connections and has each send the same request again as
soon as the previous answer has been read to its end. The first ``warmup`` seconds are not
recorded, and a request counts when it *completes* inside the measured window that
follows. Requests started
after the window closes are not sent; ones still in flight are awaited, not counted. The
result (a :class:`LoadResult`, msgpack) goes to ``spec.output``.

A response counts as good when its status is 200 and its body is complete: a JSON
completion holding ``"choices"``, or a stream that ends with ``data: [DONE]``. Latency is
from sending the request to reading the last body byte; for streams, time to first byte
is to the first body bytes (the first event), not to the status line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from array import array
from pathlib import Path
from typing import Final

import aiohttp
import msgspec

_DONE_TAIL: Final = b"data: [DONE]\n\n"
_TAIL_SIZE: Final = len(_DONE_TAIL)
_ERROR_SAMPLE: Final = 300


class LoadSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What one generator process sends, how hard and for how long."""

    url: str
    body: str
    """The request body (a JSON chat completion request)."""
    headers: dict[str, str]
    stream: bool
    concurrency: int
    warmup: float
    """Seconds of load before the measured window, not recorded."""
    seconds: float
    """Length of the measured window."""
    max_requests: int
    """Recorded requests after which the window closes early."""
    timeout: float
    """Seconds one request may take before it counts as an error."""
    output: str
    """Where the :class:`LoadResult` is written."""


class LoadResult(msgspec.Struct, kw_only=True):
    """What one generator process measured in its window."""

    window: float
    """Seconds the measured window lasted (shorter than asked when ``max_requests`` hit)."""
    latencies: list[float]
    """Seconds per good request completed in the window."""
    first_bytes: list[float]
    """Seconds to the first body bytes, per good streamed request."""
    errors: int
    """Requests completed in the window that failed or came back incomplete."""
    error_sample: str | None
    """The first failure, for the report."""
    sent: int
    """Requests completed in all, warm-up and window."""


class _Loop:
    """The shared state of the worker coroutines of one generator."""

    def __init__(self, spec: LoadSpec, start_at: float) -> None:
        self.spec = spec
        offset = time.time() - time.perf_counter()
        self.begin = start_at - offset
        self.window_start = self.begin + spec.warmup
        self.stop = self.window_start + spec.seconds
        self.latencies = array("d")
        self.first_bytes = array("d")
        self.errors = 0
        self.error_sample: str | None = None
        self.sent = 0
        self.body = spec.body.encode()

    def record(self, started: float, ended: float, first: float, problem: str | None) -> None:
        self.sent += 1
        if ended < self.window_start or ended > self.stop:
            return
        if problem is not None:
            self.errors += 1
            if self.error_sample is None:
                self.error_sample = problem[:_ERROR_SAMPLE]
        else:
            self.latencies.append(ended - started)
            if first:
                self.first_bytes.append(first - started)
        if len(self.latencies) + self.errors >= self.spec.max_requests:
            self.stop = min(self.stop, ended)

    async def one(self, session: aiohttp.ClientSession) -> None:
        """Send one request, read its answer to the end and record it."""
        spec = self.spec
        first = 0.0
        problem: str | None = None
        started = time.perf_counter()
        try:
            async with session.post(spec.url, data=self.body, headers=spec.headers) as response:
                if spec.stream:
                    tail = b""
                    async for chunk in response.content.iter_any():
                        if not first:
                            first = time.perf_counter()
                        tail = (tail + chunk)[-_TAIL_SIZE:]
                    complete = tail.endswith(_DONE_TAIL)
                    body = tail
                else:
                    body = await response.read()
                    complete = b'"choices"' in body
                if response.status != 200 or not complete:
                    problem = f"status {response.status}: {body[:_ERROR_SAMPLE]!r}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        self.record(started, time.perf_counter(), first, problem)

    async def worker(self, session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < self.stop:
            await self.one(session)

    async def run(self) -> LoadResult:
        spec = self.spec
        connector = aiohttp.TCPConnector(limit=spec.concurrency, limit_per_host=0)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=spec.timeout),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        ) as session:
            await asyncio.sleep(max(0.0, self.begin - time.perf_counter()))
            await asyncio.gather(*(self.worker(session) for _ in range(spec.concurrency)))
        window = max(1e-9, min(self.stop, time.perf_counter()) - self.window_start)
        return LoadResult(
            window=window,
            latencies=self.latencies.tolist(),
            first_bytes=self.first_bytes.tolist(),
            errors=self.errors,
            error_sample=self.error_sample,
            sent=self.sent,
        )


def main(argv: list[str] | None = None) -> None:
    """Run the spec named on the command line and write its result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.loadgen SPEC.json", file=sys.stderr)
        sys.exit(2)
    spec = msgspec.json.decode(Path(args[0]).read_bytes(), type=LoadSpec)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    result = asyncio.run(_Loop(spec, start_at).run())
    Path(spec.output).write_bytes(msgspec.msgpack.encode(result))


if __name__ == "__main__":
    main()

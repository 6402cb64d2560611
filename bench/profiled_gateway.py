"""The gateway under cProfile, for ``python -m bench --profile``.

``python -m bench.profiled_gateway --host H --port P --workers 1`` serves the same
application as ``tollgate up --no-console`` (same settings from the environment, same
granian options), except that each worker profiles its event-loop thread from start-up
to shut-down and writes the statistics to the file named by ``BENCH_PROFILE_OUT``
(pstats format). The profiler's clock is the thread's CPU time, not the wall clock, so
time the thread spends preempted (the database shares its core) or waiting in ``epoll``
does not count. cProfile slows Python calls down more than C code, so read the figures
as shares, not as the gateway's speed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

    from litestar import Litestar

PROFILE_ENV: Final = "BENCH_PROFILE_OUT"
"""Environment variable naming the pstats file the worker writes at shut-down."""


def create_app() -> Litestar:
    """Build the gateway's app with a profiler around its life (granian factory)."""
    from gateway.app import create_app as create_gateway

    app = create_gateway()
    profiler = cProfile.Profile(time.thread_time)
    out = os.environ[PROFILE_ENV]

    def start() -> None:
        profiler.enable()

    def stop() -> None:
        profiler.disable()
        profiler.dump_stats(out)

    app.on_startup.append(start)
    app.on_shutdown.insert(0, stop)
    return app


_SITE = re.compile(r"site-packages/([^/]+)")
_STDLIB = re.compile(r"python3\.\d+/([^/]+?)(?:\.py)?(?:/|$)")
_OWN = ("gateway", "shared", "bench")


def _package(filename: str, function: str) -> str:
    """Return who owns a profiled function: our package, a library, the stdlib, or C."""
    if filename == "~":
        owner = re.search(r"of '([\w.]+?)(?:\.\w+)?' objects|built-in method ([\w.]+)", function)
        if owner:
            return "C: " + (owner.group(1) or owner.group(2)).split(".")[0]
        return "C: other"
    if match := _SITE.search(filename):
        return match.group(1)
    for own in _OWN:
        if f"/{own}/" in filename:
            return own
    if match := _STDLIB.search(filename):
        return "stdlib " + match.group(1)
    return filename


def summarize(path: Path, lines: int) -> list[str]:
    """Return own CPU time per package, then the top ``lines`` functions by own time."""
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        by_package[_package(filename, function)] += own
    total = sum(by_package.values()) or 1.0
    summary = [f"own CPU time by package (of {total:.2f} s in the event-loop thread):"]
    for name, own in sorted(by_package.items(), key=lambda item: -item[1])[:15]:
        summary.append(f"  {100 * own / total:5.1f}%  {own:7.3f} s  {name}")
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(lines)
    summary += [line.rstrip() for line in text.getvalue().splitlines() if line.strip()]
    return summary


def main(argv: list[str] | None = None) -> None:
    """Migrate, then serve the profiled gateway until interrupted."""
    from granian import Granian
    from granian.constants import Interfaces

    from shared.database import migrate
    from shared.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.profiled_gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings.from_env(os.environ)
    if not settings.database.url:
        parser.error("DATABASE_URL must be set")
    migrate(settings.database.url)
    gateway = msgspec.structs.replace(
        settings.gateway, host=args.host, port=args.port, workers=args.workers
    )
    settings = msgspec.structs.replace(settings, gateway=gateway)
    os.environ.update(settings.to_env())
    Granian(
        target="bench.profiled_gateway:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.gateway.host,
        port=settings.gateway.port,
        workers=settings.gateway.workers,
        log_access=False,
        websockets=False,
    ).serve()


if __name__ == "__main__":
    main()

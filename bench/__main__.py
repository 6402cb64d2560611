"""``python -m bench``: measure the gateway against the simulator, print and save the results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.processes import ROOT
from bench.report import markdown, write_json
from bench.run import CLIENT_KINDS, MODES, Options, run

if TYPE_CHECKING:
    from collections.abc import Callable

QUICK_SECONDS = 1.0
QUICK_WARMUP = 0.4
QUICK_CONCURRENCIES = (1, 64)


def _csv(
    kind: Callable[[str], object], allowed: tuple[str, ...] | None = None
) -> Callable[[str], tuple[object, ...]]:
    """Return an argparse type for a comma-separated list of ``kind``."""

    def parse(text: str) -> tuple[object, ...]:
        values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        if not values:
            msg = "give at least one value"
            raise argparse.ArgumentTypeError(msg)
        if allowed is not None:
            unknown = [v for v in values if v not in allowed]
            if unknown:
                msg = f"unknown {unknown}; choose among {', '.join(allowed)}"
                raise argparse.ArgumentTypeError(msg)
        return values

    return parse


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        msg = f"`{text}` must look like NAME=VALUE"
        raise argparse.ArgumentTypeError(msg)
    return name, value


def parse_options(argv: list[str] | None = None) -> Options:
    """Turn the command line into :class:`Options`."""
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Measure the Tollgate gateway against the provider simulator, directly and through "
            "the gateway with each relay client; writes bench/results/latest.json."
        ),
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"measured seconds per cell (default {defaults.seconds:g}; --quick {QUICK_SECONDS:g})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help=f"unrecorded seconds before each window (default {defaults.warmup:g}; "
        f"--quick {QUICK_WARMUP:g})",
    )
    parser.add_argument(
        "--concurrency",
        type=_csv(int),
        default=None,
        help="comma-separated concurrencies (default 1,16,64; --quick 1,64)",
    )
    parser.add_argument(
        "--clients",
        type=_csv(str, CLIENT_KINDS),
        default=defaults.clients,
        help="relay clients to compare, comma-separated (default all three)",
    )
    parser.add_argument(
        "--modes",
        type=_csv(str, MODES),
        default=defaults.modes,
        help="non-stream, stream or both (default both)",
    )
    parser.add_argument("--workers", type=int, default=defaults.workers, help="gateway workers")
    parser.add_argument(
        "--generators",
        type=int,
        default=defaults.generators,
        help="load generator processes sharing the concurrency (default 1)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=defaults.max_requests,
        help="recorded requests after which a cell's window closes early",
    )
    parser.add_argument(
        "--timeout", type=float, default=defaults.timeout, help="seconds per request"
    )
    parser.add_argument(
        "--output",
        default=str(ROOT / defaults.output),
        help="where to write the JSON (default bench/results/latest.json)",
    )
    parser.add_argument("--server-core", type=int, default=None, help="core of the server")
    parser.add_argument("--load-core", type=int, default=None, help="core of the load side")
    parser.add_argument(
        "--db-core",
        choices=("server", "load", "any"),
        default=defaults.db_core,
        help="core of the embedded PostgreSQL (default: the server's)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to create a scratch database on (default: TEST_DATABASE_URL, "
        "then DATABASE_URL, else an embedded server in a temporary directory)",
    )
    parser.add_argument(
        "--durable-db",
        action="store_true",
        help="keep fsync and synchronous commit on in the embedded server",
    )
    parser.add_argument(
        "--env",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the gateway, e.g. TOLLGATE_DATABASE_POOL_MAX_SIZE=32",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the gateway under cProfile (first client, c=16) and print its hot spots",
    )
    parser.add_argument(
        "--skip-ceilings", action="store_true", help="skip the generator-ceiling cells"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="measure direct and every client this many times, alternating the order of the "
        "clients; tables keep each cell's best round (default 1)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="measure direct, then one gateway after the other (start, every cell, stop), "
        "instead of all of them cell by cell",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="PERCENT",
        help="before each cell, wait (30 s at most) until other processes use less than "
        "PERCENT of a core; for shared machines (default: do not wait)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1-second windows at concurrency 1 and 64: a smoke run of about a minute",
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else defaults.seconds)
    warmup = (
        args.warmup
        if args.warmup is not None
        else (QUICK_WARMUP if args.quick else defaults.warmup)
    )
    database_url = (
        args.database_url
        or os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or None
    )
    return Options(
        seconds=seconds,
        warmup=warmup,
        concurrencies=args.concurrency
        or (QUICK_CONCURRENCIES if args.quick else defaults.concurrencies),
        clients=args.clients,
        modes=args.modes,
        workers=args.workers,
        generators=args.generators,
        max_requests=args.max_requests,
        timeout=args.timeout,
        output=args.output,
        server_core=args.server_core,
        load_core=args.load_core,
        db_core=args.db_core,
        database_url=database_url,
        durable_db=args.durable_db,
        gateway_env=dict(args.env),
        profile=args.profile,
        skip_ceilings=args.skip_ceilings,
        rounds=max(1, args.rounds),
        wait_quiet=args.wait_quiet,
        sequential=args.sequential,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and report."""
    options = parse_options(argv)
    try:
        report = run(options)
    except KeyboardInterrupt:
        print("interrupted; every process the run started was stopped", file=sys.stderr)
        sys.exit(130)
    output = Path(options.output)
    write_json(report, output)
    print()
    print(markdown(report, options.clients))
    for name, lines in report.profile.items():
        print(f"\n### cProfile, {name} (top functions by own time)\n\n```")
        print("\n".join(lines))
        print("```")
    print(f"\nResults written to {output}")


if __name__ == "__main__":
    main()

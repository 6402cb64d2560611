"""Benchmark of the request-log page with a million usage-log rows.

Run it standalone: ``.venv/bin/python -m console.bench_logs``. It starts a throw-away
embedded PostgreSQL (or uses ``BENCH_DATABASE_URL``, a server URL whose ``postgres``
database may create a scratch database), migrates a scratch database, inserts 1,000,000
rows spread over 29 days, and times what the logs page does on each load: the listing
query through :func:`shared.services.reports.list_logs` and the formatting of the rows,
for the filters an operator uses, and the dashboard's aggregates. It prints a Markdown
table of medians and 95th percentiles (for the dashboard: the slowest of five) in
milliseconds; the figures are recorded in ``console/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.database import asyncpg_dsn, create_engine, migrate, session_factory
from shared.services.listings import ListQuery
from shared.services.reports import RANGES, dashboard, list_logs

__all__ = ("main",)

ROWS: Final = 1_000_000
TENANTS: Final = 10
MODELS: Final = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-flash", "llama-3")
DATABASE: Final = "tollgate_bench_logs"

CASES: Final[dict[str, dict[str, Any]]] = {
    "newest page": {},
    "page 50": {"page": 50},
    "tenant": {"filters": {"tenant": "bench-3"}},
    "tenant as tenant user": {"tenant_id": 3},
    "model": {"filters": {"model": "claude-sonnet"}},
    "channel": {"filters": {"channel": "bench-ch-2"}},
    "key": {"filters": {"key": "4"}},
    "status error": {"filters": {"status": "error"}},
    "tenant + model + 1 day": {
        "filters": {"tenant": "bench-6", "model": "gpt-4o", "since": "", "until": ""}
    },
}

# Only this module's constants are formatted into the script.
SEED: Final = f"""
INSERT INTO tenant_group (name, ratio) VALUES ('bench', 1) ON CONFLICT DO NOTHING;
INSERT INTO tenant (id, name, group_id)
    SELECT g, 'bench-' || g, (SELECT id FROM tenant_group WHERE name = 'bench')
    FROM generate_series(1, {TENANTS}) g;
INSERT INTO api_key (id, tenant_id, name, key_hash, prefix)
    SELECT g, g, 'k' || g, md5(g::text) || md5(g::text), 'sk-tg-' || g
    FROM generate_series(1, {TENANTS}) g;
INSERT INTO channel (id, name, kind, base_url, models)
    SELECT g, 'bench-ch-' || g, 'openai', 'http://127.0.0.1:9/v1', ARRAY['gpt-4o']
    FROM generate_series(1, 4) g;
INSERT INTO usage_log (
    created_at, request_id, tenant_id, key_id, channel_id, model, upstream_model, endpoint,
    stream, status, http_status, input_tokens, cached_input_tokens, cache_write_tokens,
    output_tokens, reasoning_tokens, estimated, cost, latency_ms, first_byte_ms, attempts,
    error)
SELECT now() - g * INTERVAL '2.5 seconds', 'req_' || g, 1 + g % {TENANTS}, 1 + g % {TENANTS},
    1 + g % 4, (ARRAY{list(MODELS)!r})[1 + g % {len(MODELS)}], NULL, '/v1/chat/completions',
    g % 3 = 0, CASE WHEN g % 50 = 0 THEN 'error' ELSE 'ok' END,
    CASE WHEN g % 50 = 0 THEN 502 ELSE 200 END, 100 + g % 900, 0, 0, 20 + g % 400, 0,
    false, 1000 + g % 100000, 50 + g % 3000, 20 + g % 500, 1, NULL
FROM generate_series(1, {ROWS}) g;
ANALYZE;
"""  # noqa: S608


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def _recreate(server_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()


async def _seed(url: str) -> float:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    started = time.perf_counter()
    try:
        await connection.execute(SEED)
    finally:
        await connection.close()
    return time.perf_counter() - started


async def _measure(url: str, runs: int) -> list[tuple[str, float, float, int]]:
    # Imported here: the console's toolkit imports Reflex, which the seeding does not need.
    from console.pages.logs import LogsTableBase
    from console.toolkit.columns import display_row

    engine = create_engine(url)
    sessions = session_factory(engine)
    results = []
    try:
        for name, case in CASES.items():
            filters = dict(case.get("filters", {}))
            if "since" in filters:
                day = time.gmtime(time.time() - 3 * 86400)
                filters["since"] = time.strftime("%Y-%m-%dT00:00:00", day)
                filters["until"] = time.strftime("%Y-%m-%dT23:59:59", day)
            query = ListQuery(
                page=case.get("page", 1),
                page_size=50,
                filters=filters,
                tenant_id=case.get("tenant_id"),
            )
            timings = []
            shown = 0
            for attempt in range(runs + 3):
                started = time.perf_counter()
                async with sessions() as session:
                    page = await list_logs(session, query)
                rows = [display_row(row, LogsTableBase._columns) for row in page.rows]
                elapsed = (time.perf_counter() - started) * 1000
                shown = len(rows)
                if attempt >= 3:
                    timings.append(elapsed)
            timings.sort()
            p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
            results.append((name, statistics.median(timings), p95, shown))
        for range_name in RANGES:
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                async with sessions() as session:
                    await dashboard(session, range_name)
                timings.append((time.perf_counter() - started) * 1000)
            results.append((f"dashboard {range_name}", statistics.median(timings), max(timings), 0))
    finally:
        await engine.dispose()
    return results


def main() -> None:
    """Seed a scratch database with a million log rows and time the logs page's queries."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per case")
    args = parser.parse_args()

    server = None
    server_url = os.environ.get("BENCH_DATABASE_URL")
    if not server_url:
        from shared.postgres import EmbeddedPostgres

        base = Path(tempfile.mkdtemp(prefix="tollgate-bench-logs-"))
        base.chmod(0o755)
        server = EmbeddedPostgres(base / "data", fast_unsafe=True)
        server_url = _with_database(server.start(), "postgres")
    try:
        asyncio.run(_recreate(server_url))
        url = _with_database(server_url, DATABASE)
        migrate(url)
        seconds = asyncio.run(_seed(url))
        print(f"seeded {ROWS:,} usage_log rows in {seconds:.1f} s")  # noqa: T201
        results = asyncio.run(_measure(url, args.runs))
    finally:
        if server is not None:
            server.stop()
    print("| case | median ms | p95 ms | rows |")  # noqa: T201
    print("| --- | ---: | ---: | ---: |")  # noqa: T201
    for name, median, p95, shown in results:
        print(f"| {name} | {median:.1f} | {p95:.1f} | {shown} |")  # noqa: T201


if __name__ == "__main__":
    main()

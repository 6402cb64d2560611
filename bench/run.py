"""One run of the benchmark: place the processes, measure every cell, stop everything.

The order of a run:

1. The simulator starts on the *server core*; one completion and one stream are captured
   from it as the fixture of the static endpoint.
2. The static endpoint (:mod:`bench.static_app`) starts on the server core and is loaded
   from the *load core* at the highest concurrency: the generator's ceiling.
3. PostgreSQL starts (embedded, on the cores ``--db-core`` names), is migrated and
   provisioned; a second simulator starts on the load core as the gateway's upstream.
4. One gateway per relay client starts on the server core, with
   ``TOLLGATE_GATEWAY_RELAY_CLIENT`` set, and answers one request of each mode.
5. For every mode and concurrency, the simulator alone (*direct*: the simulator's own
   ceiling on one core, and the denominator of every ratio) and then each gateway are
   loaded back to back, in an order that rotates from cell to cell. Only the server being
   measured has work; the others sit idle. ``--rounds`` repeats this step.
   ``--sequential`` instead measures direct, then starts, measures and stops one gateway
   after the other.
6. With ``--profile``, the first client runs once more per mode under cProfile; then the
   books are audited.

During each window the harness samples ``/proc``: how busy each core was, how much CPU each
group of processes (the server under test and its children, the database, the upstream
simulator, the load generators) spent per request, and how much went to processes that
are not ours. A load core well below 100% shows the generator and the upstream were not
what limited the gateway.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx
import msgspec

from bench import database
from bench.loadgen import LoadResult, LoadSpec
from bench.processes import (
    HOST,
    PYTHON,
    ROOT,
    CoreTimes,
    Managed,
    ProcessSet,
    affinity_of,
    core_times,
    cpu_seconds,
    free_port,
    process_tree,
    tell,
    wait_for_http,
    wait_ready,
)
from bench.report import DIRECT, Cell, Report, percentile
from bench.static_app import Fixture

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

CLIENT_KINDS: Final = ("aiohttp", "httpx", "httpx-aiohttp")
"""The relay client implementations of ``gateway.relay.client``."""

MODES: Final = ("non-stream", "stream")
CHAT_PATH: Final = "/v1/chat/completions"
PROMPT: Final = "Say hello to the benchmark in a few words."

_START_SLACK: Final = 0.05
"""Seconds between telling the ready generators when to start and their start."""
_READY_TIMEOUT: Final = 60.0
"""Seconds a generator process may take to start."""
_CELL_PAUSE: Final = 0.2
"""Seconds between cells, for settlements of the previous cell to finish."""
_PRODUCT_DIRS: Final = ("gateway", "shared", "migrations")
"""Folders whose uncommitted changes the report mentions."""
_BUSY_WARNING: Final = 20.0
"""Percent of a core used by others before the run above which the run warns."""
_QUIET_SAMPLE: Final = 0.5
_QUIET_TIMEOUT: Final = 30.0
_PROFILE_CONCURRENCY: Final = 16
_PROFILE_LINES: Final = 25


class Options(msgspec.Struct, kw_only=True):
    """What to measure and how; ``python -m bench --help`` documents each option."""

    seconds: float = 6.0
    warmup: float = 1.0
    concurrencies: tuple[int, ...] = (1, 16, 64)
    clients: tuple[str, ...] = CLIENT_KINDS
    modes: tuple[str, ...] = MODES
    workers: int = 1
    generators: int = 1
    max_requests: int = 1_000_000
    timeout: float = 30.0
    output: str = "bench/results/latest.json"
    server_core: int | None = None
    load_core: int | None = None
    db_core: str = "server"
    database_url: str | None = None
    durable_db: bool = False
    gateway_env: dict[str, str] = msgspec.field(default_factory=dict)
    profile: bool = False
    skip_ceilings: bool = False
    rounds: int = 1
    wait_quiet: float | None = None
    sequential: bool = False


class Placement(msgspec.Struct, frozen=True):
    """Which cores each side runs on; ``None`` everywhere when pinning is impossible."""

    server: frozenset[int] | None
    load: frozenset[int] | None
    db: frozenset[int] | None

    def describe(self) -> dict[str, str]:
        def cores(value: frozenset[int] | None) -> str:
            return ",".join(map(str, sorted(value))) if value else "any"

        return {
            "server core": cores(self.server),
            "load core": cores(self.load),
            "db core": cores(self.db),
        }


def choose_placement(options: Options) -> Placement:
    """Pick the server and load cores among the ones this process may use.

    Raises:
        ValueError: a core asked for is not usable, or both sides got the same core.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        print(f"warning: only core(s) {allowed} usable, running unpinned", file=sys.stderr)
        return Placement(None, None, None)
    server = allowed[0] if options.server_core is None else options.server_core
    load = options.load_core
    if load is None:
        load = next(c for c in allowed if c != server)
    for core in (server, load):
        if core not in allowed:
            msg = f"core {core} is not among the usable cores {allowed}"
            raise ValueError(msg)
    if server == load:
        msg = f"the server and the load generator need different cores, both got {server}"
        raise ValueError(msg)
    db = {"server": frozenset({server}), "load": frozenset({load})}.get(options.db_core)
    return Placement(frozenset({server}), frozenset({load}), db)


def chat_body(model: str, *, stream: bool) -> str:
    """Return the chat request every cell sends (streams ask for usage, as billing clients do)."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return msgspec.json.encode(body).decode()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without the gateway's settings or database URLs, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOLLGATE_") and k not in ("DATABASE_URL", "TEST_DATABASE_URL")
    }
    env.update(extra or {})
    return env


def other_load(seconds: float) -> float:
    """Return the percent of one core that all processes used over the next ``seconds``.

    Called between cells, when the servers of the run are idle, it measures the others.
    """
    before = core_times()
    time.sleep(seconds)
    after = core_times()
    busy = sum(after[c].busy - before[c].busy for c in after)
    total = sum(after[c].total - before[c].total for c in after)
    return 100.0 * busy / total * len(after) if total else 0.0


def _wait_quiet(threshold: float) -> None:
    """Wait, at most ``_QUIET_TIMEOUT`` seconds, until other processes use under ``threshold``%."""
    deadline = time.monotonic() + _QUIET_TIMEOUT
    while (load := other_load(_QUIET_SAMPLE)) > threshold and time.monotonic() < deadline:
        print(f"  (waiting: other processes use {load:.0f}% of a core)", flush=True)


def _ms(sorted_seconds: Sequence[float], fraction: float) -> float | None:
    """Return a percentile in milliseconds, or None when there is nothing to rank."""
    if not sorted_seconds:
        return None
    return round(1000 * percentile(sorted_seconds, fraction), 3)


def _trees(roots: Iterable[int]) -> list[int]:
    return [pid for root in roots for pid in process_tree(root)]


def _busy(
    before: Mapping[int, CoreTimes], after: Mapping[int, CoreTimes], cores: Iterable[int]
) -> float | None:
    busy = sum(after[c].busy - before[c].busy for c in cores)
    total = sum(after[c].total - before[c].total for c in cores)
    return 100.0 * busy / total if total else None


class Bench:
    """The state of one run."""

    def __init__(self, options: Options, placement: Placement, work_dir: Path) -> None:
        self.options = options
        self.placement = placement
        self.work_dir = work_dir
        self.procs = ProcessSet(work_dir)
        self.cells: list[Cell] = []
        self.affinities: dict[str, str] = {}
        self.books: dict[str, object] = {}
        self.profile: dict[str, list[str]] = {}
        self.round = 1
        self.direct: Managed
        self.direct_url = ""
        self._runs = 0

    # -- servers -------------------------------------------------------------------------

    def _note_affinity(self, name: str, managed: Managed) -> None:
        pids = process_tree(managed.pid)
        self.affinities[name] = " ".join(sorted({affinity_of(p) for p in pids})) + (
            f" ({len(pids)} processes)"
        )

    def start_simulator(self, name: str, cores: frozenset[int] | None) -> tuple[Managed, str]:
        port = free_port()
        argv = [PYTHON, "-m", "gateway.simulator", "--host", HOST, "--port", str(port)]
        managed = self.procs.start(name, argv, cores=cores, env=_child_env())
        url = f"http://{HOST}:{port}"
        wait_for_http(f"{url}/_sim/health", managed)
        self._note_affinity(name, managed)
        return managed, url

    def start_gateway(
        self, kind: str, database_url: str, *, module: str = "gateway"
    ) -> tuple[Managed, str]:
        port = free_port()
        if module == "gateway":
            argv = [PYTHON, "-m", "gateway", "up", "--no-console"]
        else:
            argv = [PYTHON, "-m", module]
        argv += ["--host", HOST, "--port", str(port), "--workers", str(self.options.workers)]
        env = _child_env(
            {
                **self.options.gateway_env,
                "DATABASE_URL": database_url,
                "TOLLGATE_GATEWAY_RELAY_CLIENT": kind,
            }
        )
        managed = self.procs.start(f"gateway-{kind}", argv, cores=self.placement.server, env=env)
        url = f"http://{HOST}:{port}"
        wait_for_http(f"{url}/health", managed)
        self._note_affinity(f"gateway ({kind})", managed)
        return managed, url

    # -- measuring -----------------------------------------------------------------------

    def measure(
        self,
        *,
        target: str,
        client: str,
        mode: str,
        concurrency: int,
        url: str,
        body: str,
        headers: dict[str, str],
        watch: Mapping[str, Sequence[int]],
    ) -> Cell:
        """Load ``url`` for one window and return the cell, with CPU and core usage."""
        o = self.options
        if o.wait_quiet is not None:
            _wait_quiet(o.wait_quiet)
        count = max(1, min(o.generators, concurrency))
        shares = [
            concurrency // count + (1 if i < concurrency % count else 0) for i in range(count)
        ]
        generators: list[tuple[Managed, Path]] = []
        for share in shares:
            self._runs += 1
            output = self.work_dir / f"result-{self._runs}.msgpack"
            spec = LoadSpec(
                url=url,
                body=body,
                headers=headers,
                stream=mode == "stream",
                concurrency=share,
                warmup=o.warmup,
                seconds=o.seconds,
                max_requests=math.ceil(o.max_requests / count),
                timeout=o.timeout,
                output=str(output),
            )
            spec_path = self.work_dir / f"spec-{self._runs}.json"
            spec_path.write_bytes(msgspec.json.encode(spec))
            argv = [PYTHON, "-m", "bench.loadgen", str(spec_path)]
            managed = self.procs.start(
                f"loadgen-{self._runs}",
                argv,
                cores=self.placement.load,
                env=_child_env(),
                pipes=True,
            )
            generators.append((managed, output))
        deadline = time.monotonic() + _READY_TIMEOUT
        for managed, _ in generators:
            wait_ready(managed, deadline)
        start_at = time.time() + _START_SLACK
        window_start = start_at + o.warmup
        for managed, _ in generators:
            tell(managed, repr(start_at))

        _sleep_until(window_start)
        groups = {name: _trees(roots) for name, roots in watch.items()}
        groups["load"] = [g.pid for g, _ in generators]
        cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        cores_before = core_times()
        _sleep_until(window_start + o.seconds)
        cores_after = core_times()
        cpu_after = {
            name: cpu_seconds(_trees(watch[name]) if name in watch else pids)
            for name, pids in groups.items()
        }

        results: list[LoadResult] = []
        for managed, output in generators:
            try:
                managed.popen.wait(timeout=o.warmup + o.seconds + o.timeout + 15)
            finally:
                self.procs.stop(managed)
            if managed.popen.returncode != 0 or not output.exists():
                msg = f"load generator failed (exit {managed.popen.returncode}):\n"
                raise RuntimeError(msg + managed.log_tail())
            results.append(msgspec.msgpack.decode(output.read_bytes(), type=LoadResult))

        cell = self._cell(target, client, mode, concurrency, results)
        cell.round = self.round
        ours = 0.0
        done = cell.requests + cell.errors
        for name, after in cpu_after.items():
            before = cpu_before[name]
            spent = sum(used - before.get(pid, 0.0) for pid, used in after.items())
            ours += spent
            if done:
                cell.cpu_ms_per_request[name] = round(1000.0 * spent / done, 4)
        if self.placement.server and self.placement.load:
            cell.server_core_busy = _busy(cores_before, cores_after, self.placement.server)
            cell.load_core_busy = _busy(cores_before, cores_after, self.placement.load)
        delta = {
            field: sum(
                getattr(cores_after[c], field) - getattr(cores_before[c], field)
                for c in cores_after
            )
            for field in ("busy", "processes", "total", "steal")
        }
        cell.steal = round(100.0 * delta["steal"] / delta["total"], 1) if delta["total"] else None
        cell.other_load = round(max(0.0, 100.0 * (delta["processes"] - ours) / o.seconds), 1)
        cell.interrupts = round(100.0 * (delta["busy"] - delta["processes"]) / o.seconds, 1)
        self.cells.append(cell)
        self._progress(cell)
        time.sleep(_CELL_PAUSE)
        return cell

    def _cell(
        self, target: str, client: str, mode: str, concurrency: int, results: list[LoadResult]
    ) -> Cell:
        latencies = sorted(v for r in results for v in r.latencies)
        first_bytes = sorted(v for r in results for v in r.first_bytes)
        window = max(r.window for r in results)
        errors = sum(r.errors for r in results)
        sample = next((r.error_sample for r in results if r.error_sample), None)
        streamed = mode == "stream"
        return Cell(
            target=target,
            client=client,
            mode=mode,
            concurrency=concurrency,
            requests=len(latencies),
            errors=errors,
            error_sample=sample,
            window_s=round(window, 3),
            rps=round(len(latencies) / window, 1),
            p50_ms=_ms(latencies, 0.50),
            p99_ms=_ms(latencies, 0.99),
            ttfb_p50_ms=_ms(first_bytes, 0.50) if streamed else None,
            ttfb_p99_ms=_ms(first_bytes, 0.99) if streamed else None,
        )

    @staticmethod
    def _progress(cell: Cell) -> None:
        ttfb = f" ttfb p50 {cell.ttfb_p50_ms:.2f} ms" if cell.ttfb_p50_ms is not None else ""
        p50 = f"{cell.p50_ms:6.2f}" if cell.p50_ms is not None else "     -"
        p99 = f"{cell.p99_ms:6.2f}" if cell.p99_ms is not None else "     -"
        cores = ""
        if cell.server_core_busy is not None and cell.load_core_busy is not None:
            cores = f"  cores {cell.server_core_busy:.0f}%/{cell.load_core_busy:.0f}%"
        cpu = " ".join(f"{k} {v:.3f}" for k, v in cell.cpu_ms_per_request.items() if k != "idle")
        errors = f"  ERRORS {cell.errors}: {cell.error_sample}" if cell.errors else ""
        if not cell.requests:
            errors += "  NO REQUEST COMPLETED IN THE WINDOW"
        print(
            f"  {cell.target:<9} {cell.client:<13} {cell.mode:<10} c={cell.concurrency:<3} "
            f"{cell.rps:>6.0f} req/s  p50 {p50}  p99 {p99} ms{ttfb}"
            f"{cores}  CPU ms/req {cpu}  other {cell.other_load or 0:.0f}%"
            f" irq {cell.interrupts or 0:.0f}% steal {cell.steal or 0:.0f}%{errors}",
            flush=True,
        )

    # -- phases --------------------------------------------------------------------------

    def ceilings(self) -> None:
        """Start the direct simulator, capture the fixture, measure the generator's ceiling."""
        self.direct, self.direct_url = self.start_simulator(
            "simulator-direct", self.placement.server
        )
        fixture = capture_fixture(self.direct_url, database.MODEL)
        if not self.options.skip_ceilings:
            print("Ceiling of the load generator: static endpoint on the server core", flush=True)
            self._generator_ceiling(fixture)

    def _generator_ceiling(self, fixture: Fixture) -> None:
        fixture_path = self.work_dir / "fixture.msgpack"
        fixture_path.write_bytes(msgspec.msgpack.encode(fixture))
        port = free_port()
        argv = [PYTHON, "-m", "bench.static_app", "--port", str(port)]
        argv += ["--fixture", str(fixture_path)]
        static = self.procs.start("static", argv, cores=self.placement.server, env=_child_env())
        url = f"http://{HOST}:{port}"
        try:
            wait_for_http(f"{url}/health", static)
            self._note_affinity("static endpoint", static)
            concurrency = max(self.options.concurrencies)
            for mode in self.options.modes:
                path = "/stream" if mode == "stream" else CHAT_PATH
                self.measure(
                    target="static",
                    client="static",
                    mode=mode,
                    concurrency=concurrency,
                    url=url + path,
                    body=chat_body(database.MODEL, stream=mode == "stream"),
                    headers={"content-type": "application/json"},
                    watch={"server": [static.pid], "idle": [self.direct.pid]},
                )
        finally:
            self.procs.stop(static)

    def gateways(self) -> None:
        """Start PostgreSQL and the upstream simulator, then measure direct and every client."""
        o = self.options
        with database.scratch_database(
            o.database_url, cores=self.placement.db, durable=o.durable_db
        ) as scratch:
            try:
                self._gateways(scratch)
            finally:
                self.procs.stop_all()

    def _gateways(self, scratch: database.Scratch) -> None:
        upstream, upstream_url = self.start_simulator("simulator-upstream", self.placement.load)
        tenancy = database.prepare(scratch.url, f"{upstream_url}/v1")
        shared = {"upstream": [upstream.pid]}
        if scratch.postmaster_pid is not None:
            shared["db"] = [scratch.postmaster_pid]
            self.affinities["postgresql"] = affinity_of(scratch.postmaster_pid)
        if self.options.sequential:
            self._sequential(scratch.url, tenancy, shared)
        else:
            self._interleaved(scratch.url, tenancy, shared)
        self.procs.stop(self.direct)
        if self.options.profile:
            self._profile(scratch.url, tenancy, shared)
        problems, rows = database.audit(scratch.url)
        self.books = {"problems": problems, "usage_rows": rows}

    def _target(self, kind: str, url: str, key: str) -> tuple[str, str, str]:
        """Return the target name, chat URL and key of a direct or gateway measurement."""
        if kind == DIRECT:
            return "simulator", self.direct_url + CHAT_PATH, "sk-bench"
        return "gateway", url + CHAT_PATH, key

    def _interleaved(
        self, database_url: str, tenancy: database.Tenancy, shared: dict[str, list[int]]
    ) -> None:
        """One gateway per client side by side; each cell measures all of them back to back.

        Only the gateway being measured has work; the others (and the direct simulator) sit
        idle on the same core. Measuring direct and every client within the same minute, in
        an order that rotates from cell to cell, keeps a drifting or noisy machine from
        favouring one of them.
        """
        gateways: dict[str, tuple[Managed, str]] = {}
        for kind in self.options.clients:
            print(f"Starting the gateway with relay client {kind}", flush=True)
            gateways[kind] = self.start_gateway(kind, database_url)
            verify_gateway(gateways[kind][1], tenancy, gateways[kind][0])
        servers = {DIRECT: self.direct.pid} | {k: g.pid for k, (g, _) in gateways.items()}
        order = [DIRECT, *self.options.clients]
        print("Measuring direct and every relay client, cell by cell", flush=True)
        shapes = [(m, c) for m in self.options.modes for c in self.options.concurrencies]
        for number in range(1, self.options.rounds + 1):
            self.round = number
            if self.options.rounds > 1:
                print(f"Round {number}", flush=True)
            for mode, concurrency in shapes:
                for kind in order:
                    target, url, key = self._target(
                        kind, gateways.get(kind, (None, ""))[1], tenancy.key
                    )
                    idle = [pid for other, pid in servers.items() if other != kind]
                    watch = {"server": [servers[kind]], "idle": idle}
                    if target == "gateway":
                        watch |= shared
                    else:
                        watch["idle"] += [pid for pids in shared.values() for pid in pids]
                    self.measure(
                        target=target,
                        client=kind,
                        mode=mode,
                        concurrency=concurrency,
                        url=url,
                        body=chat_body(tenancy.model, stream=mode == "stream"),
                        headers=_headers(key),
                        watch=watch,
                    )
                order.append(order.pop(0))
        for gateway, _ in gateways.values():
            self.procs.stop(gateway)

    def _sequential(
        self, database_url: str, tenancy: database.Tenancy, shared: dict[str, list[int]]
    ) -> None:
        """Direct, then each client in turn: start its gateway, measure every cell, stop it."""
        order = list(self.options.clients)
        idle_shared = [pid for pids in shared.values() for pid in pids]
        for number in range(1, self.options.rounds + 1):
            self.round = number
            print(f"Round {number}: direct", flush=True)
            self._sweep(
                "simulator",
                DIRECT,
                self.direct_url + CHAT_PATH,
                tenancy.model,
                "sk-bench",
                {"server": [self.direct.pid], "idle": idle_shared},
            )
            for kind in order:
                print(f"Round {number}: gateway with relay client {kind}", flush=True)
                gateway, url = self.start_gateway(kind, database_url)
                try:
                    verify_gateway(url, tenancy, gateway)
                    self._sweep(
                        "gateway",
                        kind,
                        url + CHAT_PATH,
                        tenancy.model,
                        tenancy.key,
                        {"server": [gateway.pid], "idle": [self.direct.pid], **shared},
                    )
                finally:
                    self.procs.stop(gateway)
            order.reverse()

    def _sweep(
        self,
        target: str,
        client: str,
        url: str,
        model: str,
        key: str,
        watch: Mapping[str, Sequence[int]],
    ) -> None:
        for mode in self.options.modes:
            body = chat_body(model, stream=mode == "stream")
            for concurrency in self.options.concurrencies:
                self.measure(
                    target=target,
                    client=client,
                    mode=mode,
                    concurrency=concurrency,
                    url=url,
                    body=body,
                    headers=_headers(key),
                    watch=watch,
                )

    def _profile(
        self, database_url: str, tenancy: database.Tenancy, shared: dict[str, list[int]]
    ) -> None:
        from bench.profiled_gateway import PROFILE_ENV, summarize

        kind = self.options.clients[0]
        for mode in self.options.modes:
            out = Path(self.options.output).resolve().parent / f"profile-{kind}-{mode}.raw"
            self.options.gateway_env[PROFILE_ENV] = str(out)
            print(f"Profile (cProfile), relay client {kind}, {mode}", flush=True)
            try:
                gateway, url = self.start_gateway(
                    kind, database_url, module="bench.profiled_gateway"
                )
            finally:
                del self.options.gateway_env[PROFILE_ENV]
            try:
                verify_gateway(url, tenancy, gateway)
                self.measure(
                    target="profiled",
                    client=kind,
                    mode=mode,
                    concurrency=_PROFILE_CONCURRENCY,
                    url=url + CHAT_PATH,
                    body=chat_body(tenancy.model, stream=mode == "stream"),
                    headers=_headers(tenancy.key),
                    watch={"server": [gateway.pid], **shared},
                )
            finally:
                self.procs.stop(gateway)
            if out.exists():
                self.profile[f"{kind} {mode}"] = summarize(out, _PROFILE_LINES)


def _headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "content-type": "application/json"}


def capture_fixture(simulator_url: str, model: str) -> Fixture:
    """Fetch one completion and one stream from the simulator, as the static endpoint's bytes."""
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=10) as client:
        whole = client.post(
            simulator_url + CHAT_PATH, content=chat_body(model, stream=False), headers=headers
        )
        streamed = client.post(
            simulator_url + CHAT_PATH, content=chat_body(model, stream=True), headers=headers
        )
    whole.raise_for_status()
    streamed.raise_for_status()
    events = [event + b"\n\n" for event in streamed.content.split(b"\n\n") if event]
    return Fixture(completion=whole.content, stream_events=events)


def verify_gateway(url: str, tenancy: database.Tenancy, gateway: Managed) -> None:
    """Send one request of each mode through the gateway; both must succeed in full.

    Raises:
        RuntimeError: with the answer and the gateway's log when one does not.
    """
    headers = {"authorization": f"Bearer {tenancy.key}", "content-type": "application/json"}
    with httpx.Client(timeout=30) as client:
        for stream in (False, True):
            response = client.post(
                url + CHAT_PATH, content=chat_body(tenancy.model, stream=stream), headers=headers
            )
            complete = (
                response.content.rstrip().endswith(b"[DONE]")
                if stream
                else (b'"choices"' in response.content)
            )
            if response.status_code != 200 or not complete:
                msg = (
                    f"the gateway answered {response.status_code} {response.content[:500]!r} "
                    f"to a {'streamed' if stream else 'plain'} request; its log:\n"
                    f"{gateway.log_tail()}"
                )
                raise RuntimeError(msg)


def _machine() -> dict[str, str]:
    """Describe the machine, including how busy other processes keep it before the run."""
    idle_load = other_load(1.0)
    if idle_load > _BUSY_WARNING:
        print(
            f"warning: other processes use {idle_load:.0f}% of a core before the run; "
            "figures will be noisy (see the `other` column)",
            file=sys.stderr,
        )
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": str(os.cpu_count()),
        "usable cores": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "other load at start": f"{idle_load:.0f}% of a core",
    }


def _source() -> dict[str, str]:
    """Return the commit measured, and whether the product's files differ from it."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", *_PRODUCT_DIRS)
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted changes": "none" if not changed else f"{len(changed.splitlines())} files",
    }


def _recorded(options: Options) -> dict[str, object]:
    """Return the options as the report keeps them: a database URL may hold a password."""
    recorded = msgspec.structs.asdict(options)
    if options.database_url:
        parts = urlsplit(options.database_url)
        recorded["database_url"] = f"{parts.scheme}://{parts.hostname or 'local socket'}/…"
    return recorded


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(options: Options) -> Report:
    """Run every phase and return the report; every process started is stopped on the way out."""
    started = datetime.datetime.now(datetime.UTC)
    machine = _machine()
    placement = choose_placement(options)
    if placement.load:
        os.sched_setaffinity(0, placement.load)
    work_dir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    bench = Bench(options, placement, work_dir)
    previous = signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C must reach the clean-up even when a shell started us with SIGINT ignored.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = False
    try:
        bench.ceilings()
        bench.gateways()
        finished = True
    finally:
        bench.procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if finished:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"the run stopped early; logs kept in {work_dir}", file=sys.stderr)
    return Report(
        started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine={**machine, **_source()},
        placement={**placement.describe(), **bench.affinities},
        options=_recorded(options),
        cells=bench.cells,
        books=bench.books,
        profile=bench.profile,
    )

"""Results of a run: the cell record, percentiles, the JSON file and the Markdown tables.

``python -m bench.report [FILE]`` prints the tables of a saved run again (by default
``bench/results/latest.json``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

DIRECT: Final = "direct"
"""The ``client`` of cells that load the simulator with no gateway in between."""


class Cell(msgspec.Struct, kw_only=True):
    """One measurement: one target, one mode, one concurrency, one window."""

    target: str
    """``static`` (generator yardstick), ``simulator`` (direct) or ``gateway``."""
    client: str
    """The gateway's relay client, or ``direct`` / ``static``."""
    mode: str
    """``non-stream`` or ``stream``."""
    concurrency: int
    round: int = 1
    """Which round of the run measured it (``--rounds``); tables show the best round."""
    requests: int
    """Good requests completed in the window."""
    errors: int
    error_sample: str | None = None
    window_s: float
    rps: float
    p50_ms: float | None
    """Latency percentiles; None when no request completed in the window."""
    p99_ms: float | None
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None
    server_core_busy: float | None = None
    """Percent busy of the server core over the window (every process on it, ours or not)."""
    load_core_busy: float | None = None
    """Percent busy of the load core over the window."""
    steal: float | None = None
    """Percent of the window the hypervisor gave the cores to someone else."""
    other_load: float | None = None
    """Percent of one core used by processes that are not of this run (noise), on all cores."""
    interrupts: float | None = None
    """Percent of one core spent in interrupts (mostly the loopback traffic of the run)."""
    cpu_ms_per_request: dict[str, float] = msgspec.field(default_factory=dict)
    """CPU milliseconds per request of each process group (``server``, ``db``, ``load``...)."""


class Report(msgspec.Struct, kw_only=True):
    """What a run writes to ``bench/results/latest.json``."""

    started_at: str
    finished_at: str
    machine: dict[str, str]
    placement: dict[str, str]
    options: dict[str, object]
    cells: list[Cell]
    books: dict[str, object] = msgspec.field(default_factory=dict)
    profile: dict[str, list[str]] = msgspec.field(default_factory=dict)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def write_json(report: Report, path: Path) -> None:
    """Write the report as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")


def _rule(left: int, right: int) -> str:
    """Return a Markdown header rule: ``left`` plain columns, then ``right`` right-aligned."""
    return "| " + " | ".join(["---"] * left + ["---:"] * right) + " |"


_TARGET_ORDER: Final = {"static": 0, "simulator": 1, "gateway": 2, "profiled": 3}


def best_cells(cells: Sequence[Cell]) -> list[Cell]:
    """Return, per target, client, mode and concurrency, the round with the most req/s.

    Other processes on a shared machine can only slow a cell down, so the best of several
    rounds is the one least disturbed. The cells come back sorted for the tables.
    """
    best: dict[tuple[str, str, str, int], Cell] = {}
    for cell in cells:
        key = (cell.target, cell.client, cell.mode, cell.concurrency)
        if key not in best or cell.rps > best[key].rps:
            best[key] = cell
    return sorted(
        best.values(),
        key=lambda c: (_TARGET_ORDER.get(c.target, 9), c.client, c.mode, c.concurrency),
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _direct_of(cells: Sequence[Cell]) -> dict[tuple[str, int], Cell]:
    return {(c.mode, c.concurrency): c for c in cells if c.target == "simulator"}


def ratio(cell: Cell, direct: dict[tuple[str, int], Cell]) -> float | None:
    """Return the cell's req/s over the direct req/s of the same mode and concurrency."""
    base = direct.get((cell.mode, cell.concurrency))
    if base is None or not base.rps:
        return None
    return cell.rps / base.rps


def ceilings_table(cells: Sequence[Cell]) -> str:
    """The generator's and the simulator's own ceilings."""
    lines = [
        "| target | mode | conc | req/s | p50 ms | p99 ms | TTFB p50 | TTFB p99 "
        "| server core | load core | server CPU ms/req | load CPU ms/req | other | errors |",
        _rule(2, 12),
    ]
    names = {"static": "static endpoint (generator ceiling)", "simulator": "simulator (direct)"}
    for c in cells:
        if c.target not in names:
            continue
        lines.append(
            f"| {names[c.target]} | {c.mode} | {c.concurrency} | {_num(c.rps, 0)} "
            f"| {_num(c.p50_ms, 2)} | {_num(c.p99_ms, 2)} | {_num(c.ttfb_p50_ms, 2)} "
            f"| {_num(c.ttfb_p99_ms, 2)} | {_percent(c.server_core_busy)} "
            f"| {_percent(c.load_core_busy)} | {_num(c.cpu_ms_per_request.get('server'), 3)} "
            f"| {_num(c.cpu_ms_per_request.get('load'), 3)} | {_percent(c.other_load)} "
            f"| {c.errors} |"
        )
    return "\n".join(lines)


def gateway_table(cells: Sequence[Cell]) -> str:
    """Every gateway cell, with its ratio to the direct cell of the same shape."""
    direct = _direct_of(cells)
    lines = [
        "| relay client | mode | conc | req/s | gw/direct | p50 ms | p99 ms | TTFB p50 "
        "| TTFB p99 | gateway CPU ms/req | db CPU ms/req | server core | load core | other "
        "| errors |",
        _rule(2, 13),
    ]
    for c in cells:
        if c.target != "gateway":
            continue
        lines.append(
            f"| {c.client} | {c.mode} | {c.concurrency} | {_num(c.rps, 0)} "
            f"| {_num(ratio(c, direct), 3)} | {_num(c.p50_ms, 2)} | {_num(c.p99_ms, 2)} "
            f"| {_num(c.ttfb_p50_ms, 2)} | {_num(c.ttfb_p99_ms, 2)} "
            f"| {_num(c.cpu_ms_per_request.get('server'), 3)} "
            f"| {_num(c.cpu_ms_per_request.get('db'), 3)} | {_percent(c.server_core_busy)} "
            f"| {_percent(c.load_core_busy)} | {_percent(c.other_load)} | {c.errors} |"
        )
    return "\n".join(lines)


def _geomean(values: Sequence[float]) -> float | None:
    if not values or any(v <= 0 for v in values):
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def comparison(cells: Sequence[Cell], clients: Sequence[str]) -> tuple[str, str | None, str | None]:
    """The relay clients side by side; the fastest one, and the one costing the least CPU."""
    direct = _direct_of(cells)
    gateway = {(c.client, c.mode, c.concurrency): c for c in cells if c.target == "gateway"}
    shapes = sorted({(c.mode, c.concurrency) for c in cells if c.target == "gateway"})
    header = "| mode | conc | direct req/s | " + " | ".join(clients) + " | fastest |"
    lines = [header, "| --- | ---: | ---: | " + " | ".join("---:" for _ in clients) + " | --- |"]
    for mode, concurrency in shapes:
        base = direct.get((mode, concurrency))
        row = [mode, str(concurrency), _num(base.rps if base else None, 0)]
        best: tuple[float, str] | None = None
        for client in clients:
            cell = gateway.get((client, mode, concurrency))
            if cell is None:
                row.append("-")
                continue
            row.append(f"{_num(cell.rps, 0)} ({_num(ratio(cell, direct), 3)})")
            if best is None or cell.rps > best[0]:
                best = (cell.rps, client)
        row.append(best[1] if best else "-")
        lines.append("| " + " | ".join(row) + " |")

    summary = [
        "",
        "| relay client | geometric mean of gw/direct | mean gateway CPU ms/req | errors |",
        "| --- | ---: | ---: | ---: |",
    ]
    fastest: tuple[float, str] | None = None
    cheapest: tuple[float, str] | None = None
    for client in clients:
        own = [c for c in cells if c.target == "gateway" and c.client == client]
        ratios = [r for r in (ratio(c, direct) for c in own) if r is not None]
        cpu = [c.cpu_ms_per_request["server"] for c in own if "server" in c.cpu_ms_per_request]
        mean = _geomean(ratios)
        mean_cpu = sum(cpu) / len(cpu) if cpu else None
        summary.append(
            f"| {client} | {_num(mean, 3)} | {_num(mean_cpu, 3)} | {sum(c.errors for c in own)} |"
        )
        if mean is not None and (fastest is None or mean > fastest[0]):
            fastest = (mean, client)
        if mean_cpu is not None and (cheapest is None or mean_cpu < cheapest[0]):
            cheapest = (mean_cpu, client)
    return (
        "\n".join(lines + summary),
        fastest[1] if fastest else None,
        cheapest[1] if cheapest else None,
    )


def markdown(report: Report, clients: Sequence[str]) -> str:
    """The whole run as Markdown: placement, ceilings, gateway cells and the comparison."""
    placement = ", ".join(f"{k}: {v}" for k, v in report.placement.items())
    cells = best_cells(report.cells)
    table, fastest, cheapest = comparison(cells, clients)
    parts = [
        f"Run of {report.started_at} to {report.finished_at}; {placement}.",
        "",
        "### Ceilings: the load generator and the simulator alone",
        "",
        ceilings_table(cells),
        "",
        "### Gateway",
        "",
        gateway_table(cells),
        "",
        "### Relay clients compared: req/s (gateway/direct ratio)",
        "",
        table,
        "",
        f"Fastest relay client in this run: **{fastest or 'n/a'}** (highest geometric mean of "
        f"gateway/direct req/s over all cells); cheapest: **{cheapest or 'n/a'}** (least "
        "gateway CPU per request, the figure other processes on the machine disturb least).",
    ]
    if report.books:
        parts += ["", f"Books after the run: {report.books}"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown tables of a saved run."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parent / "results" / "latest.json"
    report = msgspec.json.decode(path.read_bytes(), type=Report)
    clients = report.options.get("clients")
    order = [str(c) for c in clients] if isinstance(clients, list) else []
    print(
        markdown(report, order or sorted({c.client for c in report.cells if c.target == "gateway"}))
    )


if __name__ == "__main__":
    main()

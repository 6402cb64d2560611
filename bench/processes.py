"""The processes of a run: started pinned to cores, watched through ``/proc``, stopped by PID.

Every server of a run (static endpoint, simulator, gateway, load generators) is a child
process started here. Each is pinned before it ``exec``s (``sched_setaffinity`` in the
child), so the threads and worker processes it starts inherit the same cores. Each also
asks the kernel for ``SIGINT`` when the harness dies (``PR_SET_PDEATHSIG``), so a killed
harness leaves nothing behind. :class:`ProcessSet` remembers what it started and stops it
by PID, newest first: ``SIGINT``, then ``SIGKILL`` for what lingers, including worker
processes of our own children that outlived their parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import httpx
import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

ROOT: Final = Path(__file__).resolve().parent.parent
"""The repository root: every child runs from there."""

PYTHON: Final = sys.executable
HOST: Final = "127.0.0.1"
"""Everything of a run listens and connects on the loopback interface only."""

_PR_SET_PDEATHSIG: Final = 1
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_STOP_TIMEOUT: Final = 15.0


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _child_setup(cores: frozenset[int] | None) -> Callable[[], None]:
    """Return the ``preexec_fn`` that pins the child and ties its life to ours."""

    def setup() -> None:
        if cores:
            os.sched_setaffinity(0, cores)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)

    return setup


class Managed:
    """One child process of the run."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.popen.pid

    def log_tail(self, size: int = 3000) -> str:
        """Return the end of the child's combined output."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""


class ProcessSet:
    """The children of a run; :meth:`stop_all` stops whatever is still running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: list[Managed] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        cores: frozenset[int] | None,
        env: Mapping[str, str] | None = None,
        pipes: bool = False,
    ) -> Managed:
        """Start ``argv`` pinned to ``cores``, its output going to a log file of its own.

        With ``pipes``, its standard input and output are pipes to us instead (its standard
        error still goes to the log).
        """
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=dict(env) if env is not None else None,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log,
                stderr=log if pipes else subprocess.STDOUT,
                # preexec_fn is safe here: the harness runs no threads of its own.
                preexec_fn=_child_setup(cores),
            )
        managed = Managed(name, popen, log_path)
        self._running.append(managed)
        return managed

    def stop(self, managed: Managed, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop one child by PID (``SIGINT``, then ``SIGKILL``), and any worker it left."""
        if managed in self._running:
            self._running.remove(managed)
        offspring = descendants(managed.pid)
        for pipe in (managed.popen.stdin, managed.popen.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if managed.popen.poll() is None:
            managed.popen.send_signal(signal.SIGINT)
            try:
                managed.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                managed.popen.kill()
                managed.popen.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        for pid in offspring:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop_all(self) -> None:
        """Stop every child still running, newest first."""
        for managed in reversed(list(self._running)):
            self.stop(managed)


def wait_ready(managed: Managed, deadline: float) -> None:
    """Wait until the child, started with ``pipes``, writes ``ready`` on its standard output.

    Raises:
        RuntimeError: the child exited, said something else, or was not ready by ``deadline``.
    """
    stdout = managed.popen.stdout
    if stdout is None:
        msg = f"{managed.name} was not started with pipes"
        raise RuntimeError(msg)
    ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        msg = f"{managed.name} was not ready in time:\n{managed.log_tail()}"
        raise RuntimeError(msg)
    line = stdout.readline()
    if line.strip() != b"ready":
        msg = f"{managed.name} exited or said {line!r} instead of ready:\n{managed.log_tail()}"
        raise RuntimeError(msg)


def tell(managed: Managed, line: str) -> None:
    """Write one line to the standard input of a child started with ``pipes``, and close it.

    Raises:
        RuntimeError: the child was not started with pipes.
    """
    stdin = managed.popen.stdin
    if stdin is None:
        msg = f"{managed.name} was not started with pipes"
        raise RuntimeError(msg)
    stdin.write(line.encode() + b"\n")
    stdin.close()


def _alive(pid: int) -> bool:
    """Return True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Return the PIDs of every process below ``pid`` (children first, then theirs)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop(0)
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    queue.append(int(child))
    return found


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants."""
    return [pid, *descendants(pid)]


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """Return the CPU time (user + system) each live process of ``pids`` has used."""
    used: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # After the command name: state is field 3, utime and stime are fields 14 and 15.
        used[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return used


def affinity_of(pid: int) -> str:
    """Return the kernel's ``Cpus_allowed_list`` of ``pid`` (for the report)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        return "gone"
    return "?"


class CoreTimes(msgspec.Struct, frozen=True):
    """Cumulative seconds of one core, from ``/proc/stat``."""

    busy: float
    """Time not idle: processes (user, nice, system) and interrupts (irq, softirq)."""
    processes: float
    """Time in processes only (user, nice, system), what per-process CPU times add up to."""
    total: float
    steal: float


def core_times() -> dict[int, CoreTimes]:
    """Return the cumulative busy, total and steal seconds of every core."""
    times: dict[int, CoreTimes] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(v) / _CLOCK_TICKS for v in values[:8]
        )
        processes = user + nice + system
        busy = processes + irq + softirq
        times[int(name[3:])] = CoreTimes(busy, processes, busy + idle + iowait + steal, steal)
    return times


def wait_for_http(url: str, managed: Managed, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers below 500; fail early, with its log, if the child exits.

    Raises:
        RuntimeError: the child exited, or ``url`` did not answer within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.popen.poll() is not None:
            msg = (
                f"{managed.name} exited with {managed.popen.returncode} before {url} answered:\n"
                f"{managed.log_tail()}"
            )
            raise RuntimeError(msg)
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    msg = f"{url} did not answer within {timeout:.0f} s:\n{managed.log_tail()}"
    raise RuntimeError(msg)

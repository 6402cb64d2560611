"""``python -m console``: run the console alone (what ``tollgate console`` runs).

Uses ``DATABASE_URL`` when set, else the embedded PostgreSQL under ``--data-dir``; applies
migrations, creates the first admin when there is none (printing its password once), then
serves the console until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from console.server import (
    DEFAULT_PORT,
    ensure_first_admin,
    serve_console,
    stop_console,
    wait_until_ready,
)
from shared.database import migrate
from shared.settings import default_data_dir


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the console in the foreground; return the process's exit status."""
    parser = argparse.ArgumentParser(prog="tollgate console", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data-dir", default=None, help="embedded PostgreSQL data directory")
    parser.add_argument("--admin-password", default=None, help="first admin's password")
    args = parser.parse_args(argv)
    # Stop the same way on SIGTERM as on Ctrl-C, so the Reflex children are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)

    server = None
    url = os.environ.get("DATABASE_URL") or os.environ.get("TOLLGATE_DATABASE_URL")
    if not url:
        from shared.postgres import EmbeddedPostgres

        server = EmbeddedPostgres(args.data_dir or default_data_dir())
        url = server.start()
    try:
        migrate(url)
        password = ensure_first_admin(url, args.admin_password)
        process = serve_console(url, args.host, args.port)
        address = f"http://{args.host}:{args.port}"
        try:
            wait_until_ready(process, address)
            print(f"Tollgate console: {address}/", flush=True)  # noqa: T201
            if password:
                print(f"First admin: user `admin`, password `{password}` (shown once)", flush=True)  # noqa: T201
            with contextlib.suppress(KeyboardInterrupt):
                process.wait()
        finally:
            stop_console(process)
        return process.returncode or 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

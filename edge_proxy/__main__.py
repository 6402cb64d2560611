"""Run the relay: ``python -m edge_proxy [--host H] [--port N] [--workers W]``.

The secret and the upstream table come from ``TOLLGATE_RELAY_SECRET`` and
``TOLLGATE_RELAY_UPSTREAMS`` only, never from the command line, where other users of the
machine could read them. ``tollgate relay`` is the same runner behind the main CLI.
"""

from __future__ import annotations

import argparse

from edge_proxy.asgi_app import DEFAULT_HOST, DEFAULT_PORT, serve


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m edge_proxy", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (%(default)s)")
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()

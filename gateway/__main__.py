"""Allow ``python -m gateway``."""

from __future__ import annotations

from gateway.cli import main

main()

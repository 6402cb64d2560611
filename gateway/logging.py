"""Logging set-up for gateway processes: JSON lines in production, readable text on a TTY."""

from __future__ import annotations

import json
import logging
import sys
from typing import Final

__all__ = ("configure_logging",)

_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_QUIET: Final = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "asyncpg": logging.WARNING,
    "aiohttp": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "alembic": logging.WARNING,
}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send ``gateway``, ``shared`` and library logs to stderr, once per process."""
    root = logging.getLogger()
    if any(getattr(h, "_tollgate", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_JsonFormatter())
    handler._tollgate = True  # type: ignore[attr-defined]  # marks our handler for idempotence
    # The server may have given the root logger a handler of its own; one line per event.
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)

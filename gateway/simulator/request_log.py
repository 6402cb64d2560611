"""The request log: the last requests the simulator received, for assertions in tests.

`GET /_sim/requests` returns them as a JSON array, newest last; `DELETE /_sim/requests` clears
it. Each entry has `method`, `path` (as received, `/_fault/` or `/_replay/` prefix included),
`query` (the raw query string), `headers` (lower-case names; repeated headers joined with
`", "`), `body` (the parsed JSON body, or null when it is not JSON or larger than
`MAX_LOGGED_BODY`), `body_size`, `body_sha256` and `time` (Unix seconds). Requests to `/_sim/`
are not logged. The log lives in the memory of one worker process: with several workers each
keeps its own, so tests that read it run the simulator with one worker.
"""

from __future__ import annotations

import collections
import hashlib
import time
from typing import Any, Final

import msgspec

MAX_ENTRIES: Final = 200
"""Requests kept."""

MAX_LOGGED_BODY: Final = 1024 * 1024
"""Largest body, in bytes, kept parsed in an entry."""


class RequestLog:
    """The last `MAX_ENTRIES` requests of this process."""

    def __init__(self) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_ENTRIES)

    def record(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        parsed: Any,
    ) -> None:
        """Append one request; `parsed` is its decoded JSON body, or None."""
        self._entries.append(
            {
                "method": method,
                "path": path,
                "query": query,
                "headers": headers,
                "body": parsed if len(body) <= MAX_LOGGED_BODY else None,
                "body_size": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "time": time.time(),
            }
        )

    def dump(self) -> bytes:
        """Return the entries as a JSON array, newest last."""
        return msgspec.json.encode(list(self._entries))

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

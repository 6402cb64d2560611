"""A raw HTTP/1.1 client that keeps the chunk boundaries and arrival times of a response."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)
    """Body chunks of a chunked response, in the order and at the boundaries they were written."""
    arrivals: list[float] = field(default_factory=list)
    """Seconds from the request to the complete arrival of each chunk."""
    terminated: bool = False
    """Whether the zero-length last chunk arrived (a clean end of the body)."""
    headers_at: float = 0.0
    body: bytes = b""
    """The raw bytes after the headers."""


def _parse_chunks(data: bytes) -> tuple[list[bytes], bool]:
    chunks: list[bytes] = []
    position = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return chunks, False
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return chunks, data[line_end + 2 : line_end + 4] == b"\r\n"
        start = line_end + 2
        if len(data) < start + size + 2:
            return chunks, False
        chunks.append(data[start : start + size])
        position = start + size + 2


def request(
    base_url: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> RawResponse:
    """Send one request with `Connection: close` and read the response to EOF."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    raw_request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    started = time.perf_counter()
    buffer = b""
    seen = 0
    arrivals: list[float] = []
    head_end = -1
    headers_at = 0.0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(raw_request)
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            buffer += data
            now = time.perf_counter() - started
            if head_end < 0:
                head_end = buffer.find(b"\r\n\r\n")
                headers_at = now
            if head_end >= 0:
                chunks, _ = _parse_chunks(buffer[head_end + 4 :])
                arrivals += [now] * (len(chunks) - seen)
                seen = len(chunks)

    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    response_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    response = RawResponse(int(status_line.split()[1]), response_headers, headers_at=headers_at)
    response.body = rest
    if response_headers.get("transfer-encoding") == "chunked":
        response.chunks, response.terminated = _parse_chunks(rest)
        response.arrivals = arrivals
    return response

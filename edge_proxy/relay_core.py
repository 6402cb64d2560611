"""Relay policy: who may call the relay, where a call goes, and which headers cross it.

This module is the whole decision logic of the edge relay and nothing else. It uses the
standard library only and performs no I/O, so the same file runs under CPython (the ASGI
relay in ``edge_proxy.asgi_app``) and under Pyodide (the Cloudflare Python Worker in
``edge_proxy.worker``, where it is imported as the top-level module ``relay_core``). It must
therefore import nothing from ``edge_proxy`` and keep to Python 3.12 syntax.

A shell hands each request to :meth:`RelayPolicy.decide` and receives either a
:class:`Forward` (the upstream URL and the rebuilt request headers) or a :class:`Refusal`
(a relay error response to send as is). Refusals are told apart from upstream errors by the
``x-relay-error`` response header and the ``relay_error`` type in their JSON body.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

RELAY_KEY_HEADER: Final = "x-relay-key"
"""Request header that carries the shared relay secret; never forwarded."""

RELAY_ERROR_HEADER: Final = "x-relay-error"
"""Response header set on every refusal by the relay itself; its value is the error code."""

BINDING_PREFIX: Final = "cfai-binding"
"""First path segment that selects the Workers AI binding instead of the upstream table."""

DEFAULT_UPSTREAMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "anthropic": "https://api.anthropic.com",
        "cfai": "https://api.cloudflare.com",
        "gemini": "https://generativelanguage.googleapis.com",
        "openai": "https://api.openai.com",
    }
)
"""Upstream table used when none is configured: first path segment to base URL."""

ALLOWED_METHODS: Final = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
"""Methods the relay forwards; CONNECT and TRACE have no place in an API relay."""

_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that describe one connection, not the message (RFC 9110 section 7.6.1)."""

_REQUEST_DENY: Final = frozenset(
    {
        # The upstream's host comes from the table, never from the client.
        "host",
        # Expectations are answered by the server in front of the relay.
        "expect",
        # Anything that names the caller, its address or the path it took.
        "cdn-loop",
        "client-ip",
        "cookie",
        "fastly-client-ip",
        "forwarded",
        "true-client-ip",
        "via",
        "x-client-ip",
        "x-cluster-client-ip",
        "x-originating-ip",
        "x-real-ip",
        "x-remote-addr",
        "x-remote-ip",
    }
)
"""Request headers dropped on top of the hop-by-hop ones."""

_REQUEST_DENY_PREFIXES: Final = ("cf-", "x-forwarded-", "x-original-", "x-relay-")
"""Request header name prefixes dropped: Cloudflare's, proxies' and the relay's own."""

_RESPONSE_DENY: Final = frozenset({"alt-svc"})
"""Response headers dropped: ``alt-svc`` advertises the upstream's origin, not the relay's."""

_RESPONSE_DENY_PREFIXES: Final = ("x-relay-",)
"""Response header name prefixes dropped, so an upstream cannot pose as a relay error."""

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header field name (RFC 9110 section 5.6.2)."""

_UPSTREAM_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""A name in the upstream table, which is also a path segment."""

_MODEL_SEGMENT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
"""One segment of a Workers AI model name, such as ``llama-3.1-8b-instruct``."""

_MAX_DECODE_ROUNDS: Final = 3
"""Percent-decoding passes applied to a path before it is judged too deeply encoded."""

_MAX_PATH_LENGTH: Final = 8192
"""Longest accepted request path, in characters."""


class UpstreamTableError(ValueError):
    """Raised when an upstream table is not a JSON object of names to ``http(s)`` base URLs."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A response the relay gives itself, instead of forwarding the request."""

    status: int
    """HTTP status code of the refusal."""

    code: str
    """Machine-readable reason, sent in ``x-relay-error`` and in the body."""

    message: str
    """One sentence for the operator; never contains secrets."""

    def headers(self) -> list[tuple[str, str]]:
        """Return the response headers of the refusal, names in lower case."""
        return [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            (RELAY_ERROR_HEADER, self.code),
        ]

    def body(self) -> bytes:
        """Return the JSON body: ``{"error": {"type": "relay_error", "code", "message"}}``."""
        error = {"type": "relay_error", "code": self.code, "message": self.message}
        return json.dumps({"error": error}, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Forward:
    """A request that passed every check, ready to send upstream."""

    upstream: str
    """Name of the upstream in the table; safe to log, unlike the URL."""

    url: str
    """Absolute target URL: table base, the rest of the path, and the original query."""

    headers: tuple[tuple[str, str], ...]
    """Rebuilt request headers, names in lower case, in their original order."""


@dataclass(frozen=True, slots=True)
class BindingCall:
    """A request for the Workers AI binding of the Worker shell."""

    model: str
    """Workers AI model name, such as ``@cf/meta/llama-3.1-8b-instruct``."""


@dataclass(frozen=True, slots=True, eq=False)
class RelayPolicy:
    """The configured relay: its shared secret and its upstream table.

    Raises:
        UpstreamTableError: if ``upstreams`` holds a bad name or base URL.
    """

    secret: str | None = field(repr=False)
    """Shared secret expected in ``x-relay-key``; ``None`` or empty refuses every request."""

    upstreams: Mapping[str, str] = field(default_factory=lambda: DEFAULT_UPSTREAMS)
    """First path segment to upstream base URL (scheme, host, optional port and path)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstreams", MappingProxyType(validate_upstreams(self.upstreams)))

    def authenticate(self, headers: Iterable[tuple[str, str]]) -> Refusal | None:
        """Check the shared secret in the request headers.

        Args:
            headers: Request headers as ``(name, value)`` pairs; values hold one character
                per byte (latin-1), as ASGI servers and the Fetch API deliver them.

        Returns:
            ``None`` when the caller presented the secret, otherwise the refusal to send.
        """
        if not self.secret:
            return Refusal(500, "secret_not_configured", "relay secret not configured")

        presented = [value for name, value in headers if name.lower() == RELAY_KEY_HEADER]
        if not presented:
            return Refusal(401, "relay_key_missing", f"the `{RELAY_KEY_HEADER}` header is missing")
        if len(presented) > 1:
            return Refusal(
                401, "relay_key_invalid", f"the `{RELAY_KEY_HEADER}` header must appear once"
            )

        expected = self.secret.encode()
        try:
            candidate = presented[0].encode("latin-1")
        except UnicodeEncodeError:
            candidate = b""
        if not hmac.compare_digest(candidate, expected):
            return Refusal(401, "relay_key_invalid", f"the `{RELAY_KEY_HEADER}` header is wrong")
        return None

    def decide(
        self,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        *,
        keep_content_length: bool = False,
    ) -> Forward | Refusal:
        """Decide where a request goes, or refuse it.

        Checks run in this order: secret configured (500), caller authenticated (401),
        method allowed (405), path and query sane (400), upstream known (404).

        Args:
            method: Request method, as received.
            path: Raw request path, still percent-encoded, starting with ``/``.
            query: Raw query string without the ``?``; kept as it is.
            headers: Request headers as ``(name, value)`` pairs.
            keep_content_length: Forward ``content-length``; true where the shell relays the
                body bytes unchanged and sets no length itself (the ASGI relay).

        Returns:
            The forward to perform, or the refusal to send.
        """
        pairs = list(headers)
        refusal = self.authenticate(pairs) or check_method(method) or check_target(path, query)
        if refusal is not None:
            return refusal

        name, rest = _split_prefix(path)
        base = self.upstreams.get(name)
        if base is None:
            known = ", ".join(sorted(self.upstreams))
            return Refusal(
                404, "unknown_upstream", f"no upstream is named `{name}`; known: {known}"
            )

        url = base + rest + ("?" + query if query else "")
        kept = filter_request_headers(pairs, keep_content_length=keep_content_length)
        return Forward(upstream=name, url=url, headers=kept)

    def decide_binding(
        self, method: str, path: str, headers: Iterable[tuple[str, str]]
    ) -> BindingCall | Refusal | None:
        """Decide a call to the Workers AI binding, under ``/cfai-binding/<model>``.

        The model goes in the path without its leading ``@`` (which the relay refuses in
        paths): ``/cfai-binding/cf/meta/llama-3.1-8b-instruct`` runs
        ``@cf/meta/llama-3.1-8b-instruct``.

        Returns:
            ``None`` when the path is not under the binding prefix (use :meth:`decide`),
            otherwise the binding call or the refusal to send.
        """
        name, rest = _split_prefix(path)
        if name != BINDING_PREFIX:
            return None

        pairs = list(headers)
        refusal = self.authenticate(pairs) or check_target(path, "")
        if refusal is not None:
            return refusal
        if method != "POST":
            return Refusal(
                405, "method_not_allowed", f"the binding takes `POST`, not `{method[:16]}`"
            )

        segments = rest.split("/")[1:]
        if not segments or not all(_MODEL_SEGMENT.fullmatch(s) for s in segments):
            return Refusal(
                400,
                "invalid_model",
                f"expected `/{BINDING_PREFIX}/<namespace>/<vendor>/<model>`, "
                "e.g. `/cfai-binding/cf/meta/llama-3.1-8b-instruct`",
            )
        return BindingCall(model="@" + "/".join(segments))


def parse_binding_inputs(text: str) -> dict[str, Any] | Refusal:
    """Parse the JSON object of inputs for a Workers AI binding call.

    Returns:
        The inputs, or a 400 refusal when the body is not a JSON object.
    """
    try:
        inputs = json.loads(text)
    except ValueError:
        inputs = None
    if not isinstance(inputs, dict):
        return Refusal(400, "invalid_body", "the binding takes a JSON object of model inputs")
    return inputs


def validate_upstreams(upstreams: Mapping[Any, Any]) -> dict[str, str]:
    """Check an upstream table and return it with trailing slashes removed from base URLs.

    Raises:
        UpstreamTableError: if a name is not a lower-case path segment or a base URL is not
            an absolute ``http``/``https`` URL without credentials, query or fragment.
    """
    table: dict[str, str] = {}
    for name, base in upstreams.items():
        if not isinstance(name, str) or not _UPSTREAM_NAME.fullmatch(name):
            msg = f"upstream name {name!r} must match `{_UPSTREAM_NAME.pattern}`"
            raise UpstreamTableError(msg)
        if name == BINDING_PREFIX:
            msg = f"upstream name `{name}` is reserved for the Workers AI binding"
            raise UpstreamTableError(msg)
        if not isinstance(base, str):
            msg = f"upstream `{name}` must map to a URL string, got {type(base).__name__}"
            raise UpstreamTableError(msg)

        parts = urlsplit(base)
        if (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or "@" in parts.netloc
            or parts.query
            or parts.fragment
            or "?" in base
            or "#" in base
        ):
            msg = (
                f"upstream `{name}` must be an absolute http(s) URL without credentials, "
                f"query or fragment, got {base!r}"
            )
            raise UpstreamTableError(msg)
        table[name] = base.rstrip("/")
    return table


def parse_upstreams(text: str) -> dict[str, str]:
    """Parse an upstream table from JSON, such as ``{"gemini": "https://…"}``.

    Raises:
        UpstreamTableError: if the text is not a JSON object or fails
            :func:`validate_upstreams`.
    """
    try:
        table = json.loads(text)
    except ValueError as exc:
        msg = f"upstream table is not valid JSON: {exc}"
        raise UpstreamTableError(msg) from exc
    if not isinstance(table, dict):
        msg = f"upstream table must be a JSON object, got {type(table).__name__}"
        raise UpstreamTableError(msg)
    return validate_upstreams(table)


def check_method(method: str) -> Refusal | None:
    """Refuse methods other than those in :data:`ALLOWED_METHODS` (405)."""
    if method in ALLOWED_METHODS:
        return None
    return Refusal(405, "method_not_allowed", f"method `{method[:16]}` is not relayed")


def check_target(path: str, query: str) -> Refusal | None:
    """Refuse a path or query that could leave the upstream's base path (400).

    The path is judged raw and after each of up to three percent-decoding passes, so
    ``%2e%2e`` and ``%252e%252e`` are caught as well as ``..``. Refused: dot segments,
    empty segments (``//``), backslashes, ``@`` and control characters.
    """
    if not path.startswith("/") or len(path) > _MAX_PATH_LENGTH:
        return _bad_path("the path must start with `/` and be at most 8192 characters")
    if not _is_visible_ascii(path):
        return _bad_path("the path must be percent-encoded printable ASCII")
    if not _is_visible_ascii(query) or "#" in query:
        return _bad_path("the query must be percent-encoded printable ASCII")

    current = path
    for _ in range(_MAX_DECODE_ROUNDS):
        refusal = _check_decoded_path(current)
        if refusal is not None:
            return refusal
        decoded = unquote(current)
        if decoded == current:
            return None
        current = decoded
    return _bad_path("the path is percent-encoded too many times")


def filter_request_headers(
    headers: Iterable[tuple[str, str]], *, keep_content_length: bool = False
) -> tuple[tuple[str, str], ...]:
    """Rebuild request headers for the upstream from an allow/deny pass.

    Dropped: hop-by-hop headers and those the ``connection`` header names, ``host``,
    ``expect``, ``cookie``, every header that carries the caller's address or route
    (``forwarded``, ``via``, ``x-real-ip``, ``true-client-ip``, ``cf-*``,
    ``x-forwarded-*``, ...), the relay's own ``x-relay-*`` headers (the secret among
    them), ``content-length`` unless ``keep_content_length``, and any header whose name or
    value is malformed. Everything else, such as ``authorization``, ``x-api-key``,
    ``x-goog-api-key``, ``anthropic-version`` and ``content-type``, passes in order.
    """
    pairs = list(headers)
    nominated = _connection_tokens(pairs)
    kept: list[tuple[str, str]] = []
    for raw_name, value in pairs:
        name = raw_name.lower()
        if (
            name in _HOP_BY_HOP
            or name in _REQUEST_DENY
            or name in nominated
            or name.startswith(_REQUEST_DENY_PREFIXES)
            or (name == "content-length" and not keep_content_length)
            or not _is_valid_field(name, value)
        ):
            continue
        kept.append((name, value))
    return tuple(kept)


def filter_response_headers(
    headers: Iterable[tuple[str, str]], *, body_decoded: bool
) -> tuple[tuple[str, str], ...]:
    """Filter upstream response headers before they go back to the caller.

    Dropped: hop-by-hop headers and those the ``connection`` header names, ``alt-svc``,
    any ``x-relay-*`` header (only the relay may send ``x-relay-error``), and malformed
    headers. ``content-length`` and ``content-encoding`` are dropped when ``body_decoded``
    is true (the runtime decompressed the body, as the Workers ``fetch`` does) and kept
    when the shell relays the body bytes unchanged.
    """
    pairs = list(headers)
    nominated = _connection_tokens(pairs)
    kept: list[tuple[str, str]] = []
    for raw_name, value in pairs:
        name = raw_name.lower()
        if (
            name in _HOP_BY_HOP
            or name in _RESPONSE_DENY
            or name in nominated
            or name.startswith(_RESPONSE_DENY_PREFIXES)
            or (body_decoded and name in {"content-length", "content-encoding"})
            or not _is_valid_field(name, value)
        ):
            continue
        kept.append((name, value))
    return tuple(kept)


def request_has_body(headers: Iterable[tuple[str, str]]) -> bool:
    """Return whether the request headers announce a body (RFC 9112 section 6.3)."""
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == "transfer-encoding":
            return True
        if name == "content-length" and value.strip() != "0":
            return True
    return False


def _split_prefix(path: str) -> tuple[str, str]:
    """Split ``/name/rest?`` into ``("name", "/rest")``; the rest may be empty."""
    name, slash, rest = path[1:].partition("/")
    return name, slash + rest


def _check_decoded_path(path: str) -> Refusal | None:
    if "\\" in path:
        return _bad_path("backslashes are not allowed in the path")
    if "@" in path:
        return _bad_path("`@` is not allowed in the path")
    if not path.isprintable():
        return _bad_path("control characters are not allowed in the path")
    if not path.startswith("/"):
        return _bad_path("the path must start with `/`")
    segments = path[1:].split("/")
    if any(segment in {".", ".."} for segment in segments):
        return _bad_path("`.` and `..` segments are not allowed in the path")
    if any(not segment for segment in segments[:-1]):
        return _bad_path("empty segments (`//`) are not allowed in the path")
    return None


def _bad_path(message: str) -> Refusal:
    return Refusal(400, "invalid_path", message)


def _is_visible_ascii(text: str) -> bool:
    return all("!" <= char <= "~" for char in text)


def _is_valid_field(name: str, value: str) -> bool:
    if not _TOKEN.fullmatch(name):
        return False
    return not any(char in value for char in "\r\n\x00")


def _connection_tokens(headers: list[tuple[str, str]]) -> frozenset[str]:
    """Return the header names listed in ``connection``, which are hop-by-hop too."""
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(token.strip().lower() for token in value.split(","))
    tokens.discard("")
    return frozenset(tokens)

"""The request path every generation endpoint shares, after its surface decoded the request.

resolve the model → hold the worst-case cost (admission, one SQL round trip) → relay →
settle (one SQL round trip). Surfaces (OpenAI, Anthropic, Gemini) only read the body,
authenticate, decode to canonical form and choose the client codec.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from typing import TYPE_CHECKING, Any, Final

from gateway.asgi import DisconnectWatcher, send_bytes, start_response
from gateway.billing import UsageRecord, admit, settle
from gateway.canonical import Image
from gateway.errors import GatewayError
from gateway.proxy import Exchange, relay
from gateway.routing import resolve
from shared.money import compute_hold

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from litestar.types import Receive, Scope, Send

    from gateway.canonical import ChatRequest
    from gateway.snapshot import KeyEntry, TenantEntry
    from gateway.state import GatewayState
    from gateway.translate import ClientCodec

logger = logging.getLogger(__name__)

__all__ = (
    "input_token_bound",
    "new_request_id",
    "refuse_method",
    "send_error",
    "serve_generation",
)

MAX_HOLD: Final = 2**62
"""Largest hold placed, nano-dollars (about 4.6 billion USD)."""

IMAGE_TOKEN_ALLOWANCE: Final = 2_000
"""Tokens assumed, for the hold, per image."""


def new_request_id() -> str:
    """Return a fresh request id."""
    return "req_" + secrets.token_hex(12)


async def send_error(
    send: Send, render: Callable[[GatewayError], bytes], error: GatewayError, request_id: str
) -> None:
    """Write ``error`` as a complete JSON response rendered by the caller's protocol."""
    headers = {"x-request-id": request_id, "x-tollgate-cost": "0", **error.headers}
    if error.status >= 500 and "x-should-retry" not in headers:
        headers["x-should-retry"] = "true" if error.retryable else "false"
    await start_response(send, error.status, headers.items(), content_type="application/json")
    await send_bytes(send, render(error), more=False)


async def refuse_method(
    scope: Scope,
    send: Send,
    render: Callable[[GatewayError], bytes],
    request_id: str,
    allowed: tuple[str, ...] = ("POST",),
) -> bool:
    """Answer 405 in the caller's protocol unless the method is allowed; True when refused."""
    if str(scope.get("method", "GET")) in allowed:
        return False
    msg = f"This endpoint accepts {' or '.join(allowed)} only."
    await send_error(send, render, GatewayError(405, "method_not_allowed", msg), request_id)
    return True


def input_token_bound(request: ChatRequest, body_size: int) -> int:
    """Return an upper bound on the prompt's tokens, for the hold.

    A token covers at least one byte of text, so the body's size bounds the text; images
    are taken out and counted at a fixed allowance instead.
    """
    media_bytes = 0
    images = 0
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, Image):
                images += 1
                media_bytes += len(part.data or "") + len(part.url or "")
    return max(body_size - media_bytes, 0) + images * IMAGE_TOKEN_ALLOWANCE


def output_token_bound(request: ChatRequest, default: int) -> int:
    """Return the most output tokens the request can produce (or the configured default)."""
    return (request.max_output_tokens or default) * max(request.n, 1)


async def serve_generation(
    state: GatewayState,
    receive: Receive,
    send: Send,
    *,
    request_id: str,
    created_at: datetime.datetime,
    key: KeyEntry,
    tenant: TenantEntry,
    request: ChatRequest,
    raw: dict[str, Any] | None,
    client: ClientCodec,
    endpoint: str,
    body_size: int,
    client_headers: Mapping[str, str],
) -> None:
    """Admit, relay and settle one decoded generation request."""
    settings = state.settings
    try:
        if not any(message.parts for message in request.messages):
            msg = "The request has no content to send: every message is empty."
            raise GatewayError(400, "invalid_value", msg, param="messages")
        route = resolve(state.snapshot, key, tenant, request.model)
        hold = compute_hold(
            input_token_bound(request, body_size),
            output_token_bound(request, settings.billing.default_max_output_tokens),
            route.price,
            tenant.ratio,
        )
        # A hold past any balance is refused anyway; keep it inside BIGINT.
        hold = min(hold, MAX_HOLD)
        rate_headers = await admit(
            state.pool, request_id=request_id, key=key, amount=hold, ttl=settings.billing.hold_ttl
        )
    except GatewayError as exc:
        await send_error(send, client.error_body, exc, request_id)
        return

    record = UsageRecord(
        created_at=created_at,
        request_id=request_id,
        tenant_id=key.tenant_id,
        key_id=key.id,
        channel_id=None,
        model=request.model,
        upstream_model=None,
        endpoint=endpoint,
        stream=request.stream,
        status="error",
        http_status=0,
    )
    exchange = Exchange(
        request=request,
        raw=raw,
        client=client,
        route=route,
        tenant=tenant,
        record=record,
        response_headers={"x-request-id": request_id, **rate_headers},
        client_headers=client_headers,
    )
    watcher = DisconnectWatcher(receive)
    try:
        await relay(state, exchange, send, watcher)
    except GatewayError as exc:
        record.status = "error"
        record.http_status = exc.status
        record.error = exc.message
        if not exchange.committed:
            await send_error(send, client.error_body, exc, request_id)
    finally:
        watcher.stop()
        # Settlement must happen even if this handler is cancelled; shield it.
        await asyncio.shield(state.spawn(_settle(state, exchange)))


async def _settle(state: GatewayState, exchange: Exchange) -> None:
    record = exchange.record
    if record.status == "error" and exchange.upstream_usage is None and not exchange.committed:
        charge = 0
    else:
        usage = exchange.final_usage()
        record.apply(usage)
        charge = exchange.cost_of(usage)
    record.latency_ms = int(
        (datetime.datetime.now(datetime.UTC) - record.created_at).total_seconds() * 1000
    )
    try:
        await settle(state.pool, record, charge)
    except Exception:
        logger.exception(
            "settlement failed", extra={"request_id": record.request_id, "charge": charge}
        )
        return
    logger.info(
        "request served",
        extra={
            "request_id": record.request_id,
            "tenant_id": record.tenant_id,
            "key_id": record.key_id,
            "channel_id": record.channel_id,
            "model": record.model,
            "status": record.status,
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "charge": charge,
            "latency_ms": record.latency_ms,
        },
    )

"""The OpenAI embeddings surface: ``POST /v1/embeddings``.

The same path as generation, in one request: authenticate → resolve the model (its price is
the client's model name's) → hold the worst-case cost → fetch from the first channel that
serves it (:func:`gateway.embeddings.fetch_embeddings`) → settle. Only input tokens are
billed: the upstream's count when it gives one, else an offline count of the inputs, marked
as estimated. The answer is OpenAI's list shape, the vectors as floats or as base64
little-endian float32 per ``encoding_format``, with ``usage.cost`` and ``x-tollgate-cost``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.asgi import read_body, send_bytes, start_response
from gateway.auth import authenticate
from gateway.billing import UsageRecord, admit, settle
from gateway.embeddings import (
    count_inputs,
    decode_embedding_request,
    encode_vector,
    fetch_embeddings,
)
from gateway.errors import GatewayError, malformed_input
from gateway.pipeline import new_request_id, refuse_method, send_error
from gateway.routing import resolve
from gateway.surfaces.openai import api_key_of, decode_json_object, error_body
from shared.money import Usage, compute_cost, compute_hold, format_usd

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from gateway.embeddings import EmbeddingAnswer, EmbeddingRequest
    from gateway.state import GatewayState

logger = logging.getLogger(__name__)

__all__ = ("embeddings_body", "serve_embeddings")


def embeddings_body(
    request: EmbeddingRequest, answer: EmbeddingAnswer, usage: Usage, cost: int
) -> bytes:
    """Return the OpenAI embeddings list for ``answer``."""
    if answer.data is not None:
        data = sorted(answer.data, key=lambda item: int(item["index"]))
    else:
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode_vector(vector, request.encoding_format),
            }
            for index, vector in enumerate(answer.vectors or ())
        ]
    usage_body: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "total_tokens": usage.input_tokens,
    }
    if usage.estimated:
        usage_body["estimated"] = True
    usage_body["cost"] = format_usd(cost)
    return msgspec.json.encode(
        {"object": "list", "data": data, "model": request.model, "usage": usage_body}
    )


async def serve_embeddings(
    state: GatewayState,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Handle ``POST /v1/embeddings``."""
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    if await refuse_method(scope, send, error_body, request_id):
        return
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        with malformed_input():
            request = decode_embedding_request(decode_json_object(body))
        route = resolve(state.snapshot, key, tenant, request.model)
        # A token covers at least one byte of the body, so its size bounds the input.
        hold = compute_hold(len(body), 0, route.price, tenant.ratio)
        rate_headers = await admit(
            state.pool,
            request_id=request_id,
            key=key,
            amount=hold,
            ttl=state.settings.billing.hold_ttl,
        )
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return

    record = UsageRecord(
        created_at=created_at,
        request_id=request_id,
        tenant_id=key.tenant_id,
        key_id=key.id,
        channel_id=None,
        model=request.model,
        upstream_model=None,
        endpoint="embeddings",
        stream=False,
        status="error",
        http_status=0,
    )
    charge = 0
    try:
        answer = await fetch_embeddings(state, request, route, record)
        if answer.prompt_tokens is not None:
            usage = Usage(input_tokens=answer.prompt_tokens)
        else:
            usage = Usage(input_tokens=count_inputs(request.inputs), estimated=True)
        charge = compute_cost(usage, route.price, tenant.ratio)
        record.apply(usage)
        record.status = "ok"
        record.http_status = 200
        payload = embeddings_body(request, answer, usage, charge)
        headers = {
            "x-request-id": request_id,
            **rate_headers,
            "x-tollgate-cost": format_usd(charge),
        }
        await start_response(send, 200, headers.items(), content_type="application/json")
        await send_bytes(send, payload, more=False)
    except GatewayError as exc:
        charge = 0
        record.status = "error"
        record.http_status = exc.status
        record.error = exc.message
        await send_error(send, error_body, exc, request_id)
    finally:
        # Settlement must happen even if this handler is cancelled; shield it.
        await asyncio.shield(state.spawn(_settle(state, record, charge, created_at)))


async def _settle(
    state: GatewayState, record: UsageRecord, charge: int, created_at: datetime.datetime
) -> None:
    record.latency_ms = int(
        (datetime.datetime.now(datetime.UTC) - created_at).total_seconds() * 1000
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
            "charge": charge,
            "latency_ms": record.latency_ms,
        },
    )

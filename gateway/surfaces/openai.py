"""The OpenAI-compatible surface: ``/v1/chat/completions`` and ``/v1/models``.

Handlers read top to bottom as the request path does: read the body, authenticate from
the snapshot, validate, resolve the model, admit (one SQL round trip: rate window and
hold), relay, settle (one SQL round trip). Every refusal is an OpenAI error object with
the status the OpenAI SDKs map to the right exception class.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from gateway.asgi import DisconnectWatcher, header, read_body, send_bytes, start_response
from gateway.auth import authenticate, bearer_token
from gateway.billing import UsageRecord, admit, settle
from gateway.errors import GatewayError
from gateway.proxy import ChatExchange, relay_chat
from gateway.routing import resolve
from shared.money import compute_hold

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from gateway.state import GatewayState

logger = logging.getLogger(__name__)

__all__ = ("ChatCompletionRequest", "error_body", "models_body", "serve_chat_completions")

_IMAGE_TOKEN_ALLOWANCE: Final = 2_000
"""Tokens assumed, for the hold, per image, audio or file part."""

_MEDIA_PARTS: Final = frozenset({"image_url", "input_audio", "file", "image", "audio"})


class StreamOptions(msgspec.Struct):
    """``stream_options`` as far as the gateway reads it."""

    include_usage: bool | None = None


class ChatMessage(msgspec.Struct):
    """A chat message as far as the gateway checks it; other fields pass through."""

    role: str
    content: str | list[dict[str, Any]] | None = None


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ChatCompletionRequest(msgspec.Struct):
    """The fields of a chat completion request the gateway checks; the rest pass through."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


def error_body(error: GatewayError) -> bytes:
    """Render ``error`` as an OpenAI error object."""
    return msgspec.json.encode(
        {
            "error": {
                "message": error.message,
                "type": error.type,
                "param": error.param,
                "code": error.code,
            }
        }
    )


async def send_error(send: Send, error: GatewayError, request_id: str) -> None:
    """Write ``error`` as a complete OpenAI-shaped JSON response."""
    headers = {
        "x-request-id": request_id,
        "x-tollgate-cost": "0",
        **error.headers,
    }
    if error.status >= 500 and "x-should-retry" not in headers:
        headers["x-should-retry"] = "true" if error.retryable else "false"
    await start_response(send, error.status, headers.items(), content_type="application/json")
    await send_bytes(send, error_body(error), more=False)


def parse_chat(body: bytes) -> tuple[dict[str, Any], ChatCompletionRequest]:
    """Decode and check a chat completion body; the dict is what gets relayed.

    Raises:
        GatewayError: 400 with the JSON path of the first bad field.
    """
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        msg = f"We could not parse the JSON body of your request: {exc}"
        raise GatewayError(400, "invalid_json", msg) from None
    if not isinstance(payload, dict):
        msg = "The request body must be a JSON object."
        raise GatewayError(400, "invalid_request_body", msg)
    try:
        request = msgspec.convert(payload, ChatCompletionRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rpartition("at `$.")[2].rstrip("`") if "at `$." in text else None
        msg = f"Invalid request: {text}"
        raise GatewayError(400, "invalid_value", msg, param=param) from None
    return payload, request


def input_token_bound(payload: dict[str, Any], body_size: int) -> int:
    """Return an upper bound on the prompt's tokens, for the hold.

    A token covers at least one byte of text, so the body's size bounds the text; media
    parts are taken out and counted at a fixed allowance instead.
    """
    media_bytes = 0
    media_parts = 0
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") in _MEDIA_PARTS:
                media_parts += 1
                media_bytes += len(msgspec.json.encode(part))
    return max(body_size - media_bytes, 0) + media_parts * _IMAGE_TOKEN_ALLOWANCE


def output_token_bound(request: ChatCompletionRequest, default: int) -> int:
    """Return the most output tokens the request can produce (or the configured default)."""
    limit = request.max_completion_tokens or request.max_tokens or default
    return limit * (request.n or 1)


def new_request_id() -> str:
    """Return a fresh request id."""
    return "req_" + secrets.token_hex(12)


async def serve_chat_completions(
    state: GatewayState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Handle ``POST /v1/chat/completions``."""
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    settings = state.settings
    try:
        body = await read_body(scope, receive, settings.gateway.max_body_bytes)
        snapshot = state.snapshot
        key, tenant = authenticate(snapshot, bearer_token(header(scope, b"authorization")))
        payload, request = parse_chat(body)
        route = resolve(snapshot, key, tenant, request.model)
        hold = compute_hold(
            input_token_bound(payload, len(body)),
            output_token_bound(request, settings.billing.default_max_output_tokens),
            route.price,
            tenant.ratio,
        )
        rate_headers = await admit(
            state.pool, request_id=request_id, key=key, amount=hold, ttl=settings.billing.hold_ttl
        )
    except GatewayError as exc:
        await send_error(send, exc, request_id)
        return

    record = UsageRecord(
        created_at=created_at,
        request_id=request_id,
        tenant_id=key.tenant_id,
        key_id=key.id,
        channel_id=None,
        model=request.model,
        upstream_model=None,
        endpoint="chat.completions",
        stream=bool(request.stream),
        status="error",
        http_status=0,
    )
    exchange = ChatExchange(
        payload=payload,
        model=request.model,
        stream=bool(request.stream),
        client_wants_usage=bool(request.stream_options and request.stream_options.include_usage),
        route=route,
        tenant=tenant,
        record=record,
        response_headers={"x-request-id": request_id, **rate_headers},
    )
    watcher = DisconnectWatcher(receive)
    try:
        await relay_chat(state, exchange, send, watcher)
    except GatewayError as exc:
        record.status = "error"
        record.http_status = exc.status
        record.error = exc.message
        if not exchange.committed:
            await send_error(send, exc, request_id)
    finally:
        watcher.stop()
        # Settlement must happen even if this handler is cancelled; shield it.
        await asyncio.shield(state.spawn(_settle(state, exchange)))


async def _settle(state: GatewayState, exchange: ChatExchange) -> None:
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


def models_body(state: GatewayState, token: str | None, model: str | None = None) -> bytes:
    """Return the OpenAI model list (or one model) that ``token`` may use.

    Raises:
        GatewayError: 401 for a bad key, 404 ``model_not_found`` for a model it may not use.
    """
    snapshot = state.snapshot
    key, tenant = authenticate(snapshot, token)
    models = snapshot.usable_models(key, tenant)
    created = int(snapshot.loaded_at)

    def entry(name: str) -> dict[str, Any]:
        channels = snapshot.channels_for(name, tenant.group)
        owner = channels[0].kind if channels else "tollgate"
        return {"id": name, "object": "model", "created": created, "owned_by": owner}

    if model is None:
        return msgspec.json.encode({"object": "list", "data": [entry(m) for m in models]})
    if model not in models:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        raise GatewayError(404, "model_not_found", msg, param="model")
    return msgspec.json.encode(entry(model))

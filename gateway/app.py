"""The gateway's ASGI application factory (served by granian, one app per worker)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response, asgi, get
from litestar.exceptions import HTTPException

from gateway.errors import GatewayError
from gateway.logging import configure_logging
from gateway.pipeline import new_request_id
from gateway.state import GatewayState
from gateway.surfaces.anthropic import serve_count_tokens, serve_messages
from gateway.surfaces.embeddings import serve_embeddings
from gateway.surfaces.gemini import serve_gemini
from gateway.surfaces.openai import error_body, serve_chat_completions, serve_models
from gateway.surfaces.responses import serve_responses
from shared.settings import Settings

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

__all__ = ("create_app",)

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the gateway application; settings come from the environment when not given."""
    settings = settings or Settings.from_env(os.environ)
    state = GatewayState(settings)

    @asgi("/v1/chat/completions", copy_scope=False)
    async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_chat_completions(state, scope, receive, send)

    @asgi("/v1/models", is_mount=True, copy_scope=True)
    async def models(scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG001 - passed by name
        await serve_models(state, scope, send)

    @asgi("/v1/messages", copy_scope=False)
    async def anthropic_messages(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_messages(state, scope, receive, send)

    @asgi("/v1/messages/count_tokens", copy_scope=False)
    async def anthropic_count_tokens(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_count_tokens(state, scope, receive, send)

    @asgi("/v1beta", is_mount=True, copy_scope=True)
    async def gemini_api(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_gemini(state, scope, receive, send)

    @asgi("/v1/responses", copy_scope=False)
    async def responses(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_responses(state, scope, receive, send)

    @asgi("/v1/embeddings", copy_scope=False)
    async def embeddings(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_embeddings(state, scope, receive, send)

    @get(["/", "/health"], sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"service": "tollgate-gateway", "status": "ok"}

    return Litestar(
        route_handlers=[
            chat_completions,
            models,
            anthropic_messages,
            anthropic_count_tokens,
            gemini_api,
            responses,
            embeddings,
            health,
        ],
        on_startup=[lambda: configure_logging(), state.start],
        on_shutdown=[state.stop],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        openapi_config=None,
        debug=False,
    )


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Render framework errors (unknown path, wrong method) in the OpenAI error shape."""
    code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    message = exc.detail if exc.status_code != 404 else "Unknown request URL. Check the path."
    error = GatewayError(exc.status_code, code, message)
    return Response(
        content=error_body(error),
        status_code=exc.status_code,
        media_type="application/json",
        headers={"x-request-id": new_request_id(), "x-tollgate-cost": "0"},
    )


def _internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Answer an unexpected failure in the OpenAI error shape, without a traceback."""
    request_id = new_request_id()
    logger.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    error = GatewayError(
        500, "internal_error", "The gateway failed to handle this request.", type="server_error"
    )
    return Response(
        content=error_body(error),
        status_code=500,
        media_type="application/json",
        headers={"x-request-id": request_id, "x-tollgate-cost": "0"},
    )

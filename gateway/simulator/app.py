"""The simulator's ASGI application: routing, fault prefixes, replays and the admin paths.

Paths, all from one root:

- OpenAI: `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/embeddings`,
  `GET /v1/models`, `GET /v1/models/{model}`.
- Anthropic: `POST /v1/messages`, `POST /v1/messages/count_tokens`, and `GET /v1/models[/{id}]`
  when the request has an `anthropic-version` header.
- Gemini: `POST /v1beta/models/{model}:generateContent` (also `streamGenerateContent`,
  `countTokens`, `embedContent`, `batchEmbedContents`), `GET /v1beta/models[/{model}]`; the
  same under `/v1/` (google-genai uses `/v1/` when given a base URL), where
  `GET /v1/models[/{model}]` is Gemini's when the request has `x-goog-api-key` or `?key=`.
- Cloudflare Workers AI: `POST /client/v4/accounts/{account}/ai/run/{model}`, and the
  OpenAI-compatible `.../ai/v1/chat/completions` and `.../ai/v1/embeddings`.
- `/_fault/<spec>/<any path above>`: the same, misbehaving as `spec` says
  (`gateway.simulator.faults`).
- `/_replay/<id>/<any path>`: a registered replay script (`gateway.simulator.replay`).
- `POST /_sim/replay` registers a replay script, `DELETE /_sim/replay` forgets them all.
- `GET /_sim/requests` returns the request log (`gateway.simulator.request_log`),
  `DELETE /_sim/requests` clears it.
- `GET /_sim/health` answers `200 {"status": "ok"}`.

Any model name is served. No state is shared between concurrent requests: the behaviour of a
request depends only on its own path and body. Every response carries an `x-request-id`.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

import msgspec

from gateway.simulator import anthropic, gemini, openai, workers_ai
from gateway.simulator.composer import Composer
from gateway.simulator.errors import (
    Protocol,
    ProviderError,
    default_message,
    error_body,
    protocol_for_request,
)
from gateway.simulator.faults import NO_FAULT, FaultSpec, FaultSpecError, parse_fault_spec
from gateway.simulator.replay import ReplayScriptError, ReplayStore, play
from gateway.simulator.request_log import RequestLog
from gateway.simulator.wire import (
    JSON_TYPE,
    Call,
    DisconnectWatch,
    Handler,
    Headers,
    JsonResponse,
    Receive,
    Request,
    Scope,
    Send,
    read_body,
    send_headers_then_drop,
    send_stream,
    send_whole,
)

FAULT_PREFIX: Final = "/_fault/"
REPLAY_PREFIX: Final = "/_replay/"
ADMIN_PREFIX: Final = "/_sim/"

_POST_ROUTES: Final[dict[str, Handler]] = {
    "/v1/chat/completions": openai.chat_completions,
    "/v1/responses": openai.responses,
    "/v1/embeddings": openai.embeddings,
    "/v1/messages": anthropic.messages,
    "/v1/messages/count_tokens": anthropic.count_tokens,
}
_GEMINI_ACTIONS: Final[dict[str, Handler]] = {
    "generateContent": gemini.generate_content,
    "streamGenerateContent": gemini.generate_content,
    "countTokens": gemini.count_tokens,
    "embedContent": gemini.embed_content,
    "batchEmbedContents": gemini.batch_embed_contents,
}
_WORKERS_AI_COMPAT: Final[dict[str, Handler]] = {
    "chat/completions": openai.chat_completions,
    "embeddings": openai.embeddings,
}
_FAULT_CACHE_SIZE: Final = 256
_JSON_HEADER: Final = (b"content-type", JSON_TYPE)
_NO_CACHE: Final = (b"cache-control", b"no-cache")


def _resolve_post(path: str) -> tuple[Handler, str] | None:
    handler = _POST_ROUTES.get(path)
    if handler is not None:
        return handler, ""
    for prefix in ("/v1beta/models/", "/v1/models/"):
        if path.startswith(prefix) and ":" in path:
            model, _, action = path[len(prefix) :].rpartition(":")
            gemini_handler = _GEMINI_ACTIONS.get(action)
            return (gemini_handler, model) if gemini_handler and model else None
    if path.startswith("/client/v4/accounts/"):
        parts = path.split("/", 6)
        if len(parts) == 7 and parts[5] == "ai":
            kind, _, rest = parts[6].partition("/")
            if kind == "run" and rest:
                return workers_ai.run, rest
            if kind == "v1" and rest in _WORKERS_AI_COMPAT:
                return _WORKERS_AI_COMPAT[rest], ""
    return None


_LISTS: Final = {
    Protocol.OPENAI: (openai.list_models, openai.get_model),
    Protocol.ANTHROPIC: (anthropic.list_models, anthropic.get_model),
    Protocol.GEMINI: (gemini.list_models, gemini.get_model),
}


def _resolve_get(path: str, protocol: Protocol) -> tuple[Handler, str] | None:
    for prefix in ("/v1/models", "/v1beta/models"):
        if path.startswith(prefix) and ":" not in path:
            list_models, get_model = _LISTS.get(protocol, _LISTS[Protocol.OPENAI])
            if path == prefix:
                return list_models, ""
            if path[len(prefix)] == "/" and len(path) > len(prefix) + 1:
                return get_model, path[len(prefix) + 1 :]
    return None


def resolve(method: str, path: str, protocol: Protocol) -> tuple[Handler, str] | None:
    """Return the handler of a request and the model its path names, or None."""
    if method == "POST":
        return _resolve_post(path)
    if method in ("GET", "HEAD"):
        return _resolve_get(path, protocol)
    return None


def _headers_of(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _raw_path(scope: Scope) -> str:
    raw: bytes | None = scope.get("raw_path")
    if not raw:
        return str(scope["path"])
    return raw.split(b"?", 1)[0].decode("latin-1")


def _seconds(value: float) -> bytes:
    return (str(int(value)) if value == int(value) else str(value)).encode()


class SimulatorApp:
    """The ASGI callable; `create_app` builds one per worker process."""

    def __init__(self) -> None:
        self.composer = Composer()
        self.request_log = RequestLog()
        self.replays = ReplayStore()
        self._faults: dict[str, FaultSpec | FaultSpecError] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _fault(self, raw: str) -> FaultSpec | FaultSpecError:
        cached = self._faults.get(raw)
        if cached is None:
            try:
                cached = parse_fault_spec(raw)
            except FaultSpecError as exc:
                cached = exc
            if len(self._faults) >= _FAULT_CACHE_SIZE:
                self._faults.clear()
            self._faults[raw] = cached
        return cached

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            await self._admin(method, path, receive, send)
            return

        # Read and log the request, then strip a fault prefix.
        headers = _headers_of(scope)
        query = scope["query_string"].decode("latin-1")
        body = await read_body(receive)
        fault: FaultSpec | FaultSpecError = NO_FAULT
        route = path
        if path.startswith(FAULT_PREFIX):
            spec, _, rest = _raw_path(scope)[len(FAULT_PREFIX) :].partition("/")
            route = "/" + unquote(rest)
            fault = self._fault(spec)
        request = Request(method, route, query, headers, body)
        parsed: Any = None
        if body:
            try:
                parsed = request.json()
            except ProviderError:
                parsed = None
        self.request_log.record(method, path, query, headers, body, parsed)

        request_id = self.composer.new_id("req_")
        extra: Headers = [(b"x-request-id", request_id.encode())]
        watch = DisconnectWatch(receive)
        try:
            if isinstance(fault, FaultSpec):
                if fault.retry_after is not None:
                    extra.append((b"retry-after", _seconds(fault.retry_after)))
                if fault.delay and not await watch.sleep(fault.delay):
                    return
            if route.startswith(REPLAY_PREFIX):
                await self._replay(route, extra, send, watch)
                return
            await self._answer(request, fault, request_id, extra, send, watch)
        finally:
            watch.close()

    async def _answer(
        self,
        request: Request,
        fault: FaultSpec | FaultSpecError,
        request_id: str,
        extra: Headers,
        send: Send,
        watch: DisconnectWatch,
    ) -> None:
        protocol = protocol_for_request(request.path, request.headers, request.query_string)
        if protocol is Protocol.ANTHROPIC:
            extra.append((b"request-id", request_id.encode()))
        try:
            if isinstance(fault, FaultSpecError):
                raise ProviderError(400, str(fault))
            if fault.is_status_error and fault.status is not None:
                raise ProviderError(fault.status, default_message(fault.status))
            found = resolve(request.method, request.path, protocol)
            if found is None:
                msg = f"Invalid URL ({request.method} {request.path})"
                raise ProviderError(404, msg)
            handler, model = found
            response = handler(Call(request, fault, self.composer, model))
        except ProviderError as error:
            body = error_body(protocol, error, request_id)
            await send_whole(send, error.status, [_JSON_HEADER, *extra], body)
            return

        if isinstance(response, JsonResponse):
            headers = [(b"content-type", response.content_type), *extra]
            if fault.cut is not None:
                await send_headers_then_drop(send, response.status, headers, len(response.body))
                return
            await send_whole(send, response.status, headers, response.body)
            return
        headers = [(b"content-type", response.content_type), _NO_CACHE, *extra]
        await send_stream(send, headers, response, fault, watch)

    async def _replay(self, route: str, extra: Headers, send: Send, watch: DisconnectWatch) -> None:
        script_id = route[len(REPLAY_PREFIX) :].partition("/")[0]
        replay = self.replays.get(script_id)
        if replay is None:
            body = msgspec.json.encode({"error": {"message": f"no replay script {script_id!r}"}})
            await send_whole(send, 404, [_JSON_HEADER, *extra], body)
            return
        await play(send, replay, extra, watch)

    async def _admin(self, method: str, path: str, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        status = 404
        answer: dict[str, Any] = {"error": {"message": f"Invalid URL ({method} {path})"}}
        if path == "/_sim/health" and method in ("GET", "HEAD"):
            status, answer = 200, {"status": "ok"}
        elif path == "/_sim/requests" and method == "GET":
            await send_whole(send, 200, [_JSON_HEADER], self.request_log.dump())
            return
        elif path == "/_sim/requests" and method == "DELETE":
            self.request_log.clear()
            status, answer = 200, {"cleared": True}
        elif path == "/_sim/replay" and method == "POST":
            try:
                status, answer = 200, {"id": self.replays.add(body)}
            except ReplayScriptError as exc:
                status, answer = 400, {"error": {"message": str(exc)}}
        elif path == "/_sim/replay" and method == "DELETE":
            self.replays.clear()
            status, answer = 200, {"cleared": True}
        await send_whole(send, status, [_JSON_HEADER], msgspec.json.encode(answer))


def create_app() -> SimulatorApp:
    """Build the simulator's ASGI application (the granian factory target)."""
    return SimulatorApp()

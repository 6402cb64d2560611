"""Embeddings: the request in canonical form, one adaptor per upstream kind, and failover.

A request is an OpenAI embeddings body (``input`` as a string, a list of strings, a token
array or a list of token arrays). Each upstream kind has an :class:`EmbeddingAdaptor`:

- ``openai``, and ``workers-ai`` with ``{"api": "openai"}``: the client's body is relayed to
  ``{base}/embeddings`` (``{base}/ai/v1/embeddings``) with only the model name rewritten.
- ``gemini``: ``{root}/v1beta/models/{model}:batchEmbedContents``, one request per input.
- ``workers-ai``: the native ``{base}/ai/run/{model}`` with ``{"text": [...]}``, answered
  with ``{"result": {"shape": [n, d], "data": [[...], ...]}}``.

Token arrays are OpenAI (``cl100k_base``) tokens, as LangChain and the OpenAI SDK send them;
upstreams that take text get them decoded back to text. A request a channel cannot serve
(``dimensions`` on the native Workers AI API, any embedding on an Anthropic channel) is
refused for that channel only, so another channel may serve it. Channels are tried with
:func:`gateway.proxy.try_channels`, the same failover rules as chat.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import msgspec

from gateway.errors import (
    GatewayError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from gateway.providers.openai import status_error as openai_status_error, upstream_message
from gateway.providers.workers_ai import is_openai_api
from gateway.proxy import first_byte_timeout, send_call, try_channels
from gateway.tokens import count_tokens, encoding
from gateway.translate import UpstreamCall

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.billing import UsageRecord
    from gateway.routing import Route
    from gateway.snapshot import ChannelEntry
    from gateway.state import GatewayState

__all__ = (
    "EmbeddingAdaptor",
    "EmbeddingAnswer",
    "EmbeddingRequest",
    "count_inputs",
    "decode_embedding_request",
    "encode_vector",
    "fetch_embeddings",
)

MAX_DIMENSIONS: Final = 16_384
"""Largest embedding size a client may ask for."""

MAX_INPUTS: Final = 2048
"""Most inputs in one request (OpenAI's limit)."""

_ANSWER_LIMIT: Final = 256 * 1024 * 1024
_ERROR_BODY_LIMIT: Final = 64 * 1024
_QUOTE_LIMIT: Final = 500

Input = str | list[int]


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    """A checked embeddings request."""

    model: str
    inputs: list[Input]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    raw: dict[str, Any]
    """The client's own body, relayed to OpenAI-compatible upstreams."""


class EmbeddingAnswer(msgspec.Struct, kw_only=True):
    """An upstream's vectors (or OpenAI ``data`` items) and its token count, if it gave one."""

    vectors: list[list[float]] | None = None
    data: list[dict[str, Any]] | None = None
    prompt_tokens: int | None = None


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, "invalid_value", message, param=param)


def _is_tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    )


def _inputs(value: Any) -> list[Input]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif _is_tokens(value):
        return [list(value)]
    elif isinstance(value, list) and value:
        items = value
    else:
        msg = "`input` must be a non-empty string, list of strings, or token array(s)."
        raise _bad(msg, "input")
    if len(items) > MAX_INPUTS:
        msg = f"`input` holds {len(items)} items; at most {MAX_INPUTS} are allowed."
        raise _bad(msg, "input")
    inputs: list[Input] = []
    for position, item in enumerate(items):
        if isinstance(item, str) and item:
            inputs.append(item)
        elif _is_tokens(item):
            inputs.append(list(item))
        else:
            msg = "Each input must be a non-empty string or a non-empty array of token ids."
            raise _bad(msg, f"input[{position}]")
    return inputs


def decode_embedding_request(payload: dict[str, Any]) -> EmbeddingRequest:
    """Check an OpenAI embeddings body.

    Raises:
        GatewayError: 400 naming the bad field.
    """
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "missing_required_parameter", "`model` is required.", param="model")
    if "input" not in payload:
        raise GatewayError(400, "missing_required_parameter", "`input` is required.", param="input")
    encoding_format = payload.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        msg = f"`encoding_format` must be `float` or `base64`, not `{encoding_format}`."
        raise _bad(msg, "encoding_format")
    dimensions = payload.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int)
        or isinstance(dimensions, bool)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        msg = f"`dimensions` must be an integer from 1 to {MAX_DIMENSIONS}."
        raise _bad(msg, "dimensions")
    return EmbeddingRequest(
        model=model,
        inputs=_inputs(payload["input"]),
        encoding_format="base64" if encoding_format == "base64" else "float",
        dimensions=dimensions,
        raw=payload,
    )


def count_inputs(inputs: list[Input]) -> int:
    """Return the tokens of the inputs counted offline (token arrays count as given)."""
    return sum(len(i) if isinstance(i, list) else count_tokens(i) for i in inputs)


def _texts(inputs: list[Input]) -> list[str]:
    """Return the inputs as text; token arrays are decoded with ``cl100k_base``."""
    texts: list[str] = []
    for position, item in enumerate(inputs):
        if isinstance(item, str):
            texts.append(item)
            continue
        try:
            texts.append(encoding("cl100k_base").decode(item))
        except (ValueError, KeyError, OverflowError):
            msg = "The token array holds ids that are not `cl100k_base` tokens."
            raise _bad(msg, f"input[{position}]") from None
    return texts


def encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """Return ``vector`` as floats, or as base64 of little-endian float32 values."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def decode_vector(value: str) -> list[float]:
    """Return the floats of a base64 little-endian float32 embedding."""
    raw = base64.b64decode(value)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))


def _json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace").strip()
        msg = f"upstream answered 200 with a body that is not JSON: {quoted!r}"
        raise UpstreamProtocolError(msg) from None


def _malformed(body: bytes) -> UpstreamProtocolError:
    quoted = body[:_QUOTE_LIMIT].decode("utf-8", errors="replace")
    return UpstreamProtocolError(f"upstream answered 200 without embeddings: {quoted!r}")


def _refused(message: str) -> UpstreamStatusError:
    return UpstreamStatusError(
        400,
        "unsupported_parameter",
        message,
        retryable=True,
        type="invalid_request_error",
        counts_against_channel=False,
    )


def _vectors(rows: Any, body: bytes) -> list[list[float]]:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _malformed(body)
    return [[float(v) for v in row] for row in rows]


class EmbeddingAdaptor(Protocol):
    """Encodes an embeddings request for one upstream API and decodes its answer."""

    def build(self, channel: ChannelEntry, request: EmbeddingRequest) -> UpstreamCall:
        """Return the upstream call (raises ``UpstreamStatusError`` when it cannot serve)."""
        ...

    def decode(self, body: bytes, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Decode a 200 answer (raises ``UpstreamError`` for a malformed one)."""
        ...


class OpenAIEmbeddings:
    """OpenAI-compatible ``/embeddings``: the client's body, relayed."""

    def __init__(self, path: str) -> None:
        """Use ``path`` below the channel's base URL."""
        self.path = path

    def build(self, channel: ChannelEntry, request: EmbeddingRequest) -> UpstreamCall:
        """Relay the client's body with the upstream's model name."""
        body = {**request.raw, "model": channel.upstream_model(request.model)}
        headers = [
            ("authorization", f"Bearer {channel.api_key}"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]
        return UpstreamCall(f"{channel.base_url}{self.path}", headers, msgspec.json.encode(body))

    def decode(self, body: bytes, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Keep the ``data`` items, in the encoding the client asked for."""
        decoded = _json(body)
        data = decoded.get("data") if isinstance(decoded, dict) else None
        if not isinstance(data, list) or len(data) != len(request.inputs):
            raise _malformed(body)
        items: list[dict[str, Any]] = []
        for position, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("embedding"), list | str):
                raise _malformed(body)
            embedding = item["embedding"]
            # An upstream that ignores `encoding_format` still gives the client its format.
            if isinstance(embedding, str) and request.encoding_format == "float":
                embedding = decode_vector(embedding)
            elif isinstance(embedding, list) and request.encoding_format == "base64":
                embedding = encode_vector([float(v) for v in embedding], "base64")
            index = item.get("index")
            items.append(
                {
                    "object": "embedding",
                    "index": index if isinstance(index, int) else position,
                    "embedding": embedding,
                }
            )
        usage = decoded.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return EmbeddingAnswer(
            data=items, prompt_tokens=tokens if isinstance(tokens, int) else None
        )


class GeminiEmbeddings:
    """Gemini ``batchEmbedContents``."""

    def build(self, channel: ChannelEntry, request: EmbeddingRequest) -> UpstreamCall:
        """Encode one ``EmbedContentRequest`` per input."""
        model = channel.upstream_model(request.model).removeprefix("models/")
        entry: dict[str, Any] = {"model": f"models/{model}"}
        if request.dimensions is not None:
            entry["outputDimensionality"] = request.dimensions
        body = {
            "requests": [
                {**entry, "content": {"parts": [{"text": text}]}} for text in _texts(request.inputs)
            ]
        }
        headers = [
            ("x-goog-api-key", channel.api_key),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]
        url = f"{channel.base_url}/v1beta/models/{model}:batchEmbedContents"
        return UpstreamCall(url, headers, msgspec.json.encode(body))

    def decode(self, body: bytes, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Read ``embeddings[].values``."""
        decoded = _json(body)
        found = decoded.get("embeddings") if isinstance(decoded, dict) else None
        if not isinstance(found, list) or len(found) != len(request.inputs):
            raise _malformed(body)
        rows = [e.get("values") if isinstance(e, dict) else None for e in found]
        metadata = decoded.get("usageMetadata")
        tokens = metadata.get("promptTokenCount") if isinstance(metadata, dict) else None
        return EmbeddingAnswer(
            vectors=_vectors(rows, body), prompt_tokens=tokens if isinstance(tokens, int) else None
        )


class WorkersAIEmbeddings:
    """Workers AI native ``ai/run/{model}`` with ``text``."""

    def build(self, channel: ChannelEntry, request: EmbeddingRequest) -> UpstreamCall:
        """Encode ``{"text": [...]}``.

        Raises:
            UpstreamStatusError: for ``dimensions``, which the native API cannot change.
        """
        if request.dimensions is not None:
            msg = (
                "This model's Workers AI channel cannot change embedding `dimensions` "
                '(the channel setting {"api": "openai"} selects the OpenAI-compatible API).'
            )
            raise _refused(msg)
        model = channel.upstream_model(request.model)
        headers = [
            ("authorization", f"Bearer {channel.api_key}"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]
        body = msgspec.json.encode({"text": _texts(request.inputs)})
        return UpstreamCall(f"{channel.base_url}/ai/run/{model}", headers, body)

    def decode(self, body: bytes, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Read ``result.data``."""
        decoded = _json(body)
        if isinstance(decoded, dict) and decoded.get("success") is False:
            raise UpstreamStatusError(
                502, "upstream_error", f"upstream error: {upstream_message(body)}", retryable=True
            )
        result = decoded.get("result") if isinstance(decoded, dict) else None
        rows = result.get("data") if isinstance(result, dict) else None
        vectors = _vectors(rows, body)
        if len(vectors) != len(request.inputs):
            raise _malformed(body)
        usage = result.get("usage") if isinstance(result, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return EmbeddingAnswer(
            vectors=vectors, prompt_tokens=tokens if isinstance(tokens, int) else None
        )


class _NoEmbeddings:
    """A channel kind that has no embeddings API."""

    def build(self, channel: ChannelEntry, request: EmbeddingRequest) -> UpstreamCall:
        """Refuse, so another channel may serve the request."""
        msg = f"`{request.model}` has no embeddings on this channel (a `{channel.kind}` upstream)."
        raise _refused(msg)

    def decode(self, body: bytes, request: EmbeddingRequest) -> EmbeddingAnswer:  # noqa: ARG002
        """Never called."""
        raise _malformed(body)


def adaptor_for(channel: ChannelEntry) -> EmbeddingAdaptor:
    """Return the embeddings adaptor of a channel."""
    if channel.kind == "openai":
        return OpenAIEmbeddings("/embeddings")
    if channel.kind == "workers-ai":
        if is_openai_api(channel):
            return OpenAIEmbeddings("/ai/v1/embeddings")
        return WorkersAIEmbeddings()
    if channel.kind == "gemini":
        return GeminiEmbeddings()
    return _NoEmbeddings()


def _status_error(
    kind: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamStatusError:
    from gateway.providers import upstream_codecs

    codec = upstream_codecs().get(kind)
    if codec is None:
        return openai_status_error(status, headers, body)
    return codec.status_error(status, headers, body)


async def fetch_embeddings(
    state: GatewayState, request: EmbeddingRequest, route: Route, record: UsageRecord
) -> EmbeddingAnswer:
    """Get the embeddings from the first channel that serves them.

    Raises:
        GatewayError: the last channel's failure when none could serve the request.
    """

    async def attempt(channel: ChannelEntry) -> EmbeddingAnswer:
        adaptor = adaptor_for(channel)
        call = adaptor.build(channel, request)
        try:
            async with asyncio.timeout(first_byte_timeout(state, channel)):
                response = await send_call(state, channel, call)
        except TimeoutError as exc:
            msg = "upstream did not answer within the first-byte timeout"
            raise UpstreamTimeoutError(msg) from exc
        try:
            if response.status != 200:
                error = await response.read(_ERROR_BODY_LIMIT)
                raise _status_error(channel.kind, response.status, response.headers, error)
            body = await response.read(_ANSWER_LIMIT)
        finally:
            await response.close()
        return adaptor.decode(body, request)

    return await try_channels(state, route.channels, record, request.model, attempt)

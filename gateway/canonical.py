"""The canonical representation every protocol converts to and from.

Each client protocol has one decoder (its request → :class:`ChatRequest`) and one encoder
(:class:`ChatResponse` and stream :data:`Event` s → its wire format); each upstream
protocol has one encoder (:class:`ChatRequest` → its request) and one decoder (its
response and stream → canonical). So N client protocols and M upstreams need N + M
converters, never N x M.

Token usage is :class:`shared.money.Usage`, already normalised: ``input_tokens`` counts
cached and cache-written tokens too, ``output_tokens`` counts reasoning too.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.money import Usage

__all__ = (
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "Event",
    "Finish",
    "Image",
    "Message",
    "Part",
    "Reasoning",
    "ReasoningDelta",
    "ReasoningSettings",
    "Role",
    "StreamError",
    "Text",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStart",
    "ToolChoice",
    "ToolResult",
    "UsageUpdate",
)

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class Text(msgspec.Struct, tag="text"):
    """Plain text."""

    text: str
    cache: bool = False
    """The client marked a prompt-cache breakpoint after this part."""


class Image(msgspec.Struct, tag="image"):
    """An image, inline (base64 ``data``) or by ``url``."""

    media_type: str
    data: str | None = None
    url: str | None = None


class ToolCall(msgspec.Struct, tag="tool_call"):
    """The model asks for a tool; ``arguments`` is a JSON text."""

    id: str
    name: str
    arguments: str
    signature: str | None = None
    """Opaque provider token (Gemini ``thoughtSignature``) to send back unchanged."""


class ToolResult(msgspec.Struct, tag="tool_result"):
    """A tool's answer to the call ``call_id``."""

    call_id: str
    content: str
    name: str | None = None
    is_error: bool = False


class Reasoning(msgspec.Struct, tag="reasoning"):
    """Model reasoning (thinking); ``redacted`` carries encrypted thinking as is."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


Part = Text | Image | ToolCall | ToolResult | Reasoning


class Message(msgspec.Struct):
    """One turn: system text, user input, assistant output or tool results."""

    role: Role
    parts: list[Part]


class Tool(msgspec.Struct):
    """A function the model may call, with a JSON-schema for its arguments."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class ToolChoice(msgspec.Struct):
    """Whether and which tools the model must call."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


class ReasoningSettings(msgspec.Struct):
    """How much the model should think; ``budget_tokens`` or ``effort``."""

    budget_tokens: int | None = None
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    include: bool = True
    """Return the reasoning (summaries) to the client."""


class ChatRequest(msgspec.Struct, kw_only=True):
    """A generation request in canonical form."""

    model: str
    messages: list[Message]
    stream: bool = False
    tools: list[Tool] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = msgspec.field(default_factory=list)
    n: int = 1
    seed: int | None = None
    reasoning: ReasoningSettings | None = None
    response_schema: dict[str, Any] | None = None
    """A JSON schema the answer must follow (structured output)."""
    json_mode: bool = False
    """The answer must be a JSON object (no particular schema)."""
    user: str | None = None


class Choice(msgspec.Struct):
    """One candidate answer."""

    index: int
    parts: list[Part]
    finish_reason: FinishReason = "stop"


class ChatResponse(msgspec.Struct, kw_only=True):
    """A complete (non-streamed) answer."""

    id: str
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class TextDelta(msgspec.Struct, tag="text_delta"):
    """More answer text for choice ``index``."""

    text: str
    index: int = 0


class ReasoningDelta(msgspec.Struct, tag="reasoning_delta"):
    """More reasoning for choice ``index`` (text, or the closing signature)."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    index: int = 0


class ToolCallStart(msgspec.Struct, tag="tool_call_start"):
    """A new tool call ``call_index`` of choice ``index`` begins."""

    call_index: int
    id: str
    name: str
    index: int = 0
    signature: str | None = None


class ToolCallDelta(msgspec.Struct, tag="tool_call_delta"):
    """More argument JSON text for tool call ``call_index``."""

    call_index: int
    arguments: str
    index: int = 0


class Finish(msgspec.Struct, tag="finish"):
    """Choice ``index`` ended."""

    reason: FinishReason
    index: int = 0


class UsageUpdate(msgspec.Struct, tag="usage"):
    """The usage so far, as a running total (a later one replaces an earlier one)."""

    usage: Usage


class StreamError(msgspec.Struct, tag="error"):
    """The upstream reported an error in the middle of the stream."""

    message: str
    code: str = "upstream_error"
    status: int = 502
    """HTTP status the client gets if this ends the request before any output was sent."""


Event = (
    TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | Finish | UsageUpdate | StreamError
)
"""A canonical stream event."""


def merge_usage(earlier: Usage | None, later: Usage) -> Usage:
    """Merge running-total usage field by field: a later non-zero value replaces an earlier one."""
    if earlier is None:
        return later
    fields = (
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
    )
    merged = {f: getattr(later, f) or getattr(earlier, f) for f in fields}
    return Usage(**merged, estimated=later.estimated and earlier.estimated)

"""The OpenAI Responses API surface: ``POST /v1/responses``, bridged to any upstream kind.

The decoder turns a Responses request (``input`` as a string or as items, ``instructions``,
tools, reasoning and text settings) into a canonical :class:`~gateway.canonical.ChatRequest`,
so every upstream kind serves it through the engine; the :class:`ResponsesClient` codec writes
the answer as a ``response`` object or as the Responses event stream.

What cannot cross the bridge is handled explicitly:

- Tools the upstream cannot run (``web_search``, ``file_search``, ``code_interpreter``,
  ``computer_use_preview``, ``image_generation``, ``mcp``, ``local_shell``, ``shell``,
  ``apply_patch``, ``tool_search``) are dropped, and so are the history items they left
  (``web_search_call``, ...), as coding agents send them on every turn.
- A ``namespace`` tool is flattened: its functions become ``<namespace>__<name>``, and calls of
  them come back as ``function_call`` items with ``namespace`` and the local ``name``.
- A ``custom`` (free-form) tool becomes a function taking one string, ``input``; its calls come
  back as ``custom_tool_call`` items.
- Reasoning the upstream returns is a ``reasoning`` item (as a summary when the client asked
  for one). With ``include: ["reasoning.encrypted_content"]`` the item carries what the next
  turn needs to send the reasoning back (Anthropic thinking signatures; Gemini thought
  signatures of calls ride on a reasoning item of their own) as an opaque string.
- Nothing is stored: ``previous_response_id``, ``conversation``, ``prompt`` templates,
  ``item_reference`` items and ``background`` are refused with 400, and ``store`` is answered
  as false. ``prompt_cache_key``, ``client_metadata``, ``metadata``, ``service_tier``,
  ``truncation`` and the other hints are accepted and not forwarded.

A stream always ends with ``response.completed``, ``response.incomplete`` (output limit or
content filter) or ``response.failed`` (upstream error or truncation), carrying the response id
and usage: without it Codex reconnects and sends the whole request again.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import secrets
import time
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from gateway.asgi import headers_of, read_body
from gateway.auth import authenticate
from gateway.canonical import (
    ChatRequest,
    Finish,
    Image,
    Message,
    Part,
    Reasoning,
    ReasoningDelta,
    ReasoningSettings,
    StreamError,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    UsageUpdate,
    merge_usage,
)
from gateway.errors import GatewayError, malformed_input
from gateway.media import parse_data_url
from gateway.pipeline import new_request_id, refuse_method, send_error, serve_generation
from gateway.surfaces.openai import api_key_of, decode_json_object, error_body
from shared.money import Usage, format_usd

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.types import Receive, Scope, Send

    from gateway.canonical import ChatResponse, Event, FinishReason
    from gateway.sse import SSEEvent
    from gateway.state import GatewayState

__all__ = (
    "ResponsesClient",
    "ResponsesContext",
    "decode_responses_request",
    "serve_responses",
)

NAMESPACE_SEPARATOR: Final = "__"
"""Joins a namespace and a function name into the flat name the upstream sees."""

ENCRYPTED_PREFIX: Final = "tg1."
"""Marks ``encrypted_content`` this gateway wrote (base64 JSON of the reasoning to replay)."""

ENCRYPTED_INCLUDE: Final = "reasoning.encrypted_content"

DROPPED_TOOLS: Final = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "web_search_2025_08_26",
        "file_search",
        "code_interpreter",
        "computer_use_preview",
        "computer_use",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
    }
)
"""Built-in tools OpenAI runs on its side; no other upstream can, so they are dropped."""

DROPPED_ITEMS: Final = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "computer_call",
        "computer_call_output",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",
        "compaction",
        "compaction_trigger",
        "configuration_update",
    }
)
"""History items left by built-in tools (and server-side bookkeeping); dropped with them."""

_REFUSED_FIELDS: Final = (
    ("previous_response_id", "this gateway stores no responses; send the whole conversation"),
    ("conversation", "this gateway stores no conversations; send the whole conversation"),
    ("prompt", "stored prompt templates are not available through this gateway"),
)

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ReasoningConfig(msgspec.Struct):
    """The ``reasoning`` object."""

    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class ResponsesRequest(msgspec.Struct):
    """The fields of a Responses request the gateway reads; other fields are accepted."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | list[Any] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: PositiveInt | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    reasoning: ReasoningConfig | None = None
    text: dict[str, Any] | None = None
    stream: bool | None = None
    store: bool | None = None
    background: bool | None = None
    include: list[str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    metadata: dict[str, Any] | None = None


class ToolName(msgspec.Struct, frozen=True):
    """How a flat upstream tool name maps back to the client's tool."""

    name: str
    namespace: str | None = None
    custom: bool = False


class ResponsesContext(msgspec.Struct, kw_only=True):
    """What the answer needs from the request besides the canonical form."""

    tool_names: dict[str, ToolName] = msgspec.field(default_factory=dict)
    """Flat upstream name → the client's tool."""
    summary: bool = False
    """The client asked for reasoning summaries."""
    encrypted_reasoning: bool = False
    """The client asked for ``reasoning.encrypted_content``."""
    echo: dict[str, Any] = msgspec.field(default_factory=dict)
    """Request settings echoed in the ``response`` object."""


def _bad(message: str, param: str | None) -> GatewayError:
    return GatewayError(400, "invalid_value", message, param=param)


def _unsupported(message: str, param: str | None) -> GatewayError:
    return GatewayError(400, "unsupported_parameter", message, param=param)


def flat_name(name: str, namespace: str | None) -> str:
    """Return the name the upstream sees for ``name`` in ``namespace``."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def _custom_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    description = "The raw input of the tool."
    form = tool.get("format")
    if isinstance(form, dict) and form.get("type") == "grammar":
        syntax = form.get("syntax", "grammar")
        description += f" It must follow this {syntax} grammar:\n{form.get('definition', '')}"
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": description}},
        "required": ["input"],
    }


def _tool(tool: dict[str, Any], namespace: dict[str, Any] | None) -> tuple[Tool, ToolName] | None:
    kind = tool.get("type", "function")
    name = tool.get("name")
    if kind not in ("function", "custom") or not isinstance(name, str) or not name:
        return None
    space = namespace.get("name") if namespace else None
    space_name = space if isinstance(space, str) and space else None
    descriptions = [
        d
        for d in ((namespace or {}).get("description"), tool.get("description"))
        if isinstance(d, str) and d
    ]
    description = "\n\n".join(descriptions) or None
    if kind == "custom":
        parameters = _custom_parameters(tool)
    else:
        found = tool.get("parameters")
        parameters = found if isinstance(found, dict) else {}
    flat = flat_name(name, space_name)
    return (
        Tool(name=flat, description=description, parameters=parameters),
        ToolName(name=name, namespace=space_name, custom=kind == "custom"),
    )


def decode_tools(raw: list[dict[str, Any]] | None) -> tuple[list[Tool], dict[str, ToolName]]:
    """Return the canonical tools and the flat-name map; built-in tools are dropped."""
    tools: list[Tool] = []
    names: dict[str, ToolName] = {}
    for entry in raw or ():
        kind = entry.get("type", "function")
        if kind == "namespace":
            members = entry.get("tools")
            decoded = (
                [_tool(t, entry) for t in members if isinstance(t, dict)]
                if isinstance(members, list)
                else []
            )
        else:
            decoded = [_tool(entry, None)]
        for item in decoded:
            if item is not None and item[0].name not in names:
                tools.append(item[0])
                names[item[0].name] = item[1]
    return tools, names


def _tool_choice(
    value: str | dict[str, Any] | None, tools: list[Tool]
) -> tuple[ToolChoice | None, list[Tool]]:
    """Return the canonical choice and the tools it leaves (``allowed_tools`` narrows them)."""
    if value is None:
        return None, tools
    if isinstance(value, str):
        if value in ("auto", "none", "required"):
            return ToolChoice(value), tools  # type: ignore[arg-type]
        msg = f"`tool_choice` must be `auto`, `none`, `required` or an object, not `{value}`."
        raise _bad(msg, "tool_choice")
    kind = value.get("type")
    if kind in ("function", "custom"):
        namespace = value.get("namespace")
        name = flat_name(str(value.get("name") or ""), namespace if namespace else None)
        if not any(t.name == name for t in tools):
            msg = f"`tool_choice` names the tool `{name}`, which is not among `tools`."
            raise _bad(msg, "tool_choice")
        return ToolChoice("tool", name), tools
    if kind == "allowed_tools":
        allowed = {
            flat_name(str(t.get("name") or ""), t.get("namespace") or None)
            for t in value.get("tools") or ()
            if isinstance(t, dict)
        }
        narrowed = [t for t in tools if t.name in allowed]
        if value.get("mode") == "required":
            return ToolChoice("required"), narrowed
        return ToolChoice("auto"), narrowed
    # A built-in tool was forced; it was dropped, so the model chooses among the rest.
    return ToolChoice("auto"), tools


def _reasoning(config: ReasoningConfig | None) -> ReasoningSettings | None:
    if config is None or config.effort == "none":
        return None
    summary = (config.summary or config.generate_summary) is not None
    efforts: dict[str | None, Literal["minimal", "low", "medium", "high"] | None] = {
        "minimal": "minimal",
        "low": "low",
        "medium": "medium",
        "high": "high",
        "xhigh": "high",
        None: None,
    }
    if config.effort not in efforts:
        msg = (
            f"`reasoning.effort` `{config.effort}` is not one of none, minimal, low, medium, high."
        )
        raise _bad(msg, "reasoning.effort")
    return ReasoningSettings(effort=efforts[config.effort], include=summary)


def _content_parts(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        msg = "Message `content` must be a string or a list of content parts."
        raise _bad(msg, where)
    parts: list[Part] = []
    for position, part in enumerate(content):
        path = f"{where}[{position}]"
        if not isinstance(part, dict):
            msg = "A content part must be an object."
            raise _bad(msg, path)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            text = part.get("text")
            if not isinstance(text, str):
                msg = "A text content part needs `text`."
                raise _bad(msg, path)
            parts.append(Text(text))
        elif kind == "refusal":
            parts.append(Text(str(part.get("refusal") or "")))
        elif kind == "input_image":
            parts.append(_image(part, path))
        else:
            msg = f"Content parts of type `{kind}` are not supported by this gateway."
            raise _unsupported(msg, path)
    return parts


def _image(part: dict[str, Any], where: str) -> Image:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        msg = "An `input_image` part needs `image_url` (uploaded `file_id`s are not available)."
        raise _unsupported(msg, where)
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, param=where)
        return Image(media_type=media_type, data=data)
    return Image(media_type="", url=url)


def _output_text(output: Any, where: str) -> tuple[str, list[Part]]:
    """Return a tool output's text and any images it carries."""
    if isinstance(output, str):
        return output, []
    if output is None:
        return "", []
    parts = _content_parts(output, where)
    text = "".join(p.text for p in parts if isinstance(p, Text))
    return text, [p for p in parts if isinstance(p, Image)]


def encode_encrypted(part: Reasoning) -> str:
    """Return the opaque ``encrypted_content`` that replays ``part`` on the next turn."""
    payload = {"t": part.text, "s": part.signature, "r": part.redacted}
    return ENCRYPTED_PREFIX + base64.urlsafe_b64encode(msgspec.json.encode(payload)).decode()


def _reasoning_part(item: dict[str, Any]) -> Reasoning | None:
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted.startswith(ENCRYPTED_PREFIX):
        try:
            payload = msgspec.json.decode(
                base64.urlsafe_b64decode(encrypted[len(ENCRYPTED_PREFIX) :])
            )
        except (binascii.Error, ValueError, msgspec.DecodeError):
            payload = None
        if isinstance(payload, dict):
            return Reasoning(
                text=str(payload.get("t") or ""),
                signature=payload.get("s") if isinstance(payload.get("s"), str) else None,
                redacted=payload.get("r") if isinstance(payload.get("r"), str) else None,
            )
    texts = [
        str(p.get("text") or "")
        for key in ("summary", "content")
        for p in item.get(key) or ()
        if isinstance(p, dict)
    ]
    text = "\n\n".join(t for t in texts if t)
    # Another provider's encrypted reasoning cannot be replayed elsewhere; its text can.
    return Reasoning(text=text) if text else None


class _Conversation:
    """Builds canonical messages from input items, merging what belongs to one turn."""

    def __init__(self, tool_names: dict[str, ToolName]) -> None:
        self.messages: list[Message] = []
        self.tool_names = tool_names
        self.call_names: dict[str, str] = {}

    def add(self, role: Literal["system", "user", "assistant", "tool"], parts: list[Part]) -> None:
        # An assistant turn spans its message, reasoning and call items; tool outputs that
        # follow each other answer one turn.
        if self.messages and role in ("assistant", "tool") and self.messages[-1].role == role:
            self.messages[-1].parts.extend(parts)
        else:
            self.messages.append(Message(role, parts))

    def item(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            msg = "An input item must be an object."
            raise _bad(msg, where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            self._message(item, where)
        elif kind == "reasoning":
            part = _reasoning_part(item)
            if part is not None:
                self.add("assistant", [part])
        elif kind in ("function_call", "custom_tool_call"):
            self._call(item, kind, where)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = str(item.get("call_id") or "")
            text, images = _output_text(item.get("output"), f"{where}.output")
            result = ToolResult(call_id=call_id, content=text, name=self.call_names.get(call_id))
            self.add("tool", [result, *images])
        elif kind == "item_reference":
            msg = "`item_reference` items need stored responses, which this gateway does not keep."
            raise _unsupported(msg, where)
        elif kind not in DROPPED_ITEMS:
            msg = f"Input items of type `{kind}` are not supported by this gateway."
            raise _unsupported(msg, where)

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        parts = _content_parts(item.get("content"), f"{where}.content")
        if role in ("system", "developer"):
            self.add("system", parts)
        elif role == "user":
            self.add("user", parts)
        elif role == "assistant":
            self.add("assistant", parts)
        else:
            msg = f"`role` must be user, assistant, system or developer, not `{role}`."
            raise _bad(msg, f"{where}.role")

    def _call(self, item: dict[str, Any], kind: str, where: str) -> None:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            msg = "A call item needs `name`."
            raise _bad(msg, f"{where}.name")
        namespace = item.get("namespace")
        flat = flat_name(name, namespace if isinstance(namespace, str) and namespace else None)
        call_id = str(item.get("call_id") or item.get("id") or "")
        if kind == "custom_tool_call":
            arguments = msgspec.json.encode({"input": str(item.get("input") or "")}).decode()
        else:
            raw = item.get("arguments")
            arguments = raw if isinstance(raw, str) and raw else "{}"
        self.call_names[call_id] = flat
        self.add("assistant", [ToolCall(id=call_id, name=flat, arguments=arguments)])


def _text_format(text: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    form = (text or {}).get("format")
    if not isinstance(form, dict):
        return None, False
    if form.get("type") == "json_schema":
        schema = form.get("schema")
        if not isinstance(schema, dict):
            msg = "`text.format.schema` must be a JSON schema object."
            raise _bad(msg, "text.format.schema")
        return schema, False
    return None, form.get("type") == "json_object"


def _check_refused(payload: dict[str, Any], request: ResponsesRequest) -> None:
    for field, reason in _REFUSED_FIELDS:
        if payload.get(field) is not None:
            msg = f"`{field}` is not supported: {reason}."
            raise _unsupported(msg, field)
    if request.background:
        msg = "`background` responses are not supported: this gateway stores no responses."
        raise _unsupported(msg, "background")


def decode_responses_request(payload: dict[str, Any]) -> tuple[ChatRequest, ResponsesContext]:
    """Decode a Responses request body to canonical form.

    Raises:
        GatewayError: 400 with the JSON path of the first bad or unsupported field.
    """
    try:
        request = msgspec.convert(payload, ResponsesRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rpartition("at `$.")[2].rstrip("`") if "at `$." in text else None
        raise GatewayError(400, "invalid_value", f"Invalid request: {text}", param=param) from None
    _check_refused(payload, request)
    if request.input is None:
        raise GatewayError(400, "missing_required_parameter", "`input` is required.", param="input")

    tools, tool_names = decode_tools(request.tools)
    choice, tools = _tool_choice(request.tool_choice, tools)
    conversation = _Conversation(tool_names)
    if request.instructions:
        conversation.add("system", [Text(request.instructions)])
    if isinstance(request.input, str):
        conversation.add("user", [Text(request.input)])
    else:
        for position, item in enumerate(request.input):
            conversation.item(item, f"input[{position}]")
    if not conversation.messages:
        msg = "`input` must hold at least one message."
        raise _bad(msg, "input")
    schema, json_mode = _text_format(request.text)
    reasoning = _reasoning(request.reasoning)

    canonical = ChatRequest(
        model=request.model,
        messages=conversation.messages,
        stream=bool(request.stream),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=request.parallel_tool_calls,
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        reasoning=reasoning,
        response_schema=schema,
        json_mode=json_mode,
        user=request.safety_identifier or request.user,
    )
    config = request.reasoning
    context = ResponsesContext(
        tool_names=tool_names,
        summary=reasoning is not None and reasoning.include,
        encrypted_reasoning=ENCRYPTED_INCLUDE in (request.include or ()),
        echo={
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "parallel_tool_calls": (
                True if request.parallel_tool_calls is None else request.parallel_tool_calls
            ),
            "reasoning": {
                "effort": config.effort if config else None,
                "summary": (config.summary or config.generate_summary) if config else None,
            },
            "temperature": request.temperature,
            "text": request.text or {"format": {"type": "text"}},
            "tool_choice": request.tool_choice or "auto",
            "tools": request.tools or [],
            "top_p": request.top_p,
            "user": request.user,
            "metadata": request.metadata or {},
        },
    )
    return canonical, context


def usage_object(usage: Usage, cost: int | None) -> dict[str, Any]:
    """Return a Responses ``usage`` object, with ``cost`` when it is known."""
    result: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.estimated:
        result["estimated"] = True
    if cost is not None:
        result["cost"] = format_usd(cost)
    return result


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class _Item:
    """One output item being built (a message, a reasoning item or a tool call)."""

    __slots__ = (
        "call_id",
        "call_index",
        "custom",
        "id",
        "kind",
        "name",
        "namespace",
        "output_index",
        "redacted",
        "signature",
        "text",
    )

    def __init__(self, kind: str, output_index: int, prefix: str) -> None:
        self.kind = kind
        self.output_index = output_index
        self.id = _new_id(prefix)
        self.text: list[str] = []
        """Message or reasoning text, or call arguments, in pieces."""
        self.call_id = ""
        self.call_index = -1
        self.name = ""
        self.namespace: str | None = None
        self.custom = False
        self.signature: str | None = None
        self.redacted: str | None = None

    def joined(self) -> str:
        return "".join(self.text)


class ResponsesClient:
    """Writes answers for a client of the OpenAI Responses API."""

    protocol = "openai-responses"
    stream_content_type = "text/event-stream"

    def __init__(self, *, model: str, request_id: str, context: ResponsesContext) -> None:
        """Prepare the writer for one request."""
        self.model = model
        self.context = context
        self.id = f"resp_{request_id.removeprefix('req_')}"
        self.created = int(time.time())
        self._sequence = 0
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._ended = False

    def error_body(self, error: GatewayError) -> bytes:
        """Render an error in OpenAI's shape."""
        return error_body(error)

    # The complete answer.

    def _item_object(self, item: _Item, status: str = "completed") -> dict[str, Any]:
        text = item.joined()
        if item.kind == "message":
            content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
            return {
                "id": item.id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": content if status != "in_progress" else [],
            }
        if item.kind == "reasoning":
            done = status != "in_progress"
            result: dict[str, Any] = {"id": item.id, "type": "reasoning", "summary": []}
            if done and text and self.context.summary:
                result["summary"] = [{"type": "summary_text", "text": text}]
            elif done and text:
                result["content"] = [{"type": "reasoning_text", "text": text}]
            if done and self.context.encrypted_reasoning:
                part = Reasoning(text=text, signature=item.signature, redacted=item.redacted)
                result["encrypted_content"] = encode_encrypted(part)
            return result
        if item.custom:
            return {
                "id": item.id,
                "type": "custom_tool_call",
                "status": status,
                "call_id": item.call_id,
                "name": item.name,
                "input": _custom_input(text) if status != "in_progress" else "",
                **({"namespace": item.namespace} if item.namespace else {}),
            }
        return {
            "id": item.id,
            "type": "function_call",
            "status": status,
            "arguments": (text or "{}") if status != "in_progress" else "",
            "call_id": item.call_id,
            "name": item.name,
            **({"namespace": item.namespace} if item.namespace else {}),
        }

    def _response(
        self,
        status: str,
        usage: dict[str, Any] | None,
        *,
        error: dict[str, Any] | None = None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        output = [self._item_object(i) for i in self._items] if status != "in_progress" else []
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": self.model,
            "output": output,
            "previous_response_id": None,
            "store": False,
            "truncation": "disabled",
            **self.context.echo,
            "usage": usage,
        }

    def _call_item(self, call_id: str, name: str, call_index: int) -> _Item:
        known = self.context.tool_names.get(name)
        item = _Item("call", len(self._items), "ctc_" if known and known.custom else "fc_")
        item.call_id = call_id
        item.call_index = call_index
        item.name = known.name if known else name
        item.namespace = known.namespace if known else None
        item.custom = bool(known and known.custom)
        return item

    def encode_response(self, response: ChatResponse, usage: Usage, cost: int) -> bytes:
        """Encode a complete canonical answer as a ``response`` object."""
        choice = next((c for c in response.choices if c.index == 0), None)
        for part in choice.parts if choice else ():
            if isinstance(part, Text):
                last = self._items[-1] if self._items else None
                if last is None or last.kind != "message":
                    last = _Item("message", len(self._items), "msg_")
                    self._items.append(last)
                last.text.append(part.text)
            elif isinstance(part, Reasoning):
                item = _Item("reasoning", len(self._items), "rs_")
                item.text.append(part.text)
                item.signature, item.redacted = part.signature, part.redacted
                self._items.append(item)
            elif isinstance(part, ToolCall):
                if part.signature and self.context.encrypted_reasoning:
                    carrier = _Item("reasoning", len(self._items), "rs_")
                    carrier.signature = part.signature
                    self._items.append(carrier)
                item = self._call_item(part.id, part.name, len(self._items))
                item.text.append(part.arguments)
                self._items.append(item)
        status, incomplete = _status(choice.finish_reason if choice else "stop")
        body = self._response(status, usage_object(usage, cost), incomplete=incomplete)
        return msgspec.json.encode(body)

    def passthrough_response(self, body: bytes, usage: Usage, cost: int) -> bytes:  # noqa: ARG002
        """Never called: no upstream speaks the Responses protocol through this codec."""
        return body

    # The stream.

    def _event(self, kind: str, **payload: Any) -> bytes:
        data = msgspec.json.encode({"type": kind, **payload, "sequence_number": self._sequence})
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def stream_open(self) -> bytes:
        """Announce the response: ``response.created`` and ``response.in_progress``."""
        start = self._response("in_progress", None)
        return self._event("response.created", response=start) + self._event(
            "response.in_progress", response=start
        )

    def _open_item(self, item: _Item) -> bytes:
        out = self._close_open()
        self._items.append(item)
        self._open = item
        at = {"item_id": item.id, "output_index": item.output_index}
        out += self._event(
            "response.output_item.added",
            output_index=item.output_index,
            item=self._item_object(item, "in_progress"),
        )
        if item.kind == "message":
            out += self._event(
                "response.content_part.added",
                **at,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        elif item.kind == "reasoning" and self.context.summary:
            out += self._event(
                "response.reasoning_summary_part.added",
                **at,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        return out

    def _close_open(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        text = item.joined()
        at = {"item_id": item.id, "output_index": item.output_index}
        out = b""
        if item.kind == "message":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out += self._event(
                "response.output_text.done", **at, content_index=0, text=text, logprobs=[]
            )
            out += self._event("response.content_part.done", **at, content_index=0, part=part)
        elif item.kind == "reasoning" and self.context.summary:
            out += self._event(
                "response.reasoning_summary_text.done", **at, summary_index=0, text=text
            )
            out += self._event(
                "response.reasoning_summary_part.done",
                **at,
                summary_index=0,
                part={"type": "summary_text", "text": text},
            )
        elif item.kind == "reasoning":
            out += self._event("response.reasoning_text.done", **at, content_index=0, text=text)
        elif item.custom:
            value = _custom_input(text)
            out += self._event("response.custom_tool_call_input.delta", **at, delta=value)
            out += self._event("response.custom_tool_call_input.done", **at, input=value)
        else:
            out += self._event(
                "response.function_call_arguments.done",
                **at,
                name=item.name,
                arguments=text or "{}",
            )
        out += self._event(
            "response.output_item.done",
            output_index=item.output_index,
            item=self._item_object(item),
        )
        return out

    def _signature_item(self, signature: str) -> bytes:
        """Emit a reasoning item that only carries a call's signature (Gemini) to the next turn."""
        out = self._close_open()
        item = _Item("reasoning", len(self._items), "rs_")
        item.signature = signature
        self._items.append(item)
        out += self._event(
            "response.output_item.added",
            output_index=item.output_index,
            item=self._item_object(item, "in_progress"),
        )
        return out + self._event(
            "response.output_item.done",
            output_index=item.output_index,
            item=self._item_object(item),
        )

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open is None or self._open.kind != "message":
            out += self._open_item(_Item("message", len(self._items), "msg_"))
        item = self._open
        assert item is not None  # noqa: S101 - opened just above
        item.text.append(text)
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        out = b""
        if self._open is None or self._open.kind != "reasoning":
            if not event.text and self._items and self._items[-1].kind == "reasoning":
                # A closing signature for reasoning already closed by other output.
                self._items[-1].signature = event.signature or self._items[-1].signature
                self._items[-1].redacted = event.redacted or self._items[-1].redacted
                return b""
            out += self._open_item(_Item("reasoning", len(self._items), "rs_"))
        item = self._open
        assert item is not None  # noqa: S101 - opened just above
        item.signature = event.signature or item.signature
        item.redacted = event.redacted or item.redacted
        if not event.text:
            return out
        item.text.append(event.text)
        at = {"item_id": item.id, "output_index": item.output_index}
        if self.context.summary:
            kind, index = "response.reasoning_summary_text.delta", {"summary_index": 0}
        else:
            kind, index = "response.reasoning_text.delta", {"content_index": 0}
        return out + self._event(kind, **at, **index, delta=event.text)

    def _arguments(self, event: ToolCallDelta) -> bytes:
        item = next(
            (
                i
                for i in reversed(self._items)
                if i.kind == "call" and i.call_index == event.call_index
            ),
            None,
        )
        if item is None:
            return b""
        item.text.append(event.arguments)
        if item is not self._open or item.custom:
            return b""
        return self._event(
            "response.function_call_arguments.delta",
            item_id=item.id,
            output_index=item.output_index,
            delta=event.arguments,
        )

    def encode_events(self, events: list[Event]) -> bytes:
        """Encode canonical events as Responses stream events."""
        out = bytearray()
        for event in events:
            if self._ended or getattr(event, "index", 0) != 0:
                continue
            if isinstance(event, TextDelta):
                out += self._text(event.text)
            elif isinstance(event, ReasoningDelta):
                out += self._reasoning(event)
            elif isinstance(event, ToolCallStart):
                if event.signature and self.context.encrypted_reasoning:
                    out += self._signature_item(event.signature)
                item = self._call_item(event.id, event.name, event.call_index)
                out += self._open_item(item)
            elif isinstance(event, ToolCallDelta):
                out += self._arguments(event)
            elif isinstance(event, Finish):
                self._finish = self._finish or event.reason
            elif isinstance(event, UsageUpdate):
                self._usage = merge_usage(self._usage, event.usage)
            elif isinstance(event, StreamError):
                usage = usage_object(self._usage, None) if self._usage else None
                error = {"code": event.code, "message": event.message}
                out += self._end("response.failed", "failed", usage, error=error)
        return bytes(out)

    def _end(
        self,
        kind: str,
        status: str,
        usage: dict[str, Any] | None,
        *,
        error: dict[str, Any] | None = None,
        incomplete: str | None = None,
    ) -> bytes:
        out = self._close_open()
        self._ended = True
        body = self._response(status, usage, error=error, incomplete=incomplete)
        return out + self._event(kind, response=body)

    def passthrough_event(
        self,
        event: SSEEvent,  # noqa: ARG002
        events: list[Event],
        cost_of: Callable[[Usage], int],  # noqa: ARG002
    ) -> bytes:
        """Never called for relayed bytes; encodes the decoded events instead."""
        return self.encode_events(events)

    def stream_close(
        self, usage: Usage, cost: int, *, complete: bool, error: GatewayError | None
    ) -> bytes:
        """End with ``response.completed``, ``response.incomplete`` or ``response.failed``."""
        if self._ended:
            return b""
        summary = usage_object(usage, cost)
        cost_line = f": x-tollgate-cost: {format_usd(cost)}\n\n".encode()
        if error is not None or not complete:
            failure = error or GatewayError(
                502,
                "upstream_truncated",
                "the upstream stream ended before it was complete",
                type="upstream_error",
            )
            body = {"code": failure.code, "message": failure.message}
            return cost_line + self._end("response.failed", "failed", summary, error=body)
        status, incomplete = _status(self._finish or "stop")
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return cost_line + self._end(kind, status, summary, incomplete=incomplete)


def _status(reason: FinishReason) -> tuple[str, str | None]:
    if reason == "length":
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def _custom_input(arguments: str) -> str:
    """Return the raw input of a custom tool call from its ``{"input": ...}`` arguments."""
    try:
        decoded = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return arguments
    if isinstance(decoded, dict) and isinstance(decoded.get("input"), str):
        return str(decoded["input"])
    return arguments


async def serve_responses(state: GatewayState, scope: Scope, receive: Receive, send: Send) -> None:
    """Handle ``POST /v1/responses``."""
    request_id = new_request_id()
    created_at = datetime.datetime.now(datetime.UTC)
    if await refuse_method(scope, send, error_body, request_id):
        return
    try:
        body = await read_body(scope, receive, state.settings.gateway.max_body_bytes)
        key, tenant = authenticate(state.snapshot, api_key_of(scope))
        payload = decode_json_object(body)
        with malformed_input():
            request, context = decode_responses_request(payload)
    except GatewayError as exc:
        await send_error(send, error_body, exc, request_id)
        return
    client = ResponsesClient(model=request.model, request_id=request_id, context=context)
    await serve_generation(
        state,
        receive,
        send,
        request_id=request_id,
        created_at=created_at,
        key=key,
        tenant=tenant,
        request=request,
        raw=None,
        client=client,
        endpoint="responses",
        body_size=len(body),
        client_headers=headers_of(scope),
    )

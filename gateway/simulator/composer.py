"""Deterministic answers, tool arguments, embeddings and exact token counts.

Every figure the simulator reports is computed here, with the offline cl100k tokenizer:

- **Prompt tokens** are the cl100k count of the request's input texts joined with a newline,
  in request order (system or instructions first, then each message's texts in order), plus
  `IMAGE_TOKENS` for every image or other inline/file part. The input texts are: content
  strings and text parts, tool-call arguments as the request carries them (JSON text; Anthropic
  and Gemini objects are JSON-encoded compactly), and tool results (their text, or their
  JSON-encoded value). Roles, names, tool definitions, earlier thinking blocks and thought parts
  are not counted, and no per-message overhead is added. `Composer.prompt_tokens` computes it.
  A text longer than `SEGMENT_CHARS` is counted in segments cut after whitespace (the tokenizer
  refuses inputs of a million characters).
- **Completion tokens** are the cl100k count of the emitted answer text, plus the count of any
  emitted thinking text (Anthropic) or thought text (Gemini, reported apart as
  `thoughtsTokenCount`). A tool call counts `count(name) + count(arguments JSON)`. With several
  choices or candidates, their counts add up.
- The **default answer** is a sentence of `DEFAULT_WORDS` words picked from a fixed word list
  by a CRC-32 of the model name and choice index, so it depends on nothing else. A token limit
  (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, `maxOutputTokens`) keeps the
  longest run of whole words whose count fits, and the finish reason then says so.
- **Tool arguments** are built from the first tool's JSON schema: its `required` properties (all
  properties when there is no `required`), string `"Paris"` (or the first `enum` value), number
  and integer `1`, boolean `true`, arrays of one example item, objects recursively.
- **Embeddings** are unit vectors of float32 values derived from a BLAKE2b hash of the input.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import struct
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

IMAGE_TOKENS: Final = 85
"""Prompt tokens counted for each image (or other inline or file) part."""

DEFAULT_WORDS: Final = 12
"""Words in the default answer."""

DEFAULT_DIMENSIONS: Final = 64
"""Length of an embedding when the request names none."""

THINKING_TEXT: Final = "The user asked a question, so I consider it step by step before I answer."
"""The thinking (Anthropic) or thought (Gemini) text, when the request enables it."""

TOOL_STRING: Final = "Paris"
"""Example value of a string property in generated tool arguments."""

SEGMENT_CHARS: Final = 500_000
"""Longest text counted in one piece; the tokenizer refuses inputs of a million characters."""

_ANSWER_CACHE_SIZE: Final = 4096
_WORDS: Final = (
    "alpha", "bright", "river", "stone", "quiet", "house", "simple", "answer", "light", "window",
    "paper", "green", "market", "silver", "morning", "table", "yellow", "forest", "cloud", "letter",
    "summer", "water", "music", "world", "orange", "winter", "story", "point", "place",
    "signal", "bridge", "power", "planet", "coffee", "system", "basket", "mirror", "travel",
    "number", "circle", "square", "button", "little", "shadow", "program", "question", "service",
    "family", "modern", "golden", "student", "second", "thread", "border", "engine", "figure",
    "kitchen", "lesson", "mountain", "ocean", "pocket", "record", "season", "ticket",
)  # fmt: skip
_WORD_STEP: Final = 37
_PIECE = re.compile(r"\s*\S+")
_encode_json = msgspec.json.encode


class Answer(NamedTuple):
    """A text answer: the text, its stream pieces and its token count."""

    text: str
    pieces: tuple[str, ...]
    """One piece per word (leading space included); they join to `text`."""
    tokens: int
    truncated: bool
    """Whether the token limit cut the text short."""


class ToolCall(NamedTuple):
    """A generated call of the request's first tool."""

    id: str
    name: str
    arguments: str
    """Compact JSON text of the arguments object."""
    tokens: int


def split_pieces(text: str) -> tuple[str, ...]:
    """Split `text` into stream pieces, one per word, each with its leading whitespace."""
    pieces = _PIECE.findall(text)
    rest = len(text) - sum(len(piece) for piece in pieces)
    if rest:
        if pieces:
            pieces[-1] += text[-rest:]
        else:
            pieces.append(text)
    return tuple(pieces)


def default_sentence(model: str, index: int, words: int) -> str:
    """Return the deterministic answer sentence of `words` words for `model` and choice `index`."""
    if words <= 0:
        return ""
    seed = zlib.crc32(f"{model}\x00{index}".encode())
    chosen = [_WORDS[(seed + i * _WORD_STEP) % len(_WORDS)] for i in range(words)]
    chosen[0] = chosen[0].capitalize()
    return " ".join(chosen) + "."


def example_value(schema: Any) -> Any:
    """Return the example value of a JSON schema (see the module docstring for the rule)."""
    if not isinstance(schema, Mapping):
        return TOOL_STRING
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return example_value(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    kind = str(kind).lower() if kind is not None else ("object" if "properties" in schema else "")
    if kind == "object":
        return example_arguments(schema)
    if kind == "array":
        items = schema.get("items")
        return [example_value(items)] if isinstance(items, Mapping) else []
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return TOOL_STRING


def example_arguments(schema: Any) -> dict[str, Any]:
    """Return example arguments for an object schema: its required properties, filled in."""
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        properties = {}
    required = schema.get("required")
    names = required if isinstance(required, list) else list(properties)
    return {str(name): example_value(properties.get(name)) for name in names}


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Return a deterministic unit vector of float32 values for `text`."""
    raw = bytearray()
    block = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.blake2b(f"{block}\x00{text}".encode()).digest()
        block += 1
    values = [v / 2147483648.0 for v in struct.unpack(f"<{dimensions}i", raw[: dimensions * 4])]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def embedding_base64(vector: Sequence[float]) -> str:
    """Return `vector` as base64 of little-endian float32 values (OpenAI `encoding_format`)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def signature_for(text: str) -> str:
    """Return the deterministic signature of a thinking block."""
    return base64.b64encode(hashlib.blake2b(text.encode(), digest_size=48).digest()).decode()


def load_cl100k() -> Any:
    """Return the offline cl100k encoding of `bpe_openai`.

    The package is imported here, not at module import, because importing it loads its rank
    tables and, under Python 3.11, warns about its use of `importlib.resources.open_binary`,
    which the test configuration turns into an error.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="bpe_openai")
        import bpe_openai

        return bpe_openai.get_encoding("cl100k_base")


class Composer:
    """Compose answers and count tokens; one per app, shared by all its requests."""

    def __init__(self) -> None:
        self._encoding = load_cl100k()
        self._answers: dict[tuple[str, int, int | None, str | None, int | None], Answer] = {}
        self._ids = itertools.count(1)
        self._stamp = f"{os.getpid():x}"

    def count(self, text: str) -> int:
        """Return the cl100k token count of `text` (in segments when it is very long)."""
        if len(text) <= SEGMENT_CHARS:
            return len(self._encoding.encode_ordinary(text)) if text else 0
        total = 0
        start = 0
        while start < len(text):
            end = min(start + SEGMENT_CHARS, len(text))
            if end < len(text):
                # Cut after whitespace, where a BPE merge cannot cross, when there is some.
                cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
                end = cut + 1 if cut > start else end
            total += len(self._encoding.encode_ordinary(text[start:end]))
            start = end
        return total

    def prompt_tokens(self, texts: Sequence[str], images: int = 0) -> int:
        """Return the prompt token count of input `texts` and `images` (module docstring rule)."""
        return self.count("\n".join(texts)) + images * IMAGE_TOKENS

    def new_id(self, prefix: str) -> str:
        """Return an id unique within this process, such as `chatcmpl-sim1f2a000000000007`."""
        return f"{prefix}sim{self._stamp}{next(self._ids):012d}"

    def answer(
        self,
        model: str,
        *,
        index: int = 0,
        words: int | None = None,
        text: str | None = None,
        limit: int | None = None,
    ) -> Answer:
        """Return the answer for `model` and choice `index`, cut to `limit` tokens.

        Args:
            model: the model name of the request.
            index: the choice (OpenAI `n`) or candidate (Gemini `candidateCount`) index.
            words: the number of words of the default sentence.
            text: the exact text, replacing the default sentence.
            limit: the request's output token limit.
        """
        key = (model, index, words, text, limit)
        cached = self._answers.get(key)
        if cached is not None:
            return cached
        if text is None:
            text = default_sentence(model, index, DEFAULT_WORDS if words is None else words)
        answer = self.fit(text, limit)
        if len(self._answers) >= _ANSWER_CACHE_SIZE:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def fit(self, text: str, limit: int | None) -> Answer:
        """Return `text` as an answer, keeping only the whole words that fit in `limit` tokens."""
        pieces = split_pieces(text)
        tokens = self.count(text)
        if limit is None or tokens <= limit:
            return Answer(text, pieces, tokens, truncated=False)
        kept = 0
        kept_tokens = 0
        for size in range(1, len(pieces) + 1):
            size_tokens = self.count("".join(pieces[:size]))
            if size_tokens > limit:
                break
            kept, kept_tokens = size, size_tokens
        pieces = pieces[:kept]
        return Answer("".join(pieces), pieces, kept_tokens, truncated=True)

    def tool_call(self, name: str, schema: Any, call_id: str) -> ToolCall:
        """Return the generated call of tool `name` whose parameters are `schema`."""
        arguments = _encode_json(example_arguments(schema)).decode()
        return ToolCall(call_id, name, arguments, self.count(name) + self.count(arguments))

    def tool_result_answer(self, result: str, limit: int | None) -> Answer:
        """Return the answer to a conversation whose last turn is a tool result."""
        return self.fit(f"The tool returned: {result}", limit)

    def thinking(self) -> Answer:
        """Return the thinking text as an answer."""
        return self.fit(THINKING_TEXT, None)


def json_text(value: Any) -> str:
    """Return `value` as compact JSON text, or itself when it is already a string."""
    if isinstance(value, str):
        return value
    return _encode_json(value).decode()

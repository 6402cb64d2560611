"""Offline token counting for when an upstream reports no usage.

Counts use the ``o200k_base``/``cl100k_base`` byte-pair encodings shipped inside the
``bpe-openai`` wheel (GitHub's Rust BPE, tiktoken-compatible, no download at run time).
A stream is counted incrementally: text is tokenized in pieces cut just before a
whitespace character, where the encodings' pre-tokenizer also cuts, so no whole stream is
ever kept in memory and the total matches counting the joined text.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import bpe_openai

from gateway.canonical import ChatRequest, Reasoning, Text, ToolCall, ToolResult

__all__ = ("TokenCounter", "count_prompt", "count_tokens", "encoding")

_FLUSH_AT: Final = 512
_MESSAGE_OVERHEAD: Final = 3
_REPLY_PRIMING: Final = 3


@functools.cache
def encoding(name: str = "cl100k_base") -> Any:
    """Return the named encoding, loaded once per process."""
    return bpe_openai.get_encoding(name)


def count_tokens(text: str, name: str = "cl100k_base") -> int:
    """Return the number of tokens in ``text``."""
    if not text:
        return 0
    return len(encoding(name).encode_ordinary(text))


def count_prompt(request: ChatRequest, name: str = "cl100k_base") -> int:
    """Estimate the prompt tokens of a canonical request, by the same rule as chat messages.

    Tool definitions count as their JSON text.
    """
    total = _REPLY_PRIMING
    for message in request.messages:
        total += _MESSAGE_OVERHEAD + count_tokens(message.role, name)
        for part in message.parts:
            if isinstance(part, Text | Reasoning):
                total += count_tokens(part.text, name)
            elif isinstance(part, ToolCall):
                total += count_tokens(part.name, name) + count_tokens(part.arguments, name)
            elif isinstance(part, ToolResult):
                total += count_tokens(part.content, name)
    for tool in request.tools:
        total += count_tokens(tool.name, name) + count_tokens(str(tool.parameters), name)
    return total


class TokenCounter:
    """Count the tokens of text that arrives in pieces, without keeping it all."""

    __slots__ = ("_name", "_pending", "total")

    def __init__(self, name: str = "cl100k_base") -> None:
        self._name = name
        self._pending = ""
        self.total = 0

    def add(self, text: str) -> None:
        """Take the next piece of text."""
        if not text:
            return
        self._pending += text
        if len(self._pending) < _FLUSH_AT:
            return
        cut = _last_safe_cut(self._pending)
        if cut > 0:
            self.total += count_tokens(self._pending[:cut], self._name)
            self._pending = self._pending[cut:]

    def finish(self) -> int:
        """Count what is left and return the total."""
        if self._pending:
            self.total += count_tokens(self._pending, self._name)
            self._pending = ""
        return self.total


def _last_safe_cut(text: str) -> int:
    """Return an index just before a space that follows a non-space, or 0 if none."""
    index = len(text) - 1
    while index > 0:
        if text[index] == " " and not text[index - 1].isspace():
            return index
        index -= 1
    return 0

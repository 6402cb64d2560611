from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from gateway.sse import SSEDecoder

OPENAI = (
    b'data: {"choices":[{"delta":{"content":"Hel'
    b'lo"}}]}\n\ndata: {"choices":[{"delta":{"content":" world"}}]}\n\n: keep-alive\n\n'
    b'data: {"choices":[{"finish_reason":"stop"}]}\r\n\r\ndata:[DONE]\n\n'
)
ANTHROPIC = (
    b'event: message_start\ndata: {"type":"message_start"}\n\n'
    b'event: ping\ndata: {"type":"ping"}\n\n'
    b'event: message_stop\r\ndata: {"type":"message_stop"}\r\n\r\n'
)
GEMINI = b'data: {"candidates":[]}\r\n\r\ndata: {"candidates":[{"finishReason":"STOP"}]}\r\n\r\n'


def _decode(pieces: list[bytes]) -> list[tuple[str, str]]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    return [(e.event, e.data) for e in events]


@pytest.mark.parametrize(
    "stream", [OPENAI, ANTHROPIC, GEMINI], ids=["openai", "anthropic", "gemini"]
)
def test_sse_decoder_gives_same_events_at_every_cut(stream: bytes) -> None:
    whole = _decode([stream])

    for cut in range(len(stream) + 1):
        assert _decode([stream[:cut], stream[cut:]]) == whole, cut


def test_sse_decoder_reads_the_openai_case() -> None:
    assert _decode([OPENAI]) == [
        ("message", '{"choices":[{"delta":{"content":"Hello"}}]}'),
        ("message", '{"choices":[{"delta":{"content":" world"}}]}'),
        ("message", '{"choices":[{"finish_reason":"stop"}]}'),
        ("message", "[DONE]"),
    ]


def test_sse_decoder_keeps_event_names() -> None:
    assert [name for name, _ in _decode([ANTHROPIC])] == ["message_start", "ping", "message_stop"]


def test_sse_decoder_joins_multiline_data_and_accepts_cr_only() -> None:
    assert _decode([b"data: a\rdata:b\r\r"]) == [("message", "a\nb")]


def test_sse_decoder_flushes_an_unterminated_last_event() -> None:
    assert _decode([b"data: x\n\ndata: tail"]) == [("message", "x"), ("message", "tail")]


def test_sse_decoder_keeps_each_events_bytes() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data: 1\n\n: c\n\nevent: e\ndata: 2\r\n\r\n")

    assert [e.raw for e in events] == [b"data: 1\n\n", b"event: e\ndata: 2\r\n\r\n"]


@given(st.lists(st.integers(1, 40), max_size=60))
def test_sse_decoder_any_read_sizes(sizes: list[int]) -> None:
    stream = OPENAI + ANTHROPIC + GEMINI
    pieces, position = [], 0
    for size in sizes:
        pieces.append(stream[position : position + size])
        position += size
    pieces.append(stream[position:])

    assert _decode(pieces) == _decode([stream])

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway.surfaces.openai import decode_chat_request
from gateway.tokens import TokenCounter, count_prompt, count_tokens

WORDS = st.sampled_from(
    ["hello", " world", ",", "\n", "  ", "你好", "😀", "don't", "x" * 40, " ", "12345"]
)


def test_count_tokens_cl100k() -> None:
    assert count_tokens("Hello world") == 2
    assert count_tokens("") == 0


@settings(max_examples=60)
@given(st.lists(WORDS, max_size=400), st.lists(st.integers(1, 30), min_size=1, max_size=50))
def test_token_counter_matches_counting_the_joined_text(words: list[str], sizes: list[int]) -> None:
    text = "".join(words)
    counter = TokenCounter()
    position, index = 0, 0
    while position < len(text):
        size = sizes[index % len(sizes)]
        counter.add(text[position : position + size])
        position += size
        index += 1

    assert counter.finish() == count_tokens(text)


def test_count_prompt_counts_text_parts_and_framing() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
            ],
        },
    ]

    expected = 3 + (3 + 1 + count_tokens("Be brief.")) + (3 + 1 + count_tokens("Hi"))
    request, _ = decode_chat_request({"model": "m", "messages": messages})
    assert count_prompt(request) == expected

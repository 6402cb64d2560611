"""Unit tests of the relay policy in edge_proxy.relay_core (no I/O)."""

from __future__ import annotations

import json

import pytest

from edge_proxy.relay_core import (
    DEFAULT_UPSTREAMS,
    BindingCall,
    Forward,
    Refusal,
    RelayPolicy,
    UpstreamTableError,
    check_target,
    filter_request_headers,
    filter_response_headers,
    parse_binding_inputs,
    parse_upstreams,
    request_has_body,
    validate_upstreams,
)

SECRET = "s3cr3t-relay-key"
KEY = ("x-relay-key", SECRET)


@pytest.fixture(name="policy")
def fx_policy() -> RelayPolicy:
    return RelayPolicy(secret=SECRET)


def forward_of(decision: Forward | Refusal) -> Forward:
    assert isinstance(decision, Forward), decision
    return decision


def refusal_of(decision: object) -> Refusal:
    assert isinstance(decision, Refusal), decision
    return decision


def test_refusal_renders_relay_error_json_and_header() -> None:
    refusal = Refusal(404, "unknown_upstream", "no upstream is named `x`")

    assert refusal.headers() == [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-relay-error", "unknown_upstream"),
    ]
    assert json.loads(refusal.body()) == {
        "error": {
            "type": "relay_error",
            "code": "unknown_upstream",
            "message": "no upstream is named `x`",
        }
    }


def test_decide_forwards_when_key_matches(policy: RelayPolicy) -> None:
    decision = policy.decide(
        "POST",
        "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        "alt=sse",
        [KEY, ("content-type", "application/json")],
    )

    assert decision == Forward(
        upstream="gemini",
        url="https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        headers=(("content-type", "application/json"),),
    )


def test_decide_refuses_missing_key(policy: RelayPolicy) -> None:
    refusal = refusal_of(policy.decide("GET", "/openai/v1/models", "", [("authorization", "x")]))

    assert (refusal.status, refusal.code) == (401, "relay_key_missing")
    assert refusal.message == "the `x-relay-key` header is missing"


@pytest.mark.parametrize("presented", ["wrong", "", SECRET + " ", SECRET[:-1], "ключ"])
def test_decide_refuses_wrong_key(policy: RelayPolicy, presented: str) -> None:
    refusal = refusal_of(
        policy.decide("GET", "/openai/v1/models", "", [("x-relay-key", presented)])
    )

    assert (refusal.status, refusal.code) == (401, "relay_key_invalid")
    assert refusal.message == "the `x-relay-key` header is wrong"


def test_decide_refuses_repeated_key(policy: RelayPolicy) -> None:
    refusal = refusal_of(policy.decide("GET", "/openai/v1/models", "", [KEY, KEY]))

    assert (refusal.status, refusal.code) == (401, "relay_key_invalid")


def test_decide_accepts_key_header_in_any_case(policy: RelayPolicy) -> None:
    decision = policy.decide("GET", "/openai/v1/models", "", [("X-Relay-Key", SECRET)])

    assert forward_of(decision).url == "https://api.openai.com/v1/models"


def test_decide_compares_non_ascii_secret_as_utf8_bytes() -> None:
    policy = RelayPolicy(secret="clé-secrète")
    # ASGI servers and the Fetch API hand over header bytes one character per byte.
    on_the_wire = "clé-secrète".encode().decode("latin-1")

    assert isinstance(
        policy.decide("GET", "/openai/v1", "", [("x-relay-key", on_the_wire)]), Forward
    )
    assert isinstance(
        policy.decide("GET", "/openai/v1", "", [("x-relay-key", "clé-secrète")]), Refusal
    )


@pytest.mark.parametrize("secret", [None, ""])
@pytest.mark.parametrize("path", ["/openai/v1/models", "/nowhere", "/gemini/%2e%2e/x"])
def test_decide_refuses_everything_when_secret_unset(secret: str | None, path: str) -> None:
    policy = RelayPolicy(secret=secret)

    refusal = refusal_of(policy.decide("GET", path, "", [("x-relay-key", "")]))

    assert refusal == Refusal(500, "secret_not_configured", "relay secret not configured")


def test_decide_refuses_unknown_prefix(policy: RelayPolicy) -> None:
    refusal = refusal_of(policy.decide("GET", "/mistral/v1/models", "", [KEY]))

    assert refusal == Refusal(
        404,
        "unknown_upstream",
        "no upstream is named `mistral`; known: anthropic, cfai, gemini, openai",
    )


@pytest.mark.parametrize("path", ["/", "/v1/models"])
def test_decide_refuses_paths_without_known_prefix(policy: RelayPolicy, path: str) -> None:
    assert refusal_of(policy.decide("GET", path, "", [KEY])).status == 404


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/gemini/../openai/v1", "`.` and `..` segments are not allowed in the path"),
        ("/gemini/v1/..", "`.` and `..` segments are not allowed in the path"),
        ("/gemini/./v1", "`.` and `..` segments are not allowed in the path"),
        ("/gemini/%2e%2e/openai", "`.` and `..` segments are not allowed in the path"),
        ("/gemini/%2E%2E/openai", "`.` and `..` segments are not allowed in the path"),
        ("/gemini/.%2e/openai", "`.` and `..` segments are not allowed in the path"),
        ("/gemini/%252e%252e/openai", "`.` and `..` segments are not allowed in the path"),
        ("/gemini//evil.example/v1", "empty segments (`//`) are not allowed in the path"),
        ("//gemini/v1", "empty segments (`//`) are not allowed in the path"),
        ("/gemini/a%2F%2Fb", "empty segments (`//`) are not allowed in the path"),
        ("/gemini/v1@evil.example", "`@` is not allowed in the path"),
        ("/gemini/%40evil.example", "`@` is not allowed in the path"),
        ("/gemini/a\\b", "backslashes are not allowed in the path"),
        ("/gemini/a%5Cb", "backslashes are not allowed in the path"),
        ("/gemini/a%0d%0aX-Injected:%201", "control characters are not allowed in the path"),
        ("/gemini/a%00b", "control characters are not allowed in the path"),
        ("/gemini/a b", "the path must be percent-encoded printable ASCII"),
        ("/gemini/é", "the path must be percent-encoded printable ASCII"),
        ("gemini/v1", "the path must start with `/` and be at most 8192 characters"),
        ("/gemini/%2525252e", "the path is percent-encoded too many times"),
    ],
)
def test_decide_refuses_unsafe_paths(policy: RelayPolicy, path: str, message: str) -> None:
    refusal = refusal_of(policy.decide("GET", path, "", [KEY]))

    assert refusal == Refusal(400, "invalid_path", message)


def test_decide_checks_key_before_path(policy: RelayPolicy) -> None:
    refusal = refusal_of(policy.decide("GET", "/gemini/%2e%2e/x", "", []))

    assert refusal.status == 401


def test_decide_refuses_query_with_raw_control_characters(policy: RelayPolicy) -> None:
    refusal = refusal_of(policy.decide("GET", "/openai/v1", "a=b\r\nc", [KEY]))

    assert refusal == Refusal(
        400, "invalid_path", "the query must be percent-encoded printable ASCII"
    )


@pytest.mark.parametrize(
    ("path", "query", "url"),
    [
        (
            "/gemini/v1beta/models",
            "key=abc%20d&alt=sse",
            "https://generativelanguage.googleapis.com/v1beta/models?key=abc%20d&alt=sse",
        ),
        ("/gemini/v1beta/models", "", "https://generativelanguage.googleapis.com/v1beta/models"),
        ("/anthropic/v1/messages", "beta=true", "https://api.anthropic.com/v1/messages?beta=true"),
        ("/openai", "", "https://api.openai.com"),
        ("/openai/v1/", "", "https://api.openai.com/v1/"),
        ("/openai/v1/files/file-a%2Bb", "", "https://api.openai.com/v1/files/file-a%2Bb"),
        (
            "/cfai/client/v4/accounts/0123/ai/v1/chat/completions",
            "",
            "https://api.cloudflare.com/client/v4/accounts/0123/ai/v1/chat/completions",
        ),
    ],
)
def test_decide_keeps_rest_of_path_and_query(
    policy: RelayPolicy, path: str, query: str, url: str
) -> None:
    assert forward_of(policy.decide("GET", path, query, [KEY])).url == url


def test_decide_uses_configured_table_with_base_path() -> None:
    policy = RelayPolicy(secret=SECRET, upstreams={"local": "http://127.0.0.1:9000/base/"})

    forward = forward_of(policy.decide("GET", "/local/v1/x", "q=1", [KEY]))

    assert forward == Forward(
        upstream="local", url="http://127.0.0.1:9000/base/v1/x?q=1", headers=()
    )
    assert refusal_of(policy.decide("GET", "/gemini/v1", "", [KEY])).status == 404


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_decide_refuses_other_methods(policy: RelayPolicy, method: str) -> None:
    refusal = refusal_of(policy.decide(method, "/openai/v1", "", [KEY]))

    assert refusal == Refusal(405, "method_not_allowed", f"method `{method}` is not relayed")


FORBIDDEN_REQUEST_HEADERS = [
    ("Host", "relay.example.org"),
    ("X-Relay-Key", SECRET),
    ("x-relay-target", "gemini"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "relay.example.org"),
    ("x-forwarded-port", "443"),
    ("Forwarded", "for=203.0.113.7;proto=https"),
    ("CF-Connecting-IP", "203.0.113.7"),
    ("cf-connecting-ipv6", "2001:db8::7"),
    ("cf-ipcountry", "CN"),
    ("cf-ray", "8c0ffee-HKG"),
    ("cf-visitor", '{"scheme":"https"}'),
    ("cf-worker", "example.org"),
    ("cdn-loop", "cloudflare"),
    ("X-Real-IP", "203.0.113.7"),
    ("True-Client-IP", "203.0.113.7"),
    ("x-client-ip", "203.0.113.7"),
    ("x-cluster-client-ip", "203.0.113.7"),
    ("client-ip", "203.0.113.7"),
    ("fastly-client-ip", "203.0.113.7"),
    ("x-originating-ip", "203.0.113.7"),
    ("x-original-forwarded-for", "203.0.113.7"),
    ("x-remote-ip", "203.0.113.7"),
    ("x-remote-addr", "203.0.113.7"),
    ("Via", "1.1 edge"),
    ("Connection", "keep-alive, x-hop"),
    ("x-hop", "per-connection"),
    ("Keep-Alive", "timeout=5"),
    ("proxy-connection", "keep-alive"),
    ("proxy-authorization", "Basic Zm9vOmJhcg=="),
    ("TE", "trailers"),
    ("trailer", "x-checksum"),
    ("Transfer-Encoding", "chunked"),
    ("upgrade", "h2c"),
    ("expect", "100-continue"),
    ("cookie", "session=caller"),
    ("content-length", "12"),
]

ALLOWED_REQUEST_HEADERS = [
    ("authorization", "Bearer sk-upstream"),
    ("x-api-key", "sk-ant-upstream"),
    ("x-goog-api-key", "AIza-upstream"),
    ("anthropic-version", "2023-06-01"),
    ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ("openai-organization", "org-1"),
    ("content-type", "application/json"),
    ("accept", "text/event-stream"),
    ("accept-encoding", "gzip"),
    ("user-agent", "tollgate/0.1"),
    ("idempotency-key", "abc"),
]


def test_decide_strips_every_forbidden_request_header(policy: RelayPolicy) -> None:
    headers = [*FORBIDDEN_REQUEST_HEADERS, *ALLOWED_REQUEST_HEADERS]

    forward = forward_of(policy.decide("POST", "/anthropic/v1/messages", "", headers))

    assert forward.headers == tuple(ALLOWED_REQUEST_HEADERS)


@pytest.mark.parametrize(("name", "value"), FORBIDDEN_REQUEST_HEADERS)
def test_filter_request_headers_drops_forbidden_header(name: str, value: str) -> None:
    headers = [("connection", "x-hop")] if name == "x-hop" else []

    assert filter_request_headers([*headers, (name, value)]) == ()


def test_decide_never_forwards_relay_secret(policy: RelayPolicy) -> None:
    headers = [KEY, ("X-RELAY-KEY", SECRET), ("authorization", "Bearer sk")]
    one_key = [KEY, ("authorization", "Bearer sk")]

    forward = forward_of(policy.decide("GET", "/openai/v1/models", "", one_key))

    assert refusal_of(policy.decide("GET", "/openai/v1/models", "", headers)).status == 401
    assert all(SECRET not in value for _, value in forward.headers)
    assert SECRET not in forward.url
    assert SECRET not in repr(policy)


def test_filter_request_headers_keeps_content_length_on_request() -> None:
    headers = [("content-length", "8000000"), ("transfer-encoding", "chunked")]

    assert filter_request_headers(headers, keep_content_length=True) == (
        ("content-length", "8000000"),
    )
    assert filter_request_headers(headers) == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [("bad name", "x"), ("x-ok", "a\r\nx-injected: 1"), ("x-ok", "a\x00b"), ("", "x")],
)
def test_filter_request_headers_drops_malformed_fields(name: str, value: str) -> None:
    assert filter_request_headers([(name, value)]) == ()


def test_filter_response_headers_keeps_length_and_encoding_of_raw_body() -> None:
    headers = [
        ("Content-Type", "text/event-stream"),
        ("Content-Length", "120"),
        ("Content-Encoding", "gzip"),
        ("Retry-After", "7"),
        ("x-ratelimit-remaining-requests", "0"),
        ("request-id", "req_1"),
        ("Connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("Trailer", "x-checksum"),
        ("Upgrade", "h2c"),
        ("Proxy-Authenticate", "Basic"),
        ("alt-svc", 'h3=":443"'),
        ("X-Relay-Error", "spoofed"),
    ]

    assert filter_response_headers(headers, body_decoded=False) == (
        ("content-type", "text/event-stream"),
        ("content-length", "120"),
        ("content-encoding", "gzip"),
        ("retry-after", "7"),
        ("x-ratelimit-remaining-requests", "0"),
        ("request-id", "req_1"),
    )
    assert filter_response_headers(headers, body_decoded=True) == (
        ("content-type", "text/event-stream"),
        ("retry-after", "7"),
        ("x-ratelimit-remaining-requests", "0"),
        ("request-id", "req_1"),
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], False),
        ([("content-length", "0")], False),
        ([("Content-Length", "12")], True),
        ([("transfer-encoding", "chunked")], True),
        ([("content-type", "application/json")], False),
    ],
)
def test_request_has_body_reads_framing_headers(
    headers: list[tuple[str, str]], expected: bool
) -> None:
    assert request_has_body(headers) is expected


def test_check_target_accepts_ordinary_api_paths() -> None:
    assert check_target("/gemini/v1beta/models/gemini-2.5-flash:generateContent", "alt=sse") is None
    assert check_target("/openai/v1/chat/completions", "") is None


def test_parse_upstreams_reads_json_object() -> None:
    table = parse_upstreams(
        '{"gemini": "https://generativelanguage.googleapis.com/", "local": "http://127.0.0.1:8080"}'
    )

    assert table == {
        "gemini": "https://generativelanguage.googleapis.com",
        "local": "http://127.0.0.1:8080",
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "upstream table is not valid JSON"),
        ('["https://api.openai.com"]', "upstream table must be a JSON object, got list"),
        ('{"Open AI": "https://api.openai.com"}', "upstream name 'Open AI' must match"),
        ('{"cfai-binding": "https://api.cloudflare.com"}', "`cfai-binding` is reserved"),
        ('{"openai": 1}', "upstream `openai` must map to a URL string, got int"),
        ('{"openai": "ftp://api.openai.com"}', "must be an absolute http\\(s\\) URL"),
        ('{"openai": "api.openai.com"}', "must be an absolute http\\(s\\) URL"),
        ('{"openai": "https://user:pw@api.openai.com"}', "without credentials"),
        ('{"openai": "https://api.openai.com/?x=1"}', "without credentials, query or fragment"),
        ('{"openai": "https://api.openai.com/#x"}', "without credentials, query or fragment"),
    ],
)
def test_parse_upstreams_rejects_bad_tables(text: str, match: str) -> None:
    with pytest.raises(UpstreamTableError, match=match):
        parse_upstreams(text)


def test_relay_policy_validates_its_table() -> None:
    with pytest.raises(UpstreamTableError, match="upstream `x` must be an absolute"):
        RelayPolicy(secret=SECRET, upstreams={"x": "file:///etc/passwd"})


def test_default_upstreams_are_valid() -> None:
    assert validate_upstreams(DEFAULT_UPSTREAMS) == dict(DEFAULT_UPSTREAMS)


def test_decide_binding_maps_path_to_model(policy: RelayPolicy) -> None:
    call = policy.decide_binding("POST", "/cfai-binding/cf/meta/llama-3.1-8b-instruct", [KEY])

    assert call == BindingCall(model="@cf/meta/llama-3.1-8b-instruct")


def test_decide_binding_ignores_other_prefixes(policy: RelayPolicy) -> None:
    assert policy.decide_binding("POST", "/cfai/client/v4/accounts/1/ai/v1/models", [KEY]) is None


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("POST", "/cfai-binding/cf/meta/x", [], 401, "relay_key_missing"),
        ("GET", "/cfai-binding/cf/meta/x", [KEY], 405, "method_not_allowed"),
        ("POST", "/cfai-binding", [KEY], 400, "invalid_model"),
        ("POST", "/cfai-binding/cf/meta/x/", [KEY], 400, "invalid_model"),
        ("POST", "/cfai-binding/cf/%2e%2e/x", [KEY], 400, "invalid_path"),
        ("POST", "/cfai-binding/cf/meta/x%20y", [KEY], 400, "invalid_model"),
    ],
)
def test_decide_binding_refuses_bad_calls(
    policy: RelayPolicy,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    status: int,
    code: str,
) -> None:
    refusal = refusal_of(policy.decide_binding(method, path, headers))

    assert (refusal.status, refusal.code) == (status, code)


def test_decide_binding_refuses_when_secret_unset() -> None:
    refusal = refusal_of(
        RelayPolicy(secret=None).decide_binding("POST", "/cfai-binding/cf/x", [KEY])
    )

    assert refusal.status == 500


def test_parse_binding_inputs_accepts_json_object() -> None:
    assert parse_binding_inputs('{"prompt": "hi", "stream": true}') == {
        "prompt": "hi",
        "stream": True,
    }


@pytest.mark.parametrize("text", ["", "[1]", "not json", "null"])
def test_parse_binding_inputs_refuses_non_objects(text: str) -> None:
    assert parse_binding_inputs(text) == Refusal(
        400, "invalid_body", "the binding takes a JSON object of model inputs"
    )

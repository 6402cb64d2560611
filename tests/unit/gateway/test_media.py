from __future__ import annotations

import httpx
import pytest

from gateway.errors import GatewayError
from gateway.media import normalize_media_type, parse_data_url, refuse_private_hosts


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "http://10.1.2.3/a.png",
        "http://[::1]/a.png",
        "http://169.254.169.254/x",
    ],
)
async def test_image_fetches_refuse_private_addresses(url: str) -> None:
    with pytest.raises(GatewayError) as refused:
        await refuse_private_hosts(httpx.Request("GET", url))
    assert refused.value.code == "invalid_image_url"


def test_parse_data_url_keeps_the_payload_and_normalises_the_type() -> None:
    assert parse_data_url("data:image/jpg;base64,/9j/4A==") == ("image/jpeg", "/9j/4A==")
    assert normalize_media_type(" IMAGE/PNG ") == "image/png"


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png,abc",
        "data:text/plain;base64,aGk=",
        "data:image/png;base64,***",
        "image/png;base64,aGk=",
    ],
)
def test_parse_data_url_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(GatewayError) as refused:
        parse_data_url(url)
    assert (refused.value.status, refused.value.code) == (400, "invalid_image_url")

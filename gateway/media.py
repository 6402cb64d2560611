"""Images in requests: the one place data URLs are parsed and remote images fetched.

Every converter that needs inline image bytes goes through :func:`parse_data_url` and
:func:`fetch_image`, so MIME types are normalised the same way everywhere (``image/jpg``
becomes ``image/jpeg``) and the base64 payload is passed on exactly as the client sent it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
from typing import TYPE_CHECKING, Final

import httpx

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.canonical import Image

__all__ = (
    "fetch_image",
    "inline_image",
    "normalize_media_type",
    "parse_data_url",
    "refuse_private_hosts",
)

MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
"""Largest remote image fetched for an upstream that needs inline bytes."""

FETCH_TIMEOUT: Final = 15.0
"""Seconds to fetch a remote image."""

_ALIASES: Final = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
}


def normalize_media_type(media_type: str) -> str:
    """Return the canonical spelling of an image MIME type."""
    lowered = media_type.strip().lower()
    return _ALIASES.get(lowered, lowered)


def parse_data_url(url: str, *, param: str | None = None) -> tuple[str, str]:
    """Return ``(media type, base64 data)`` of a ``data:`` URL, the data exactly as given.

    Raises:
        GatewayError: 400 ``invalid_image_url`` for a data URL that is not base64 image data.
    """
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        msg = "An image data URL must look like `data:image/png;base64,<data>`."
        raise GatewayError(400, "invalid_image_url", msg, param=param)
    media_type = normalize_media_type(header[5:-7])
    if not media_type.startswith("image/"):
        msg = f"`{media_type}` is not an image type."
        raise GatewayError(400, "invalid_image_url", msg, param=param)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        msg = "The image data URL does not hold valid base64."
        raise GatewayError(400, "invalid_image_url", msg, param=param) from None
    return media_type, data


async def fetch_image(client: httpx.AsyncClient, url: str) -> tuple[str, str]:
    """Fetch a remote image and return ``(media type, base64 data)``.

    Raises:
        GatewayError: 400 ``invalid_image_url`` when it cannot be fetched, is too large or
            is not an image.
    """
    if not url.lower().startswith(("http://", "https://")):
        msg = "Image URLs must be http(s) or data URLs."
        raise GatewayError(400, "invalid_image_url", msg)
    try:
        async with client.stream(
            "GET", url, timeout=FETCH_TIMEOUT, follow_redirects=True
        ) as response:
            if response.status_code != 200:
                msg = f"Fetching the image at `{url}` failed with HTTP {response.status_code}."
                raise GatewayError(400, "invalid_image_url", msg)
            media_type = normalize_media_type(
                response.headers.get("content-type", "").split(";")[0]
            )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    msg = f"The image at `{url}` is larger than {MAX_IMAGE_BYTES} bytes."
                    raise GatewayError(400, "invalid_image_url", msg)
                chunks.append(chunk)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        msg = f"Fetching the image at `{url}` failed: {type(exc).__name__}."
        raise GatewayError(400, "invalid_image_url", msg) from None
    if not media_type.startswith("image/"):
        msg = f"The resource at `{url}` is `{media_type or 'untyped'}`, not an image."
        raise GatewayError(400, "invalid_image_url", msg)
    return media_type, base64.b64encode(b"".join(chunks)).decode()


async def refuse_private_hosts(request: httpx.Request) -> None:
    """Refuse to fetch from loopback, private, link-local or reserved addresses.

    Installed as a request hook on the client that fetches images clients link to, so a
    client cannot make the gateway reach its own network (every redirect is checked too).

    Raises:
        GatewayError: 400 ``invalid_image_url`` naming the refused host.
    """
    host = request.url.host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        msg = f"The image host `{host}` could not be resolved."
        raise GatewayError(400, "invalid_image_url", msg) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            msg = f"Image URLs may not point at the address of `{host}` ({address})."
            raise GatewayError(400, "invalid_image_url", msg)


async def inline_image(client: httpx.AsyncClient, image: Image) -> tuple[str, str]:
    """Return ``(media type, base64 data)`` of a canonical image, fetching it when remote."""
    if image.data is not None:
        return image.media_type, image.data
    if image.url is None:
        msg = "An image part has neither data nor a URL."
        raise GatewayError(400, "invalid_image_url", msg)
    return await fetch_image(client, image.url)

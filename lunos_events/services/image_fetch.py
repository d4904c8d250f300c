"""Fetching an input image from its URL, through the SSRF guard webhooks use.

Every hop is resolved and checked, then connected to at the checked address (TLS still checks the
original name); redirects are followed by hand so that each target is checked again; the body is
capped at the image size limit.
"""

from __future__ import annotations

from urllib.parse import urljoin

import httpx

from lunos_events.errors import InvalidRequest
from lunos_events.services.media_request import image_url_guard
from lunos_events.url_guard import resolve_target

MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)


class InputUnreachable(Exception):
    """An input image URL could not be fetched (refused target, network, HTTP error)."""


class InputInvalid(Exception):
    """An input is not usable (not an image, too large, ...)."""


async def fetch_image(
    url: str, *, allow_private: bool, max_bytes: int, fetch_timeout_seconds: float
) -> bytes:
    guard = image_url_guard(allow_private)
    async with httpx.AsyncClient(timeout=fetch_timeout_seconds, follow_redirects=False) as http:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = await resolve_target(url, allow_private, guard)
            except InvalidRequest as exc:
                raise InputUnreachable(exc.message) from None
            extensions = {"sni_hostname": target.tls_hostname} if target.tls_hostname else {}
            try:
                async with http.stream(
                    "GET", target.url, headers={"host": target.host_header}, extensions=extensions
                ) as response:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECTS and location:
                        url = urljoin(url, location)
                        continue
                    if response.status_code != 200:
                        raise InputUnreachable(f"{url} answered HTTP {response.status_code}")
                    return await _capped_body(response, url, max_bytes)
            except httpx.HTTPError as exc:
                raise InputUnreachable(f"{url} could not be fetched: {type(exc).__name__}: {exc}") from None
    raise InputUnreachable(f"{url} redirects more than {MAX_REDIRECTS} times")


async def _capped_body(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InputInvalid(f"{url} is larger than {max_bytes} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise InputInvalid(f"{url} is larger than {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)

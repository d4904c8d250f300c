"""Odd input from an adversarial review: each once gave a 500 (and a reset connection); now a 4xx JSON.

Every request here goes over one raw keep-alive connection, followed by a request that must be
answered on that same connection: an error never costs the client its connection.
"""

from __future__ import annotations

import base64

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lunos_events.runtime import Runtime, open_runtime
from lunos_events.serving import running_api
from lunos_events.settings import Settings
from tests.conftest import VEO, create_user
from tests.raw_http import RawConnection

pytestmark = pytest.mark.anyio


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def bearer(key: str) -> list[tuple[str, bytes]]:
    return [("Authorization", f"Bearer {key}".encode())]


SURROGATE_PROMPT = f'{{"model": "{VEO}", "prompt": "a cat \\ud800"}}'
SURROGATE_KEY = f'{{"model": "{VEO}", "prompt": "a cat", "\\udfff": 1}}'

# (method, target, extra headers, body): each answered 400 with a JSON error.
BAD_REQUESTS = [
    ("GET", "/v1/video/generations?limit=%C2%B2", [], b""),
    ("GET", "/v1/video/generations?limit=%D9%A3", [], b""),  # ARABIC-INDIC DIGIT THREE
    ("GET", "/v1/webhooks/ep_x/deliveries?limit=%C2%B2", [], b""),
    ("GET", "/v1/video/events?last_event_id=%C2%B2", [], b""),
    ("GET", "/v1/video/events", [("Last-Event-ID", b"\xb2")], b""),
    ("GET", "/v1/video/generations/video-op:odd:1/events", [("Last-Event-ID", b"\xb9")], b""),
    ("GET", "/v1/video/generations/video-op:odd:1/events?last_event_id=%C2%B9", [], b""),
    ("POST", "/v1/video/generations", [("Content-Type", b"application/json")], SURROGATE_PROMPT.encode()),
    (
        "POST",
        "/v1/video/generations",
        [("Content-Type", b"application/json"), ("Idempotency-Key", b"odd-1")],
        SURROGATE_PROMPT.encode(),
    ),
    (
        "POST",
        "/v1/video/generations",
        [("Content-Type", b"application/json"), ("Idempotency-Key", b"odd-2")],
        SURROGATE_KEY.encode(),
    ),
    ("POST", "/v1/webhooks", [], b'{"url": "http://127.0.0.1:9/h", "description": "\\ud800"}'),
    ("POST", "/v1/video/stream-tokens", [], b'{"app_id": "\\ud800"}'),
    ("GET", "/v1/video/generations?after=" + cursor(f"{2**63}:video-op:odd:1"), [], b""),
    ("GET", "/v1/video/generations?after=" + cursor(f"-{2**63 + 1}:video-op:odd:1"), [], b""),
    ("GET", "/v1/video/generations?after=" + cursor("1:video-op:odd:\x001"), [], b""),
    ("GET", "/v1/video/generations?after=" + cursor("\u00b2:video-op:odd:1"), [], b""),
    ("GET", "/v1/usage?since=0001-01-01T00:00:00%2B01:00", [], b""),
    ("GET", "/v1/usage?until=9999-12-31T23:59:59-01:00", [], b""),
    ("GET", "/v1/webhooks/ep_%00", [], b""),
    ("DELETE", "/v1/webhooks/ep_%00", [], b""),
    ("PATCH", "/v1/webhooks/ep_%00", [], b'{"enabled": true}'),
    ("POST", "/v1/webhooks/ep_%00/test", [], b""),
    ("POST", "/v1/webhooks/deliveries/msg_%00/redeliver", [], b""),
    ("GET", "/v1/webhooks/deliveries/msg_%00", [], b""),
    ("GET", "/v1/video/generations/video-op:odd:1%00", [], b""),
]


@pytest.mark.parametrize(("method", "target", "headers", "body"), BAD_REQUESTS)
async def test_odd_input_is_a_4xx_json_error_on_a_connection_that_stays_open(
    service: Runtime, method: str, target: str, headers: list[tuple[str, bytes]], body: bytes
) -> None:
    key = await create_user(service, "odd")
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        await conn.request(method, target, [*bearer(key), *headers], body)
        response = await conn.response()
        assert 400 <= response.status < 500, (response.status, response.body)
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["error"], str)
        # The same connection answers the next request.
        await conn.request("GET", "/healthz", [])
        assert (await conn.response()).status == 200
    finally:
        await conn.close()


async def test_requests_the_server_cannot_parse_get_a_json_400(service: Runtime) -> None:
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        await conn.send(b"GET /v1/video/events HTTP/1.1\r\nHost: test\r\nLast-Event-ID: 1\x01\r\n\r\n")
        response = await conn.response()
        assert (response.status, response.json()) == (400, {"error": "Invalid HTTP request"})
    finally:
        await conn.close()


@pytest.mark.settings(cors_allowed_origins="https://app.example")
async def test_a_refused_preflight_is_a_json_400(service: Runtime) -> None:
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        for origin in (b"https://app.example", b"https://evil.example"):
            await conn.request(
                "OPTIONS",
                "/v1/video/events",
                [("Origin", origin), ("Access-Control-Request-Method", b"GET")],
            )
            response = await conn.response()
            if origin == b"https://app.example":
                assert response.status == 200
            else:
                assert (response.status, response.json()) == (400, {"error": "Disallowed CORS origin"})
                assert response.headers["content-type"] == "application/json"
    finally:
        await conn.close()


@pytest.mark.settings(webhook_allow_private=True)
async def test_a_nul_in_a_stored_text_field_is_refused(service: Runtime) -> None:
    """PostgreSQL refuses a NUL in text: caught as bad input, not met as a database error."""
    key = await create_user(service, "odd")
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        for method, target, body in (
            ("POST", "/v1/webhooks", b'{"url": "http://127.0.0.1:9/h", "description": "a\\u0000b"}'),
            ("POST", "/v1/video/generations", f'{{"model": "{VEO}", "prompt": "a\\u0000b"}}'.encode()),
        ):
            await conn.request(method, target, bearer(key), body)
            response = await conn.response()
            assert response.status == 400, response.body
            assert "NUL" in response.json()["error"]
    finally:
        await conn.close()


async def test_a_bad_range_on_a_video_is_a_json_error(service: Runtime) -> None:
    path = service.storage.path_for("odd/1-abc-video.mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 1000)
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        for value, status in ((b"bytes=\xb2-", 400), (b"pages=1-2", 400), (b"bytes=5000-", 416)):
            await conn.request("GET", "/media/odd/1-abc-video.mp4", [("Range", value)])
            response = await conn.response()
            assert response.status == status, response.body
            assert response.headers["content-type"] == "application/json"
            assert isinstance(response.json()["error"], str)
        assert response.headers["content-range"] == "bytes */1000"
        await conn.request("GET", "/media/odd/1-abc-video.mp4", [("Range", b"bytes=10-19")])
        part = await conn.response()
        assert (part.status, part.body) == (206, b"\0" * 10)
    finally:
        await conn.close()


async def test_the_last_moment_of_the_calendar_is_a_valid_bound(service: Runtime) -> None:
    key = await create_user(service, "odd")
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        await conn.request("GET", "/v1/usage?until=9999-12-31T23:59:59.999999", bearer(key))
        response = await conn.response()
        assert (response.status, response.json()["until"]) == (200, "9999-12-31T23:59:59.999Z")
    finally:
        await conn.close()


async def test_two_authorization_headers_are_refused(service: Runtime) -> None:
    key = await create_user(service, "odd")
    other = await create_user(service, "other")
    conn = await RawConnection.open(service.settings.host, service.settings.port)
    try:
        for target in ("/v1/account", "/v1/video/events"):
            await conn.request("GET", target, [*bearer(key), *bearer(other)])
            response = await conn.response()
            assert (response.status, response.json()) == (
                400,
                {"error": "Send one Authorization header, not several"},
            )
    finally:
        await conn.close()


async def test_an_unexpected_error_is_a_json_500_and_the_connection_stays_open(settings: Settings) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    async with open_runtime(settings) as rt, running_api(settings, rt) as server:
        server.config.app.router.routes.append(Route("/broken", broken))
        conn = await RawConnection.open(settings.host, settings.port)
        try:
            await conn.request("GET", "/broken", [])
            response = await conn.response()
            assert (response.status, response.json()) == (500, {"error": "Internal server error"})
            await conn.request("GET", "/healthz", [])
            assert (await conn.response()).status == 200
        finally:
            await conn.close()

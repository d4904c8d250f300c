"""Property-based tests of every request parser: any input gives a 4xx JSON error or a success.

Hypothesis generates query strings, headers, path segments and bodies (valid-looking ones mixed in,
so success paths run too) and sends them to the real application, with its real Runtime (database,
Redis, lifespan) behind it, through httpx's ASGITransport. Whatever the input, the answer is a 2xx
or 3xx, or a 4xx whose body is `{"error": "<text>"}`; never a 5xx, never an exception. Event-stream
routes are asked with HEAD, which parses and checks everything a GET does and then ends at once.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunos_events.api.app import create_app
from lunos_events.catalog_file import load_catalog
from lunos_events.runtime import open_runtime
from lunos_events.settings import Settings
from tests.conftest import create_user, make_settings

EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


MEDIA_KEY = "fuzzed/1-abc-video.mp4"


@dataclass
class App:
    portal: BlockingPortal
    client: httpx.AsyncClient
    key: str
    operation_id: str

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        send: Callable[[], Awaitable[httpx.Response]] = lambda: self.client.request(method, url, **kwargs)  # noqa: E731
        return self.portal.call(send)

    def auth(self, **extra: str | bytes) -> dict[str, str | bytes]:
        return {"Authorization": f"Bearer {self.key}", **extra}


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    async with open_runtime(settings) as rt:
        app = create_app(settings, rt)
        async with app.router.lifespan_context(app):
            key = await create_user(rt, "fuzzed", balance="100000.00")
            video = rt.storage.path_for(MEDIA_KEY)
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(bytes(range(256)) * 4)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
                submitted = await client.post(
                    "/v1/video/generations",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "google/veo-3.0-generate-preview", "prompt": "a cat"},
                )
                assert submitted.status_code == 200, submitted.text
                yield client, key, submitted.json()["id"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[App]:
    # Private webhook targets allowed: a loopback URL then passes, and the body goes on to be stored.
    settings_ = make_settings(tmp_path_factory.mktemp("fuzz"), redis_url, webhook_allow_private=True)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_app(settings_)) as (
            client,
            key,
            operation_id,
        ),
    ):
        yield App(portal, client, key, operation_id)


def answered(response: httpx.Response) -> None:
    """A success, or a 4xx with a JSON error message: never a 5xx."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json", response.headers
        if response.request.method != "HEAD":
            body = response.json()
            assert isinstance(body, dict) and isinstance(body["error"], str), body


# Text as a client could put it in a URL or a JSON string: any code point, lone surrogates too
# (which st.characters leaves out unless asked).
any_text = st.one_of(
    st.text(st.characters(codec=None), max_size=40),
    st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), max_size=40),
)
digits_of_any_script = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    digits_of_any_script,
    st.from_regex(r"\A\s*[+-]?[0-9_]{1,25}\s*\Z"),
)
query_values = st.one_of(any_text, numbers)
# Header values as they arrive on the wire: any byte but CR, LF and NUL (Latin-1 to the app).
header_bytes = st.binary(max_size=40).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"").strip()
)


def url_encoded(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query(**values: str) -> str:
    return "&".join(f"{name}={url_encoded(value)}" for name, value in values.items())


@EXAMPLES
@given(limit=query_values, after=query_values, status=query_values, app_id=query_values)
def test_the_operation_list_query(app: App, limit: str, after: str, status: str, app_id: str) -> None:
    url = f"/v1/video/generations?{query(limit=limit, after=after, status=status, app_id=app_id)}"
    answered(app.request("GET", url, headers=app.auth()))


@EXAMPLES
@given(cursor=st.one_of(st.binary(max_size=60), any_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_list_cursors(app: App, cursor: bytes) -> None:
    after = base64.urlsafe_b64encode(cursor).rstrip(b"=").decode()
    answered(app.request("GET", f"/v1/video/generations?after={after}", headers=app.auth()))


moments = st.one_of(
    any_text,
    st.builds(
        lambda moment, offset: moment.isoformat() + offset,
        # The calendar's ends, where an offset pushes a moment out of it, come up often.
        st.one_of(st.datetimes(), st.sampled_from([datetime.min, datetime.max])),
        st.sampled_from(["", "Z", "+00:00", "+14:00", "-23:59", "+23:59:59.999999", "-00:30"]),
    ),
    st.dates().map(str),
)


@EXAMPLES
@given(since=moments, until=moments, app_id=query_values)
def test_the_usage_query(app: App, since: str, until: str, app_id: str) -> None:
    answered(
        app.request("GET", f"/v1/usage?{query(since=since, until=until, app_id=app_id)}", headers=app.auth())
    )


@EXAMPLES
@given(limit=query_values, endpoint=any_text, delivery=any_text)
def test_the_webhook_reads(app: App, limit: str, endpoint: str, delivery: str) -> None:
    for url in (
        f"/v1/webhooks/{url_encoded(endpoint)}/deliveries?{query(limit=limit)}",
        f"/v1/webhooks/{url_encoded(endpoint)}",
        f"/v1/webhooks/deliveries/{url_encoded(delivery)}",
    ):
        answered(app.request("GET", url, headers=app.auth()))


@EXAMPLES
@given(
    last_event_id=st.one_of(header_bytes, numbers.map(lambda n: n.encode("utf-8"))),
    query_id=query_values,
    app_id=st.one_of(header_bytes, query_values.map(lambda t: t.encode("utf-8", "surrogatepass"))),
    token=query_values,
    operation=any_text,
)
def test_the_event_stream_parameters(
    app: App, last_event_id: bytes, query_id: str, app_id: bytes, token: str, operation: str
) -> None:
    headers = {"Last-Event-ID": last_event_id, "X-App-ID": app_id}
    for url in (
        f"/v1/video/events?{query(last_event_id=query_id)}",
        f"/v1/video/generations/{app.operation_id}/events?{query(last_event_id=query_id)}",
        f"/v1/video/generations/{url_encoded(operation)}/events",
    ):
        answered(app.request("HEAD", url, headers=app.auth(**headers)))
        answered(
            app.request("HEAD", f"{url}{'&' if '?' in url else '?'}{query(token=token)}", headers=headers)
        )


ranges = st.one_of(
    header_bytes,
    st.builds(
        lambda unit, parts: f"{unit}={','.join(parts)}".encode(),
        st.sampled_from(["bytes", "BYTES", "pages", ""]),
        st.lists(
            st.builds(
                lambda a, b: f"{a}-{b}", st.one_of(numbers, st.just("")), st.one_of(numbers, st.just(""))
            ),
            max_size=4,
        ),
    ),
)


@EXAMPLES
@given(value=ranges, if_range=st.one_of(st.none(), header_bytes))
def test_ranges_of_a_stored_video(app: App, value: bytes, if_range: bytes | None) -> None:
    headers = {"Range": value, **({"If-Range": if_range} if if_range is not None else {})}
    answered(app.request("GET", f"/media/{MEDIA_KEY}", headers=headers))


@EXAMPLES
@given(
    authorization=st.lists(header_bytes, max_size=3),
    idempotency_key=header_bytes,
    app_id=header_bytes,
    content_length=header_bytes,
)
def test_request_headers(
    app: App, authorization: list[bytes], idempotency_key: bytes, app_id: bytes, content_length: bytes
) -> None:
    headers = [(b"Authorization", value) for value in authorization]
    headers += [(b"Idempotency-Key", idempotency_key), (b"X-App-ID", app_id)]
    if content_length.isdigit():
        headers.append((b"Content-Length", content_length))
    answered(app.request("GET", "/v1/account", headers=headers))
    answered(app.request("POST", "/v1/video/generations", headers=headers, content=b"{}"))


CATALOG_IDS = sorted(model.id for model in load_catalog(None).models)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
prompts = st.one_of(any_text.filter(lambda t: t.strip()), st.just("a cat"), json_values)
parameters = st.fixed_dictionaries(
    {},
    optional={
        "aspectRatio": st.one_of(st.sampled_from(["16:9", "9:16", "1:1"]), json_values),
        "durationSeconds": st.one_of(st.sampled_from([4, 6, 8, 8.0, True]), json_values),
        "resolution": st.one_of(st.sampled_from(["720p", "1080p"]), json_values),
        "seed": st.one_of(st.integers(min_value=-1, max_value=2**33), json_values),
        "negativePrompt": st.one_of(any_text, json_values),
        "personGeneration": st.one_of(st.sampled_from(["allow_adult", "dont_allow"]), json_values),
    },
)
submit_bodies = st.one_of(
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(CATALOG_IDS), json_values)},
        optional={
            "prompt": prompts,
            "parameters": st.one_of(parameters, json_values),
            "response_format": st.one_of(st.just("mp4"), json_values),
            "appId": json_values,
            "webhook": st.one_of(st.sampled_from(["http://127.0.0.1:9/h", "ftp://x/", "nope"]), json_values),
            "webhook_events_filter": json_values,
        },
    ),
    json_values,
)


def encoded(body: Any) -> bytes:
    # ensure_ascii writes a lone surrogate as its \\u escape, as a client's JSON encoder would.
    return json.dumps(body).encode()


@EXAMPLES
@given(
    body=submit_bodies,
    idempotency_key=st.one_of(st.none(), st.text(string.ascii_letters, min_size=1, max_size=8)),
)
def test_submit_bodies(app: App, body: Any, idempotency_key: str | None) -> None:
    headers = app.auth(**({"Idempotency-Key": idempotency_key} if idempotency_key else {}))
    answered(app.request("POST", "/v1/video/generations", headers=headers, content=encoded(body)))


@EXAMPLES
@given(
    prompt=any_text,
    negative_prompt=any_text,
    app_id=any_text,
    idempotency_key=st.one_of(st.none(), st.text(string.ascii_letters, min_size=1, max_size=8)),
)
def test_submit_text_fields(
    app: App, prompt: str, negative_prompt: str, app_id: str, idempotency_key: str | None
) -> None:
    """A well-formed submit whose text fields hold anything (the other fields are valid)."""
    body = {
        "model": CATALOG_IDS[0],
        "prompt": f"a cat {prompt}",
        "parameters": {"negativePrompt": negative_prompt},
        "appId": app_id,
    }
    headers = app.auth(**({"Idempotency-Key": idempotency_key} if idempotency_key else {}))
    answered(app.request("POST", "/v1/video/generations", headers=headers, content=encoded(body)))


@EXAMPLES
@given(raw=st.one_of(st.binary(max_size=200), any_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_raw_bodies(app: App, raw: bytes) -> None:
    for method, url in (
        ("POST", "/v1/video/generations"),
        ("POST", "/v1/webhooks"),
        ("POST", "/v1/video/stream-tokens"),
        ("PATCH", "/v1/webhooks/ep_unknown"),
    ):
        answered(app.request(method, url, headers=app.auth(), content=raw))


webhook_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "url": st.one_of(
                st.sampled_from(["http://127.0.0.1:9/h", "https://127.0.0.1/x", "nope"]), json_values
            ),
            "events": st.one_of(
                st.lists(st.sampled_from(["video.completed", "video.failed", "x"])), json_values
            ),
            "app_id": json_values,
            "description": json_values,
            "enabled": json_values,
        },
    ),
    json_values,
)


@EXAMPLES
@given(body=webhook_bodies, token_body=json_values)
def test_webhook_and_token_bodies(app: App, body: Any, token_body: Any) -> None:
    created = app.request("POST", "/v1/webhooks", headers=app.auth(), content=encoded(body))
    answered(created)
    if created.status_code == 201:
        endpoint = created.json()["id"]
        answered(app.request("PATCH", f"/v1/webhooks/{endpoint}", headers=app.auth(), content=encoded(body)))
        answered(app.request("DELETE", f"/v1/webhooks/{endpoint}", headers=app.auth()))
    answered(app.request("POST", "/v1/video/stream-tokens", headers=app.auth(), content=encoded(token_body)))

"""Sending calls with retries: one retry policy, run by a sync and an async transport.

Retried: network errors, 429 and 5xx, with exponential backoff, or after exactly the `Retry-After`
the server sent. Never retried: a call that is not safe to repeat (a POST without an
Idempotency-Key), since a lost answer does not mean the server did nothing.
"""

from __future__ import annotations

import random
import time
from itertools import count
from typing import TypeVar

import anyio
import httpx

from lunos_client.calls import Call
from lunos_client.config import ClientConfig
from lunos_client.errors import (
    APIConnectionError,
    APIError,
    error_from_response,
    retry_after_seconds,
)

Failure = httpx.TransportError | APIError
T = TypeVar("T")


class RetryPolicy:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so many clients do not come back at the same instant."""
        ceiling = min(self.config.max_backoff_seconds, self.config.backoff_seconds * 2.0**attempt)
        return ceiling * (0.5 + random.random() / 2)

    def next_delay(
        self, call: Call[object], attempt: int, failure: Failure, retry_after: float | None
    ) -> float:
        """Seconds to wait before attempt `attempt + 1`; raises the typed error when not retrying."""
        error = failure if isinstance(failure, APIError) else _connection_error(call, failure)
        retryable = (
            isinstance(failure, httpx.TransportError) or failure.status == 429 or failure.status >= 500
        )
        if not retryable or not call.retry_safe or attempt >= self.config.max_retries:
            raise error from (failure if isinstance(failure, httpx.TransportError) else None)
        if retry_after is not None:
            if retry_after > self.config.max_retry_after_seconds:
                raise error
            return retry_after
        return self.backoff(attempt)


def _connection_error(call: Call[object], exc: httpx.TransportError) -> APIConnectionError:
    return APIConnectionError(f"{call.method} {call.url}: {type(exc).__name__}: {exc}".rstrip(": "))


class _TransportBase:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.policy = RetryPolicy(config)
        self._origin = httpx.URL(config.base_url)

    def _headers(self, url: httpx.URL, call: Call[object]) -> dict[str, str]:
        # The API key goes to the API's own origin only: never to a storage host serving videos,
        # nor to another host named in an events_url (those carry their own token).
        same_origin = (url.scheme, url.host, url.port) == (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        )
        base = self.config.headers() if same_origin else {}
        return {**base, **call.headers}

    def _url(self, call: Call[object]) -> httpx.URL:
        if call.url.startswith(("http://", "https://")):
            return httpx.URL(call.url)
        return httpx.URL(self.config.base_url + call.url)

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: Call[object]) -> httpx.Request:
        url = self._url(call)
        timeout = call.timeout if call.timeout is not None else self.config.timeout
        return http.build_request(
            call.method,
            url,
            params=call.params,
            json=call.json,
            headers=self._headers(url, call),
            timeout=timeout,
        )

    @staticmethod
    def _failure(response: httpx.Response) -> tuple[APIError, float | None]:
        return error_from_response(response), retry_after_seconds(response)


class SyncTransport(_TransportBase):
    def __init__(self, config: ClientConfig, http: httpx.Client | None = None) -> None:
        super().__init__(config)
        self.http = http or httpx.Client(timeout=config.timeout)

    def open(self, call: Call[object]) -> httpx.Response:
        """A successful response with its body not yet read; the caller closes it."""
        for attempt in count():
            retry_after = None
            try:
                response = self.http.send(self._request(self.http, call), stream=True)
            except httpx.TransportError as exc:
                failure: Failure = exc
            else:
                if response.is_success:
                    return response
                try:
                    response.read()
                except httpx.TransportError as exc:
                    failure = exc
                else:
                    failure, retry_after = self._failure(response)
                finally:
                    response.close()
            time.sleep(self.policy.next_delay(call, attempt, failure, retry_after))
        raise AssertionError("unreachable")

    def send(self, call: Call[T]) -> T:
        """Run a call and parse its answer."""
        response = self.open(call)
        try:
            response.read()
        except httpx.TransportError as exc:
            raise _connection_error(call, exc) from exc
        finally:
            response.close()
        return call.parse(response)

    def close(self) -> None:
        self.http.close()


class AsyncTransport(_TransportBase):
    def __init__(self, config: ClientConfig, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(config)
        self.http = http or httpx.AsyncClient(timeout=config.timeout)

    async def open(self, call: Call[object]) -> httpx.Response:
        """A successful response with its body not yet read; the caller closes it."""
        for attempt in count():
            retry_after = None
            try:
                response = await self.http.send(self._request(self.http, call), stream=True)
            except httpx.TransportError as exc:
                failure: Failure = exc
            else:
                if response.is_success:
                    return response
                try:
                    await response.aread()
                except httpx.TransportError as exc:
                    failure = exc
                else:
                    failure, retry_after = self._failure(response)
                finally:
                    await response.aclose()
            await anyio.sleep(self.policy.next_delay(call, attempt, failure, retry_after))
        raise AssertionError("unreachable")

    async def send(self, call: Call[T]) -> T:
        """Run a call and parse its answer."""
        response = await self.open(call)
        try:
            await response.aread()
        except httpx.TransportError as exc:
            raise _connection_error(call, exc) from exc
        finally:
            await response.aclose()
        return call.parse(response)

    async def close(self) -> None:
        await self.http.aclose()

"""Reading request bodies: bounded in size, JSON objects only."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from lunos_events.errors import InvalidRequest, PayloadTooLarge
from lunos_events.numerals import ascii_int


async def read_json_object(
    request: Request,
    limit: int,
    *,
    larger_limit: int | None = None,
    allows_larger: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The body as a JSON object of at most `limit` bytes, or of at most `larger_limit` bytes when
    `allows_larger(body)` says it may be (a submit carrying images)."""
    ceiling = max(limit, larger_limit or limit)
    _check_declared(request.headers.get("content-length"), ceiling)
    raw = await _read_chunks(request.stream(), ceiling)
    if len(raw) <= limit:
        return _json_object(raw)
    try:
        body = _json_object(raw)
    except InvalidRequest:
        raise _too_large(limit) from None
    if allows_larger is None or not allows_larger(body):
        raise _too_large(limit)
    return body


def _check_declared(content_length: str | None, limit: int) -> None:
    declared = ascii_int(content_length or "")
    if declared is not None and declared > limit:
        raise _too_large(limit)


async def _read_chunks(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large (at most {limit} bytes)")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        # Decoded here, strictly: given bytes, json.loads lets UTF-8-encoded surrogates through.
        body = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        raise InvalidRequest("Request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(raw) is not None and _has_lone_surrogate(body):
        raise InvalidRequest("Request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)")
    return body


# Strict UTF-8 has no surrogates, so a lone one can only come from a `\uD8xx`-`\uDFxx` escape:
# bodies without one skip the check. Python keeps such a string as it is, and it fails the
# first time it is encoded as UTF-8: in a hash, a log line or the database.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(body: dict[str, Any]) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


async def read_fields(
    request: Request,
    limit: int,
    *,
    larger_limit: int | None = None,
    allows_larger: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """A JSON object, or the fields of a `multipart/form-data` body (what the `openai` SDK sends).

    A JSON body is read as `read_json_object` reads it. A form may be as large as `larger_limit`
    (its files cannot be looked at before it is read); files are handed back as they are, for the
    caller to refuse or use as `Upload`s, and the form is bounded in number of parts.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await read_json_object(request, limit, larger_limit=larger_limit, allows_larger=allows_larger)
    limit = max(limit, larger_limit or limit)
    _check_declared(request.headers.get("content-length"), limit)
    # Read (bounded) first: the form parser alone would spool a file part of any size to disk.
    body = await _read_chunks(request.stream(), limit)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=4, max_fields=32, max_part_size=limit)
    try:
        return {
            name: Upload(await value.read(), value.content_type) if isinstance(value, UploadFile) else value
            for name, value in form.items()
        }
    finally:
        await form.close()


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a form, read (it is within the body's bound)."""

    data: bytes
    content_type: str | None

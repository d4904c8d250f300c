"""An operation's media inputs, kept in storage (not in its database row) so any process can resume it.

The document is the request's own shape (`image`, `lastFrame`, `referenceImages`, `video`), with
images as base64 data or, until the worker fetched them, URLs; `video` also names the stored key of
the video it extends. Its key is in the operation's `parameters.inputs`.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from typing import Any

import anyio

from lunos_events.ids import random_token
from lunos_events.media.images import ImageProblem, check_image, sniff_image_type
from lunos_events.providers.base import InputImage, MediaInputs, ReferenceImage
from lunos_events.services.image_fetch import InputInvalid, fetch_image
from lunos_events.services.media_request import ImageSource, MediaRequest
from lunos_events.storage.base import VideoStorage

INPUTS_CONTENT_TYPE = "application/json"
# In an operation's `parameters`: the storage key of its media inputs.
INPUTS = "inputs"


def stored_inputs(parameters: dict[str, Any] | None) -> str | None:
    """The storage key of an operation's media inputs, if it has any."""
    key = (parameters or {}).get(INPUTS)
    return key if isinstance(key, str) else None


class InputsMissing(Exception):
    """The operation's stored inputs (or the video it extends) are no longer in storage."""


def inputs_key(account_id: str) -> str:
    return f"{account_id}/inputs/{random_token(16)}.json"


def _image_doc(image: ImageSource) -> dict[str, str]:
    if image.url is not None:
        return {"url": image.url}
    assert image.data is not None and image.mime_type is not None
    return {"data": b64encode(image.data).decode(), "mimeType": image.mime_type}


def inputs_document(media: MediaRequest, video_key: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if media.image is not None:
        doc["image"] = _image_doc(media.image)
    if media.last_frame is not None:
        doc["lastFrame"] = _image_doc(media.last_frame)
    if media.reference_images:
        doc["referenceImages"] = [
            {"image": _image_doc(image), "referenceType": kind} for image, kind in media.reference_images
        ]
    if media.video_operation is not None:
        doc["video"] = {"operationId": media.video_operation, "key": video_key}
    return doc


async def save_inputs(storage: VideoStorage, key: str, doc: dict[str, Any]) -> None:
    await storage.put(key, json.dumps(doc).encode(), INPUTS_CONTENT_TYPE)


async def read_inputs(storage: VideoStorage, key: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(await storage.read(key))
    except FileNotFoundError:
        raise InputsMissing(f"the stored inputs {key} are missing") from None
    return doc


def _image_slots(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(where, holder, field) of every image in the document."""
    slots: list[tuple[str, dict[str, Any], str]] = [
        (f"parameters.{name}", doc, name) for name in ("image", "lastFrame") if name in doc
    ]
    for index, entry in enumerate(doc.get("referenceImages", [])):
        slots.append((f"parameters.referenceImages[{index}].image", entry, "image"))
    return slots


async def fetch_inputs(
    storage: VideoStorage, key: str, *, allow_private: bool, max_bytes: int, fetch_timeout_seconds: float
) -> None:
    """Fetch every image still given as a URL, check it, and store it as data in its place.

    Raises InputUnreachable (it could not be fetched) or InputInvalid (not a usable image).
    """
    doc = await read_inputs(storage, key)
    fetched = False
    for where, holder, field in _image_slots(doc):
        url = holder[field].get("url")
        if url is None:
            continue
        data = await fetch_image(
            url, allow_private=allow_private, max_bytes=max_bytes, fetch_timeout_seconds=fetch_timeout_seconds
        )
        mime_type = sniff_image_type(data)
        if mime_type is None:
            raise InputInvalid(f"{where}: {url} is not a PNG, JPEG or WebP image")
        try:
            await anyio.to_thread.run_sync(check_image, data, mime_type)
        except ImageProblem as exc:
            raise InputInvalid(f"{where}: {url} {exc}") from None
        holder[field] = {"data": b64encode(data).decode(), "mimeType": mime_type}
        fetched = True
    if fetched:
        await save_inputs(storage, key, doc)


def _input_image(value: dict[str, str]) -> InputImage:
    if "data" not in value:
        raise InputInvalid("an image URL was not fetched before the start")
    return InputImage(b64decode(value["data"]), value["mimeType"])


async def load_media(storage: VideoStorage, key: str) -> MediaInputs:
    """The provider's view of the stored inputs: image bytes, and the bytes of the video to extend."""
    doc = await read_inputs(storage, key)
    video = doc.get("video")
    return MediaInputs(
        image=_input_image(doc["image"]) if "image" in doc else None,
        last_frame=_input_image(doc["lastFrame"]) if "lastFrame" in doc else None,
        reference_images=tuple(
            ReferenceImage(_input_image(e["image"]), e["referenceType"])
            for e in doc.get("referenceImages", [])
        ),
        video=await _read_video(storage, video["key"]) if video else None,
    )


async def _read_video(storage: VideoStorage, key: str) -> bytes:
    try:
        return await storage.read(key)
    except FileNotFoundError:
        raise InputsMissing(f"the video to extend ({key}) is missing") from None

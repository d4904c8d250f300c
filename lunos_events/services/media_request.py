"""The media inputs of a submit: `image`, `lastFrame`, `referenceImages` and `video` under `parameters`.

Parsing is checked against the model's catalog entry (an input it does not accept is a 400 naming
it). Images come as `{"data": base64, "mimeType": ...}`, decoded and checked before anything is
charged, or as `{"url": "https://..."}`, whose host is checked now and which the worker fetches.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from lunos_events.catalog import ModelSpec
from lunos_events.errors import InvalidRequest
from lunos_events.media.images import IMAGE_FORMATS, ImageProblem, check_image
from lunos_events.url_guard import Guard, resolve_target

MAX_REFERENCE_IMAGES = 3
# image, lastFrame and the reference images: the most images one submit carries.
MAX_IMAGES = 2 + MAX_REFERENCE_IMAGES


def largest_submit_bytes(max_body_bytes: int, max_image_bytes: int, images: int = MAX_IMAGES) -> int:
    """The largest submit body carrying images: larger by a base64 image per image it may carry.
    Proxies in front of the API let bodies up to this through."""
    per_image = (max_image_bytes + 2) // 3 * 4 + 1024
    return max_body_bytes + images * per_image


MEDIA_FIELDS = ("image", "lastFrame", "referenceImages", "video")
IMAGE_URLS = Guard("image url", ("https",), "LUNOS_INPUT_URL_ALLOW_PRIVATE")
# With private targets allowed (development, tests), plain http is allowed too.
DEV_IMAGE_URLS = Guard("image url", ("http", "https"), "LUNOS_INPUT_URL_ALLOW_PRIVATE")


def image_url_guard(allow_private: bool) -> Guard:
    return DEV_IMAGE_URLS if allow_private else IMAGE_URLS


@dataclass(frozen=True)
class ImageSource:
    """One input image as the request gave it: its bytes (checked) or a URL (fetched later)."""

    field: str  # where the request put it, for messages: "parameters.lastFrame"
    data: bytes | None = None
    mime_type: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class MediaRequest:
    image: ImageSource | None = None
    last_frame: ImageSource | None = None
    reference_images: tuple[tuple[ImageSource, str], ...] = ()
    video_operation: str | None = None  # the id of the completed operation to extend

    def images(self) -> list[ImageSource]:
        listed = [i for i in (self.image, self.last_frame) if i is not None]
        return listed + [image for image, _ in self.reference_images]

    @property
    def empty(self) -> bool:
        return not (self.images() or self.video_operation)

    @property
    def fetches(self) -> bool:
        """Whether an image has to be fetched (by the worker) before the generation can start."""
        return any(i.url is not None for i in self.images())


NO_MEDIA = MediaRequest()


def parse_media(model: ModelSpec, parameter: Callable[[str], Any], max_image_bytes: int) -> MediaRequest:
    """The media inputs the request names; 400 for one the model does not accept or a malformed one."""
    given = {name: parameter(name) for name in MEDIA_FIELDS}
    for name, value in given.items():
        if value is not None and name not in model.inputs:
            raise InvalidRequest(f"Model {model.id} does not accept '{name}'")
    if given["lastFrame"] is not None and given["image"] is None:
        raise InvalidRequest("Field 'lastFrame' needs 'image' (the first frame) as well")
    video = given["video"]
    if video is not None and any(given[n] is not None for n in ("image", "lastFrame", "referenceImages")):
        raise InvalidRequest("Field 'video' (an extension) cannot be combined with image inputs")
    image = _image(given["image"], "parameters.image", max_image_bytes)
    last_frame = _image(given["lastFrame"], "parameters.lastFrame", max_image_bytes)
    references = _references(model, given["referenceImages"], max_image_bytes)
    operation = None
    if video is not None:
        if not isinstance(video, dict) or set(video) != {"operationId"}:
            raise InvalidRequest('Field \'video\' must be {"operationId": "video-op:..."}')
        operation = video["operationId"]
        if not isinstance(operation, str) or not operation:
            raise InvalidRequest("Field 'video.operationId' must be a non-empty string")
    return MediaRequest(image, last_frame, references, operation)


def _references(model: ModelSpec, value: Any, max_bytes: int) -> tuple[tuple[ImageSource, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REFERENCE_IMAGES:
        raise InvalidRequest(f"Field 'referenceImages' must be a list of 1 to {MAX_REFERENCE_IMAGES} objects")
    references = []
    for index, entry in enumerate(value):
        where = f"parameters.referenceImages[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"image", "referenceType"}:
            raise InvalidRequest(f'Field \'{where}\' must be {{"image": ..., "referenceType": ...}}')
        kind = entry.get("referenceType", model.reference_types[0])
        if kind not in model.reference_types:
            allowed = ", ".join(model.reference_types)
            raise InvalidRequest(f"Unsupported {where}.referenceType {kind!r}: this model allows {allowed}")
        image = _image(entry.get("image"), f"{where}.image", max_bytes)
        if image is None:
            raise InvalidRequest(f"Field '{where}.image' is required")
        references.append((image, kind))
    return tuple(references)


def _image(value: Any, where: str, max_bytes: int) -> ImageSource | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f'Field \'{where}\' must be an object: {{"data", "mimeType"}} or {{"url"}}')
    if set(value) == {"url"}:
        if not isinstance(value["url"], str):
            raise InvalidRequest(f"Field '{where}.url' must be a string")
        return ImageSource(where, url=value["url"])
    if set(value) != {"data", "mimeType"}:
        raise InvalidRequest(f'Field \'{where}\' must be {{"data", "mimeType"}} or {{"url"}}')
    mime_type = value["mimeType"]
    if mime_type not in IMAGE_FORMATS:
        raise InvalidRequest(f"Unsupported {where}.mimeType {mime_type!r}: use {', '.join(IMAGE_FORMATS)}")
    encoded = value["data"]
    if not isinstance(encoded, str) or not encoded:
        raise InvalidRequest(f"Field '{where}.data' must be a non-empty base64 string")
    if len(encoded) > (max_bytes + 2) // 3 * 4 + 4:  # refused before decoding it
        raise InvalidRequest(f"Field '{where}' is larger than {max_bytes} bytes")
    try:
        data = b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"Field '{where}.data' is not valid base64") from None
    if len(data) > max_bytes:
        raise InvalidRequest(f"Field '{where}' is larger than {max_bytes} bytes")
    return ImageSource(where, data=data, mime_type=mime_type)


async def check_media(media: MediaRequest, *, allow_private: bool) -> None:
    """Decode every image given as data, and check the host of every image URL; 400 on the first
    problem. Runs before anything is charged."""
    for image in media.images():
        if image.url is not None:
            await resolve_target(image.url, allow_private, image_url_guard(allow_private))
            continue
        assert image.data is not None and image.mime_type is not None
        try:
            await anyio.to_thread.run_sync(check_image, image.data, image.mime_type)
        except ImageProblem as exc:
            raise InvalidRequest(f"Field '{image.field}' {exc}") from None

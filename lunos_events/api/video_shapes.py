"""OpenAI's Videos API shapes (as the `openai` package's `types/video*.py` define them), mapped onto
this service's operations: the request to a submit body, an operation to a `video` object.

Status words: `pending` is `queued`, `processing` is `in_progress`, `completed` stays, and `failed`
and `cancelled` are both `failed` (with an error code).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from lunos_events.catalog import Catalog
from lunos_events.errors import InvalidRequest, ModelNotFound
from lunos_events.ids import now_ms
from lunos_events.media.images import IMAGE_FORMATS, sniff_image_type
from lunos_events.services.timing import running_progress
from lunos_events.store.models import CANCELLED, COMPLETED, PENDING, PROCESSING, Operation

# `input_reference` is the first frame: an upload, or `{"image_url": "https://…" | "data:image/…;base64,…"}`.
DATA_URL = re.compile(r"data:(image/[a-z]+);base64,(.*)", re.DOTALL)
MISSING_PROMPT = "Missing required field: prompt"
# OpenAI sizes are width x height; each is an aspect ratio at a resolution.
SIZES: dict[str, tuple[str, str]] = {
    "1280x720": ("16:9", "720p"),
    "720x1280": ("9:16", "720p"),
    "1920x1080": ("16:9", "1080p"),
    "1080x1920": ("9:16", "1080p"),
}
SIZE_OF = {shape: size for size, shape in SIZES.items()}
VARIANTS = ("video", "thumbnail")


def submit_body(fields: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """The submit body (`POST /v1/video/generations` shape) of an OpenAI create request.

    The model's rules (durations, aspect ratios, resolutions, prompt length) are then checked by
    the same parser as every submit.
    """
    prompt = fields.get("prompt")
    if prompt is None or prompt == "":
        raise InvalidRequest(MISSING_PROMPT)
    model_id = fields.get("model") or catalog.models[0].id
    if not isinstance(model_id, str):
        raise InvalidRequest("Field 'model' must be a string")
    model = catalog.get(model_id)
    if model is None:
        raise ModelNotFound()
    parameters: dict[str, Any] = {}
    seconds = fields.get("seconds")
    if seconds is not None:
        allowed = ", ".join(str(d) for d in model.durations)
        if not isinstance(seconds, str | int) or str(seconds) not in {str(d) for d in model.durations}:
            raise InvalidRequest(f"Unsupported seconds {seconds!r}: this model allows {allowed}")
        parameters["durationSeconds"] = int(seconds)
    image = first_frame(fields.get("input_reference", fields.get("input_reference[image_url]")))
    if image is not None:
        parameters["image"] = image
    size = fields.get("size")
    if size is not None:
        shape = SIZES.get(size) if isinstance(size, str) else None
        offered = [s for s, (ratio, res) in SIZES.items() if _offers(model, ratio, res)]
        if shape is None or not _offers(model, *shape):
            raise InvalidRequest(f"Unsupported size {size!r}: this model allows {', '.join(offered)}")
        parameters["aspectRatio"] = shape[0]
        if model.resolutions:
            parameters["resolution"] = shape[1]
    return {"model": model_id, "prompt": prompt, "parameters": parameters, "response_format": "mp4"}


def uploaded_image(data: bytes, content_type: str | None) -> dict[str, str]:
    """An uploaded `input_reference` file as OpenAI's reference object, with a data URL. Its type is
    the upload's when that is an image type taken here, else what its bytes start like."""
    mime_type = content_type if content_type in IMAGE_FORMATS else sniff_image_type(data)
    if mime_type is None:
        raise InvalidRequest(f"'input_reference' must be an image: {', '.join(IMAGE_FORMATS)}")
    return {"image_url": f"data:{mime_type};base64,{base64.b64encode(data).decode()}"}


def first_frame(reference: Any) -> dict[str, str] | None:
    """`input_reference` as the submit's `image` (checked then like every submitted image)."""
    if reference is None or reference == "":
        return None
    url = reference.get("image_url") if isinstance(reference, dict) else reference
    if isinstance(reference, dict) and "file_id" in reference and url is None:
        raise InvalidRequest("'input_reference.file_id' is not supported: upload the image or use image_url")
    if not isinstance(url, str) or not url:
        raise InvalidRequest('\'input_reference\' must be an image file or {"image_url": "..."}')
    if data_url := DATA_URL.fullmatch(url):
        return {"data": data_url.group(2), "mimeType": data_url.group(1)}
    return {"url": url}


def _offers(model: Any, ratio: str, resolution: str) -> bool:
    resolutions = model.resolutions or ("720p",)
    return ratio in model.aspect_ratios and resolution in resolutions


def openai_status(op: Operation, run_seconds: float) -> tuple[str, int]:
    """(status, progress): progress is services/progress.py's estimate against `run_seconds`."""
    if op.status == COMPLETED:
        return "completed", 100
    if op.status == PENDING:
        return "queued", 0
    if op.status == PROCESSING:
        started = op.started_at_ms or op.created_at_ms
        return "in_progress", running_progress(started, run_seconds, now_ms())
    return "failed", 0


def video_object(op: Operation, run_seconds: float) -> dict[str, Any]:
    status, progress = openai_status(op, run_seconds)
    params = op.parameters
    shape = (params.get("aspectRatio", "16:9"), params.get("resolution") or "720p")
    error = None
    if status == "failed":
        code = "cancelled" if op.status == CANCELLED else (op.error_code or "generation_failed")
        error = {"code": code, "message": op.error or ("Cancelled" if op.status == CANCELLED else "Failed")}
    return {
        "id": op.id,
        "object": "video",
        "created_at": op.created_at_ms // 1000,
        "completed_at": op.completed_at_ms // 1000 if op.completed_at_ms else None,
        "expires_at": None,
        "error": error,
        "model": op.model,
        "progress": progress,
        "prompt": op.prompt,
        "remixed_from_video_id": None,
        "seconds": str(params.get("durationSeconds", "")),
        "size": SIZE_OF.get(shape, "x".join(shape)),
        "status": status,
    }


def parse_order(value: str | None) -> bool:
    """`order` of a list: True for ascending; newest first (`desc`) is the default."""
    if value is None or value in ("", "desc"):
        return False
    if value == "asc":
        return True
    raise InvalidRequest("'order' must be 'asc' or 'desc'")


def parse_variant(value: str | None) -> str:
    if value is None or value == "":
        return "video"
    if value not in VARIANTS:
        raise InvalidRequest(f"'variant' must be one of: {', '.join(VARIANTS)}")
    return value

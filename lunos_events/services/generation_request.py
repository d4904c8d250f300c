"""Validation of a submit body into a GenerationRequest. Every bad input becomes a clear InvalidRequest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lunos_events.catalog import Catalog, ModelSpec
from lunos_events.errors import InvalidRequest, ModelNotFound
from lunos_events.services.media_request import NO_MEDIA, MediaRequest, parse_media
from lunos_events.services.webhook_fanout import RequestWebhook, parse_request_webhook

MISSING_FIELDS = "Missing required fields: model and prompt"
SUPPORTED_FORMATS = ("mp4",)
MAX_APP_ID_CHARS = 128
MAX_SEED = 2**32 - 1
DEFAULT_MAX_IMAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class GenerationRequest:
    model: ModelSpec
    prompt: str
    aspect_ratio: str
    duration_seconds: int
    negative_prompt: str | None
    response_format: str
    app_id: str | None
    webhook: RequestWebhook | None = None
    # Optional model parameters beyond the reference document (resolution, seed, personGeneration,
    # generateAudio, enhancePrompt).
    options: dict[str, Any] = field(default_factory=dict)
    sample_count: int = 1
    media: MediaRequest = NO_MEDIA

    @property
    def cost_cents(self) -> int:
        """What the request costs: price (of its resolution's tier) x seconds x samples."""
        return self.model.cost_cents(self.duration_seconds, self.options.get("resolution"), self.sample_count)


# Optional in `parameters`: not started at the provider by then (seconds after the submit), the
# operation fails, refunded, with nothing billed upstream.
START_DEADLINE = "startDeadlineSeconds"
MAX_START_DEADLINE_SECONDS = 86_400


def parse_generation_request(
    body: dict[str, Any],
    catalog: Catalog,
    *,
    max_prompt_chars: int,
    header_app_id: str | None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> GenerationRequest:
    """Check the fields in the order the reference document lists its errors: 400, then 404, then 400."""
    model_id, prompt = body.get("model"), body.get("prompt")
    if model_id is None or prompt is None or model_id == "":
        raise InvalidRequest(MISSING_FIELDS)
    if not isinstance(model_id, str):
        raise InvalidRequest("Field 'model' must be a string")
    prompt = text_field(prompt, "prompt", max_prompt_chars)
    if not prompt.strip():
        raise InvalidRequest("Field 'prompt' must not be empty")
    model = catalog.get(model_id)
    if model is None:
        raise ModelNotFound()

    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict):
        raise InvalidRequest("Field 'parameters' must be an object")

    def parameter(name: str) -> Any:
        # Some clients send aspectRatio/negativePrompt at the top level; `parameters` wins.
        value = parameters.get(name)
        return body.get(name) if value is None else value

    aspect_ratio = parameter("aspectRatio")
    if aspect_ratio is None:
        aspect_ratio = model.aspect_ratios[0]
    elif not isinstance(aspect_ratio, str) or aspect_ratio not in model.aspect_ratios:
        raise InvalidRequest(
            f"Unsupported aspectRatio {aspect_ratio!r}: supported values are {', '.join(model.aspect_ratios)}"
        )

    negative_prompt = parameter("negativePrompt")
    if negative_prompt is not None:
        negative_prompt = text_field(negative_prompt, "negativePrompt", max_prompt_chars) or None

    media = parse_media(model, parameter, max_image_bytes)
    # An extension adds seconds to a video: its own set of durations.
    durations = model.extension_durations if media.video_operation else model.durations
    duration = parameter("durationSeconds")
    if duration is None:
        duration = durations[0] if media.video_operation else model.default_duration_seconds
    elif type(duration) is not int or duration not in durations:
        allowed = ", ".join(str(d) for d in durations)
        what = "an extension by this model adds" if media.video_operation else "this model allows"
        raise InvalidRequest(f"Unsupported durationSeconds {duration!r}: {what} {allowed}")

    sample_count = parameter("sampleCount")
    if sample_count is None:
        sample_count = 1
    elif type(sample_count) is not int or not 1 <= sample_count <= model.max_samples:
        raise InvalidRequest(
            f"Field 'sampleCount' must be an integer from 1 to {model.max_samples} for this model"
        )

    response_format = body.get("response_format")
    if response_format is None:
        response_format = SUPPORTED_FORMATS[0]
    elif response_format not in SUPPORTED_FORMATS:
        raise InvalidRequest(f"Unsupported response_format {response_format!r}: only mp4 is supported")

    return GenerationRequest(
        model=model,
        prompt=prompt,
        aspect_ratio=aspect_ratio,
        duration_seconds=duration,
        negative_prompt=negative_prompt,
        response_format=response_format,
        app_id=parse_app_id(header_app_id if header_app_id is not None else body.get("appId")),
        webhook=parse_request_webhook(body),
        options=parse_model_options(model, parameter),
        sample_count=sample_count,
        media=media,
    )


def parse_model_options(model: ModelSpec, parameter: Any) -> dict[str, Any]:
    """The optional parameters this model accepts; anything it does not accept is a 400."""
    options: dict[str, Any] = {}
    for name, allowed in (("resolution", model.resolutions), ("personGeneration", model.person_generation)):
        value = parameter(name)
        if value is None:
            continue
        if not allowed:
            raise InvalidRequest(f"Model {model.id} does not accept '{name}'")
        if not isinstance(value, str) or value not in allowed:
            raise InvalidRequest(f"Unsupported {name} {value!r}: this model allows {', '.join(allowed)}")
        options[name] = value
    seed = parameter("seed")
    if seed is not None:
        if not model.accepts_seed:
            raise InvalidRequest(f"Model {model.id} does not accept 'seed'")
        if type(seed) is not int or not 0 <= seed <= MAX_SEED:
            raise InvalidRequest(f"Field 'seed' must be an integer from 0 to {MAX_SEED}")
        options["seed"] = seed
    for name in ("generateAudio", "enhancePrompt"):
        flag = parameter(name)
        if flag is None:
            continue
        if name not in model.options:
            raise InvalidRequest(f"Model {model.id} does not accept '{name}'")
        if not isinstance(flag, bool):
            raise InvalidRequest(f"Field '{name}' must be true or false")
        options[name] = flag
    start_deadline = parameter(START_DEADLINE)
    if start_deadline is not None:
        if type(start_deadline) is not int or not 1 <= start_deadline <= MAX_START_DEADLINE_SECONDS:
            raise InvalidRequest(
                f"Field '{START_DEADLINE}' must be an integer from 1 to {MAX_START_DEADLINE_SECONDS}"
            )
        options[START_DEADLINE] = start_deadline
    return options


def parse_app_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest("The app id (X-App-ID header or appId field) must be a string")
    if len(value) > MAX_APP_ID_CHARS or not value.isprintable():
        raise InvalidRequest(f"The app id must be at most {MAX_APP_ID_CHARS} printable characters")
    return value


def text_field(value: Any, name: str, max_chars: int) -> str:
    """A string field of a body: at most `max_chars`, and no NUL (which PostgreSQL cannot store)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"Field '{name}' must be a string")
    if len(value) > max_chars:
        raise InvalidRequest(f"Field '{name}' is too long (at most {max_chars} characters)")
    if "\x00" in value:
        raise InvalidRequest(f"Field '{name}' must not contain NUL characters")
    return value

"""Google Veo through the google-genai SDK (async client, Vertex AI mode).

google-genai 3.x implements `generate_videos` only in Vertex AI mode: it POSTs
`…/publishers/google/models/{model}:predictLongRunning` and polls with
`…/models/{model}:fetchPredictOperation`. The finished operation carries the video inline
(base64) or as a URI. No SDK type leaves this module.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from lunos_events.errors import PROVIDER_LOST, SAFETY_FILTERED
from lunos_events.providers.base import (
    Done,
    Failed,
    GenerationJob,
    InputImage,
    Pending,
    ProviderBusy,
    ProviderCredentialRefused,
    ProviderResult,
    ProviderStartError,
    ProviderTransientError,
)

log = logging.getLogger(__name__)

# Timeouts and server errors may pass; anything else will fail again the same way. A start is not
# retried on 429 (quota): the operation waits in the queue rather than holding the submit.
START_RETRYABLE_STATUS_CODES = [408, 500, 502, 503, 504]
BUSY_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
REFUSED_CREDENTIAL_CODES = frozenset({401, 403})
SAFETY_BLOCKED = "The video was blocked by the provider's safety filters"
UNKNOWN_OPERATION = "The provider no longer knows this video generation"
NO_VIDEO = "The provider finished without returning a video"


@dataclass(frozen=True)
class VeoConfig:
    api_key: str | None
    project: str | None
    location: str | None
    base_url: str | None
    start_attempts: int
    retry_initial_seconds: float
    retry_max_seconds: float
    request_timeout_seconds: float


class VeoProvider:
    """Stateless between calls: the stored operation name is all any process needs to poll."""

    def __init__(self, config: VeoConfig, work_dir: Path) -> None:
        self._config = config
        self._work_dir = work_dir
        # Project + location (application default credentials) wins over an express-mode API key,
        # as in the SDK; the two are mutually exclusive in its initializer.
        http_options = types.HttpOptions(
            base_url=config.base_url, timeout=int(config.request_timeout_seconds * 1000)
        )
        if config.project:
            self._client = genai.Client(
                vertexai=True,
                project=config.project,
                location=config.location or "global",
                http_options=http_options,
            )
        else:
            self._client = genai.Client(vertexai=True, api_key=config.api_key, http_options=http_options)
        self._downloads = httpx.AsyncClient(timeout=config.request_timeout_seconds, follow_redirects=True)

    async def start(self, job: GenerationJob) -> str:
        retry = types.HttpRetryOptions(
            attempts=self._config.start_attempts,
            initial_delay=self._config.retry_initial_seconds,
            max_delay=self._config.retry_max_seconds,
            http_status_codes=START_RETRYABLE_STATUS_CODES,
        )
        options = job.options
        media = await job.load_media()
        references = [
            types.VideoGenerationReferenceImage(
                image=_image(r.image),
                reference_type=types.VideoGenerationReferenceType(r.reference_type.upper()),
            )
            for r in media.reference_images
        ]
        config = types.GenerateVideosConfig(
            number_of_videos=job.sample_count,
            aspect_ratio=job.aspect_ratio,
            duration_seconds=job.duration_seconds,
            negative_prompt=job.negative_prompt,
            resolution=options.get("resolution"),
            seed=options.get("seed"),
            person_generation=options.get("personGeneration"),
            generate_audio=options.get("generateAudio"),
            enhance_prompt=options.get("enhancePrompt"),
            last_frame=_image(media.last_frame) if media.last_frame else None,
            reference_images=references or None,
            http_options=types.HttpOptions(retry_options=retry),
        )
        source = types.GenerateVideosSource(
            prompt=job.prompt,
            image=_image(media.image) if media.image else None,
            # An extension: the video to continue, sent inline like the images.
            video=types.Video(video_bytes=media.video, mime_type="video/mp4") if media.video else None,
        )
        try:
            operation = await self._client.aio.models.generate_videos(
                model=job.provider_model, source=source, config=config
            )
        except genai_errors.APIError as exc:
            raise _start_error(exc) from exc
        except Exception as exc:  # any SDK, HTTP or network failure means "not started"
            raise ProviderStartError(f"Veo refused to start: {_describe(exc)}") from exc
        if not operation.name:
            raise ProviderStartError("Veo returned an operation without a name")
        return operation.name

    async def poll(self, operation_name: str, job: GenerationJob) -> ProviderResult:
        # One attempt per poll: tracking itself polls again later, so a retry here only holds a job slot.
        once = types.GetOperationConfig(
            http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))
        )
        try:
            # model_validate, not the constructor: `name` is declared on the SDK's non-pydantic
            # `Operation` base, so the pydantic mypy plugin does not see it as an __init__ argument.
            operation = await self._client.aio.operations.get(
                types.GenerateVideosOperation.model_validate({"name": operation_name}), config=once
            )
        except genai_errors.APIError as exc:
            if exc.code == 404:
                return Failed(UNKNOWN_OPERATION, code=PROVIDER_LOST)
            raise ProviderTransientError(_describe(exc)) from exc
        except Exception as exc:
            raise ProviderTransientError(_describe(exc)) from exc

        if not operation.done:
            return Pending()
        if operation.error:
            message = operation.error.get("message") or "unknown error"
            return Failed(f"Video generation failed at the provider: {message}")
        return await self._finished(operation.response)

    async def _finished(self, response: types.GenerateVideosResponse | None) -> ProviderResult:
        """Every returned sample, in order; a safety failure when Google filtered all of them."""
        videos = [v.video for v in (response.generated_videos or []) if v.video] if response else []
        if not videos:
            if response and response.rai_media_filtered_count:
                reasons = tuple(response.rai_media_filtered_reasons or [])
                return Failed(
                    f"{SAFETY_BLOCKED}: {'; '.join(reasons)}" if reasons else f"{SAFETY_BLOCKED}.",
                    code=SAFETY_FILTERED,
                    safety_reasons=reasons,
                    filtered_count=response.rai_media_filtered_count,
                )
            return Failed(NO_VIDEO)
        for video in videos:
            # gs:// output only appears when a storageUri is requested, which this provider never does.
            if not video.video_bytes and not (video.uri and video.uri.startswith(("https://", "http://"))):
                return Failed(f"The provider returned the video at an unsupported location ({video.uri})")
        paths: list[Path] = []
        try:
            for video in videos:
                if video.video_bytes:
                    paths.append(await anyio.to_thread.run_sync(self._write, video.video_bytes))
                else:
                    paths.append(await self._download(video.uri or ""))
        except BaseException:
            for path in paths:
                path.unlink(missing_ok=True)
            raise
        return Done(tuple(paths))

    def _temp_file(self) -> Path:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".mp4", dir=self._work_dir)
        os.close(handle)
        return Path(name)

    def _write(self, data: bytes) -> Path:
        path = self._temp_file()
        path.write_bytes(data)
        return path

    async def _download(self, uri: str) -> Path:
        path = self._temp_file()
        try:
            async with self._downloads.stream("GET", uri) as response:
                response.raise_for_status()
                async with await anyio.open_file(path, "wb") as out:
                    async for chunk in response.aiter_bytes(1024 * 1024):
                        await out.write(chunk)
        except httpx.HTTPError as exc:
            path.unlink(missing_ok=True)
            raise ProviderTransientError(f"download of the finished video failed: {exc}") from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def aclose(self) -> None:
        await self._downloads.aclose()
        await self._client.aio.aclose()


def _image(image: InputImage) -> types.Image:
    return types.Image(image_bytes=image.data, mime_type=image.mime_type)


def _start_error(exc: genai_errors.APIError) -> ProviderStartError:
    """What a refused start means: wait (quota, outage), drop the credential, or fail the job."""
    message = f"Veo refused to start: {_describe(exc)}"
    if exc.code in BUSY_STATUS_CODES:
        return ProviderBusy(message)
    if exc.code in REFUSED_CREDENTIAL_CODES:
        return ProviderCredentialRefused(message)
    return ProviderStartError(message)


def _describe(exc: Exception) -> str:
    if isinstance(exc, genai_errors.APIError):
        return f"{exc.code} {exc.status or ''} {exc.message or ''}".strip()
    return f"{type(exc).__name__}: {exc}"

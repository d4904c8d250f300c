"""`client.video`: the methods whose logic the sync and async clients share.

Each method here builds a call (or a submit body) and hands it to `_send`, which the sync resource
runs at once and the async one returns as an awaitable: so `client.video.get_video_status(id)`
returns a `VideoStatus` on `LunosClient` and an awaitable of one on `AsyncLunosClient`.
"""

from __future__ import annotations

from typing import Any

from lunos_client import calls
from lunos_client.calls import Call
from lunos_client.models import DEFAULT_MODEL, MP4, WIDESCREEN, ImageInput, MediaOptions, generation_body


class VideoAPI:
    def _send(self, call: Call[object]) -> Any:
        raise NotImplementedError

    def generate_video(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        response_format: str | None = None,
        duration_seconds: int | None = None,
        app_id: str | None = None,
        idempotency_key: str | None = None,
        extra: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        image: ImageInput | None = None,
        last_frame: ImageInput | None = None,
        reference_images: list[ImageInput | tuple[ImageInput, str]] | None = None,
        video: str | None = None,
        sample_count: int | None = None,
        generate_audio: bool | None = None,
        enhance_prompt: bool | None = None,
        resolution: str | None = None,
        seed: int | None = None,
        person_generation: str | None = None,
    ) -> Any:
        """Submit a generation → `VideoGeneration` (pending). Safe to retry: it always carries an
        Idempotency-Key (`idempotency_key`, or a fresh one kept across this call's retries).

        `parameters` takes the REST body's object as is (`generate_video(model=..., prompt=...,
        parameters={"aspectRatio": "16:9"})`); the named options are added to it. Images are bytes
        (sent as base64), a URL string, or the API's dict; `video` is a completed operation's id
        to extend."""
        media = MediaOptions(
            image,
            last_frame,
            reference_images,
            video,
            sample_count,
            generate_audio,
            enhance_prompt,
            resolution,
            seed,
            person_generation,
        )
        body = generation_body(
            prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            response_format=response_format,
            duration_seconds=duration_seconds,
            extra=extra,
            parameters=parameters,
            media=media,
        )
        return self._send(calls.submit(body, idempotency_key=idempotency_key, app_id=app_id))

    def estimate(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        parameters: dict[str, Any] | None = None,
        app_id: str | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        duration_seconds: int | None = None,
        **media: Any,
    ) -> Any:
        """What `generate_video` with the same arguments would cost, and whether it would be refused
        (`{"cost", "accepted", "refused", ...}`); nothing is charged. `media`: generate_video's
        image, last_frame, reference_images, video, sample_count, … options."""
        body = generation_body(
            prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            duration_seconds=duration_seconds,
            parameters=parameters,
            media=MediaOptions(**media),
        )
        return self._send(calls.estimate(body, app_id=app_id))

    def generate(self, prompt: str, **options: Any) -> Any:
        """Submit with the default model unless `model=` says otherwise (`generate_video`'s options)."""
        return self.generate_video(prompt, **options)

    def generate_widescreen(self, prompt: str, **options: Any) -> Any:
        """Submit a 16:9 video."""
        return self.generate_video(prompt, **{**options, "aspect_ratio": WIDESCREEN})

    def generate_mp4(self, prompt: str, **options: Any) -> Any:
        """Submit with `response_format` mp4."""
        return self.generate_video(prompt, **{**options, "response_format": MP4})

    def get_video_status(self, operation_id: str, app_id: str | None = None) -> Any:
        """The operation's current `VideoStatus`."""
        return self._send(calls.status(operation_id, app_id=app_id))

    def cancel(self, operation_id: str, *, idempotency_key: str | None = None) -> Any:
        """Cancel a pending generation → its `VideoStatus` (`POST …/{id}/cancel`)."""
        return self._send(calls.cancel(operation_id, idempotency_key=idempotency_key))

    def delete(self, operation_id: str) -> Any:
        """Delete an ended generation's video → its `VideoStatus` (`deleted`, no `video_url`).

        `DELETE /v1/video/generations/{id}`; a pending one raises ConflictError (cancel it first).
        """
        return self._send(calls.delete(operation_id))

    def list(
        self,
        *,
        status: str | None = None,
        app_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Any:
        """One `VideoPage` of the account's generations, newest first; `after=page.next_after` for more."""
        return self._send(calls.list_generations(status=status, app_id=app_id, limit=limit, after=after))

    def _stream_call(self, operation_id: str | None, app_id: str | None) -> Call[None]:
        if operation_id is None:
            return calls.account_events(app_id)
        return calls.operation_events(operation_id)

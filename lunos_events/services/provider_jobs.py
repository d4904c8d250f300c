"""What a provider is handed for an operation: its job, with the stored media inputs and credential."""

from __future__ import annotations

from lunos_events.providers.base import GenerationJob, MediaInputs, MediaLoader, no_media
from lunos_events.services.input_store import load_media, stored_inputs
from lunos_events.services.lifecycle import NewOperation
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import Operation

START_FAILED = "Failed to start video generation"
# Stored in `parameters` next to the documented fields and handed to the provider as options.
MODEL_OPTIONS = ("resolution", "seed", "personGeneration", "generateAudio", "enhancePrompt")
# In `parameters`: whether the worker starts the operation (after fetching image URLs) rather than
# the submit.
STARTS_IN_WORKER = "startsInWorker"


def media_loader(storage: VideoStorage, op: Operation | NewOperation) -> MediaLoader:
    """Loads the operation's stored media inputs when a provider asks for them."""
    key = stored_inputs(op.parameters)
    if key is None:
        return no_media

    async def load() -> MediaInputs:
        return await load_media(storage, key)

    return load


def provider_job(
    op: Operation | NewOperation, load_media: MediaLoader = no_media, credential: str | None = None
) -> GenerationJob:
    """`credential`: the one starting it; unset, the one recorded on a stored operation (to poll it)."""
    params = op.parameters
    if credential is None and isinstance(op, Operation):
        credential = op.provider_credential
    return GenerationJob(
        credential=credential,
        sample_count=params.get("sampleCount", 1),
        load_media=load_media,
        operation_id=op.id,
        provider_model=op.provider_model,
        prompt=op.prompt,
        aspect_ratio=params["aspectRatio"],
        duration_seconds=params["durationSeconds"],
        negative_prompt=params.get("negativePrompt"),
        options={name: params[name] for name in MODEL_OPTIONS if params.get(name) is not None},
    )

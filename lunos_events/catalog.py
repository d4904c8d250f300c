"""The model catalog: public model ids, provider ids, prices and durations. Data, not code branches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from lunos_events.money import CURRENCY, format_amount


class PublicModel(TypedDict):
    """A model as `GET /v1/models` lists it."""

    id: str
    description: str
    price_per_second: str
    currency: str
    default_duration_seconds: int
    durations: list[int]
    aspect_ratios: list[str]
    resolutions: list[str]
    person_generation: list[str]
    accepts_seed: bool


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider_model: str
    price_per_second_cents: int
    default_duration_seconds: int
    durations: tuple[int, ...]
    aspect_ratios: tuple[str, ...] = ("16:9",)
    description: str = ""
    # Optional parameters beyond the reference document; an empty tuple means "not accepted".
    resolutions: tuple[str, ...] = ()
    person_generation: tuple[str, ...] = ()
    accepts_seed: bool = False

    def cost_cents(self, duration_seconds: int) -> int:
        return self.price_per_second_cents * duration_seconds

    def public_view(self) -> PublicModel:
        return {
            "id": self.id,
            "description": self.description,
            "price_per_second": format_amount(self.price_per_second_cents),
            "currency": CURRENCY,
            "default_duration_seconds": self.default_duration_seconds,
            "durations": list(self.durations),
            "aspect_ratios": list(self.aspect_ratios),
            "resolutions": list(self.resolutions),
            "person_generation": list(self.person_generation),
            "accepts_seed": self.accepts_seed,
        }


_PEOPLE = ("allow_adult", "dont_allow")
_VEO3_DURATIONS = (4, 6, 8)
_VEO3_ASPECTS = ("16:9", "9:16")
_VEO3_RESOLUTIONS = ("720p", "1080p")


def _veo3(model: str, cents_per_second: int, description: str) -> ModelSpec:
    return ModelSpec(
        id=f"google/{model}",
        provider_model=model,
        price_per_second_cents=cents_per_second,
        default_duration_seconds=8,
        durations=_VEO3_DURATIONS,
        aspect_ratios=_VEO3_ASPECTS,
        description=description,
        resolutions=_VEO3_RESOLUTIONS,
        person_generation=_PEOPLE,
        accepts_seed=True,
    )


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="google/veo-3.0-generate-preview",
        provider_model="veo-3.0-generate-preview",
        price_per_second_cents=40,
        default_duration_seconds=8,
        durations=(8,),
        description="Google Veo 3.0 (preview): 8-second 16:9 videos with audio.",
        resolutions=("720p",),
        person_generation=_PEOPLE,
        accepts_seed=True,
    ),
    _veo3("veo-3.0-generate-001", 40, "Google Veo 3.0: 4-8 second videos with audio, up to 1080p."),
    _veo3("veo-3.0-fast-generate-001", 15, "Google Veo 3.0 Fast: quicker, cheaper 4-8 second videos."),
    _veo3("veo-3.1-generate-001", 40, "Google Veo 3.1: 4-8 second videos with audio, up to 1080p."),
    _veo3("veo-3.1-fast-generate-001", 15, "Google Veo 3.1 Fast: quicker, cheaper 4-8 second videos."),
)


@dataclass(frozen=True)
class Catalog:
    models: tuple[ModelSpec, ...] = DEFAULT_MODELS
    _by_id: dict[str, ModelSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {m.id: m for m in self.models})

    def get(self, model_id: str) -> ModelSpec | None:
        return self._by_id.get(model_id)

"""The model catalog: public model ids, provider ids, prices and durations. Data, not code branches."""

from __future__ import annotations

from dataclasses import dataclass, field

from lunos_events.money import CURRENCY, format_amount


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider_model: str
    price_per_second_cents: int
    default_duration_seconds: int
    durations: tuple[int, ...]
    aspect_ratios: tuple[str, ...] = ("16:9",)
    description: str = ""

    def cost_cents(self, duration_seconds: int) -> int:
        return self.price_per_second_cents * duration_seconds

    def public_view(self) -> dict:
        return {
            "id": self.id,
            "description": self.description,
            "price_per_second": format_amount(self.price_per_second_cents),
            "currency": CURRENCY,
            "default_duration_seconds": self.default_duration_seconds,
            "durations": list(self.durations),
            "aspect_ratios": list(self.aspect_ratios),
        }


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="google/veo-3.0-generate-preview",
        provider_model="veo-3.0-generate-preview",
        price_per_second_cents=40,
        default_duration_seconds=8,
        durations=(8,),
        description="Google Veo 3.0 (preview): 8-second 16:9 videos with audio.",
    ),
)


@dataclass(frozen=True)
class Catalog:
    models: tuple[ModelSpec, ...] = DEFAULT_MODELS
    _by_id: dict[str, ModelSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {m.id: m for m in self.models})

    def get(self, model_id: str) -> ModelSpec | None:
        return self._by_id.get(model_id)

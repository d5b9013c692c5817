"""Request and response bodies of the REST API (Pydantic models, with examples for the OpenAPI page).

Requests refuse unknown fields (``extra="forbid"``), so a misspelt ``desciption`` is a 422
rather than a silently ignored field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, model_validator
from pydantic_core import PydanticCustomError

MAX_DESIGNATION_CHARS = 5_000
MAX_DESCRIPTION_CHARS = 100_000
DEFAULT_TOP_K = 5

NO_INPUT_MESSAGE = "a product needs a designation, a description or an image: all are missing or empty"

EXAMPLE_PRODUCT = {
    "designation": "Piscine tubulaire ronde 3,05 x 0,76 m",
    "description": "Piscine hors-sol avec pompe de filtration, montage facile sans outils.",
}
EXAMPLE_PREDICTION = {
    "code": 2583,
    "name": "Aquatique",
    "probability": 0.912,
    "top": [
        {"code": 2583, "name": "Aquatique", "probability": 0.912, "by_modality": {"text": 0.912}},
        {"code": 2582, "name": "Décoration", "probability": 0.031, "by_modality": {"text": 0.031}},
    ],
    "modalities": {"text": [{"code": 2583, "name": "Aquatique", "probability": 0.912}]},
    "words": [{"word": "piscine", "weight": 0.62}, {"word": "filtration", "weight": 0.21}],
    "has_image": False,
    "needs_review": False,
    "warnings": [],
}


def has_text(value: str | None) -> bool:
    """True when ``value`` holds something other than whitespace."""
    return bool(value and value.strip())


class ProductIn(BaseModel):
    """One product to classify: some text, a photo, or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [EXAMPLE_PRODUCT, {"designation": "Lot de 3 figurines Pokémon"}]},
    )

    designation: str | None = Field(
        None, max_length=MAX_DESIGNATION_CHARS, description="Product title.",
        examples=["Piscine tubulaire ronde 3,05 x 0,76 m"],
    )
    description: str | None = Field(
        None, max_length=MAX_DESCRIPTION_CHARS, description="Longer description (HTML is cleaned).",
        examples=["Piscine hors-sol avec pompe de filtration."],
    )
    image_base64: str | None = Field(
        None,
        description="Product photo (JPEG, PNG, WebP...), base64-encoded; a `data:image/...;base64,` prefix "
        "is accepted. Subject to the server's image size limit (see GET /v1/model).",
        examples=[None],
    )

    @model_validator(mode="after")
    def _needs_some_input(self, info: ValidationInfo) -> "ProductIn":
        uploaded = bool(info.context and info.context.get("has_upload"))
        if not (has_text(self.designation) or has_text(self.description) or self.image_base64 or uploaded):
            raise PydanticCustomError("missing_input", NO_INPUT_MESSAGE)
        return self


def batch_model(max_batch: int) -> type[BaseModel]:
    """The batch request body for a server that accepts at most ``max_batch`` products per call."""
    return create_model(
        "BatchIn",
        __config__=ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"products": [EXAMPLE_PRODUCT, {"designation": "Manette sans fil PS4"}]}]},
        ),
        __doc__=f"Up to {max_batch} products, classified in one vectorised call.",
        products=(list[ProductIn], Field(min_length=1, max_length=max_batch,
                                         description=f"1 to {max_batch} products.")),
    )


class ClassScore(BaseModel):
    """A product type code, its French name and a probability."""

    code: int = Field(examples=[2583])
    name: str = Field(examples=["Aquatique"])
    probability: float = Field(ge=0, le=1, examples=[0.912])


class RankedClass(ClassScore):
    """One of the top-k classes, with the probability each modality alone gives it."""

    by_modality: dict[str, float] = Field(
        description="Probability of this class from each component the model used alone (`text`, `image`, "
        "...; image components only for products whose photo was used).",
        examples=[{"text": 0.93, "image": 0.71}],
    )


class WordWeight(BaseModel):
    """A word of the product text and how much it pushed towards the predicted class."""

    word: str
    weight: float


class PredictionOut(BaseModel):
    """The predicted class, the top-k, each modality's own top-k and the words behind the text."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PREDICTION]})

    code: int = Field(description="Predicted product type code (`prdtypecode`).")
    name: str = Field(description="French name of the predicted code.")
    probability: float = Field(ge=0, le=1)
    top: list[RankedClass]
    modalities: dict[str, list[ClassScore]] = Field(description="Each component's own top-k (`text`, `image`...).")
    words: list[WordWeight] = Field(description="Words of the text that pushed towards the prediction.")
    has_image: bool = Field(description="Whether the photo was used.")
    needs_review: bool | None = Field(
        None, description="True when the confidence is below the threshold measured at training for 95% precision "
        "(send the product to a person); null when the model has no measured threshold.")
    warnings: list[str] = Field(default_factory=list, description="Input the model could not use, e.g. a photo "
                                "sent to a text-only model.")


class BatchOut(BaseModel):
    """Predictions in the order of the products sent."""

    predictions: list[PredictionOut]


class CategoryOut(BaseModel):
    """One product type of the taxonomy."""

    code: int = Field(examples=[2583])
    name: str = Field(examples=["Aquatique"])
    group: str | None = Field(examples=["jardin"], description="Coarse family of codes.")
    in_model: bool = Field(description="Whether the served model can predict this code.")


class CategoriesOut(BaseModel):
    """The taxonomy the served model predicts into."""

    categories: list[CategoryOut]


class LimitsOut(BaseModel):
    """What this server accepts."""

    max_batch: int
    max_image_bytes: int
    max_body_bytes: int
    max_top_k: int
    max_image_pixels: int | None = Field(None, description="Largest accepted photo in pixels (width x height)")
    max_concurrent_decodes: int | None = Field(None, description="Requests with photos decoded at once per worker; "
                                               "others wait, then get 503")
    body_timeout_s: float | None = Field(None, description="Seconds to send a whole request body (else 408)")


class ModelOut(BaseModel):
    """The served model: versions, training data fingerprint, metrics, recipe and server limits."""

    prodcat_version: str = Field(description="Version of prodcat serving the model.")
    saved_with: dict[str, str] = Field(description="Library versions the bundle was saved with.")
    created: str | None
    preset: str | None
    components: list[str] = Field(examples=[["text", "image"]], description="The model's components.")
    component_kinds: dict[str, str] = Field(examples=[{"text": "text", "image": "image"}],
                                            description="Kind of each component: text, image or early_fusion.")
    accepts_images: bool
    n_classes: int
    training: dict[str, Any] = Field(description="Training size, data fingerprint (SHA-256), fit time.")
    fingerprint: str | None = Field(description="SHA-256 of the training texts and labels.")
    metrics: dict[str, Any] = Field(description="Metrics recorded at training (e.g. validation weighted F1).")
    spec: dict[str, Any] = Field(description="The model recipe (preset with overrides).")
    limits: LimitsOut


class HealthOut(BaseModel):
    """Liveness: the process answers."""

    status: str = Field(examples=["ok"])


class ReadyOut(BaseModel):
    """Readiness: the model is loaded and warmed up."""

    status: str = Field(examples=["ready"])
    fingerprint: str | None = None


class ErrorOut(BaseModel):
    """An error with a message that says what is wrong."""

    detail: str = Field(examples=["image_base64: not an image (send a JPEG, PNG, WebP, GIF, BMP or TIFF photo)"])

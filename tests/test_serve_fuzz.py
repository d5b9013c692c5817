"""Fuzz the REST API from its own OpenAPI schema (schemathesis): never a 5xx, answers match the schema.

Every operation is fuzzed with schema-valid data and, where it takes input, with schema-violating
data (which must get a 4xx). Bounded: a few dozen examples per operation and media type.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from prodcat.data.sample import build_demo_table
from prodcat.predictor import ProductClassifier
from prodcat.serve.api import create_app

EXAMPLES_PER_CASE = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema():
    table = build_demo_table(n_train=300, n_test=27, seed=11)
    train = table[table["split"] == "train"]
    model = ProductClassifier(progress=False).fit(train, train["prdtypecode"])
    app = create_app(model, max_batch=4, max_image_bytes=20_000, max_body_bytes=100_000)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def fuzz(operation, mode: GenerationMode, media_type: str | None) -> dict[int, int]:
    """Run ``EXAMPLES_PER_CASE`` generated requests; returns how many got each status."""
    statuses: dict[int, int] = {}

    @given(case=operation.as_strategy(generation_mode=mode, media_type=media_type))
    @settings(max_examples=EXAMPLES_PER_CASE, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    def run(case) -> None:
        response = case.call()
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)
        if mode is GenerationMode.NEGATIVE:
            assert 400 <= response.status_code < 500, (
                f"schema-violating request got {response.status_code}: {response.text[:300]}")

    run()
    return statuses


def test_api_never_fails_with_a_server_error(api_schema) -> None:
    seen: dict[str, dict[int, int]] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        media_types = api_schema.get_request_payload_content_types(operation) if operation.body else [None]
        takes_input = bool(operation.body or operation.query)
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,)
        for mode in modes:
            for media_type in media_types:
                seen[f"{operation.label} {mode.value} {media_type}"] = fuzz(operation, mode, media_type)
    labels = " ".join(seen)
    for path in ("/health", "/ready", "/v1/categories", "/v1/model", "/v1/predict/batch"):
        assert path in labels
    for media_type in ("application/json", "multipart/form-data"):
        assert f"POST /v1/predict positive {media_type}" in seen
    # the fuzzer reached the model, not only the validators
    assert any(200 in statuses for label, statuses in seen.items() if "POST /v1/predict " in label)

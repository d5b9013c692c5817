"""The API's documentation pages work offline (their assets are served locally; Swagger UI renders in
headless Chromium with every other host unreachable) and ``GET /metrics`` speaks Prometheus."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from _browser import CHROMIUM, colour_share, free_port, screenshot, wait_for
from prodcat.data.sample import build_demo_table
from prodcat.predictor import ProductClassifier
from prodcat.serve.api import create_app

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def model() -> ProductClassifier:
    table = build_demo_table(n_train=300, n_test=27, seed=5)
    train = table[table["split"] == "train"]
    model = ProductClassifier(progress=False).fit(train, train["prdtypecode"])
    model.metrics_ = {"validation": {"n": 40, "review": {"n": 40, "targets": {
        "0.95": {"target": 0.95, "threshold": THRESHOLD, "coverage": 0.5, "accuracy": 0.95, "n_auto": 20},
        "0.98": None}}}}
    return model


@pytest.fixture(scope="module")
def client(model) -> TestClient:
    with TestClient(create_app(model, max_batch=8)) as client:
        yield client


def test_docs_pages_load_their_assets_from_this_server(client) -> None:
    for page, asset_names in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", html)
        assert urls, html
        assert not [u for u in urls if re.match(r"(https?:)?//", u)], f"{page} loads from another host: {urls}"
        for name in asset_names:
            assert f"/static/docs/{name}" in html
            asset = client.get(f"/static/docs/{name}")
            assert asset.status_code == 200 and len(asset.content) > 100_000, name
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_latency_classes_and_reviews(model) -> None:
    with TestClient(create_app(model, max_batch=8)) as client:
        answers = [client.post("/v1/predict", json={"designation": title}).json() for title in
                   ("Piscine tubulaire ronde avec pompe", "Manette sans fil PS4 noire")]
        answers += client.post("/v1/predict/batch", json={"products": [
            {"designation": "Harry Potter édition poche"}, {"designation": "Lit enfant en bois"},
            {"designation": "Drone 4K avec caméra"}]}).json()["predictions"]
        assert client.post("/v1/predict", json={"designation": ""}).status_code == 422
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    route = lambda path, status: ("prodcat_http_requests_total",  # noqa: E731
                                  (("method", "POST"), ("route", path), ("status", status)))
    assert samples[route("/v1/predict", "200")] == 2
    assert samples[route("/v1/predict", "422")] == 1
    assert samples[route("/v1/predict/batch", "200")] == 1
    assert samples[("prodcat_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/predict")))] == 3
    assert samples[("prodcat_http_request_duration_seconds_sum", (("method", "POST"), ("route", "/v1/predict")))] > 0
    by_class = {dict(labels)["code"]: value for (name, labels), value in samples.items()
                if name == "prodcat_predictions_total"}
    expected: dict[str, int] = {}
    for answer in answers:
        expected[str(answer["code"])] = expected.get(str(answer["code"]), 0) + 1
    assert by_class == expected
    flags = [answer["needs_review"] for answer in answers]
    assert flags == [answer["probability"] < THRESHOLD for answer in answers]
    assert samples[("prodcat_predictions_needs_review_total", ())] == sum(flags)
    assert samples[("prodcat_review_share", ())] == pytest.approx(sum(flags) / len(flags))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_swagger_ui_renders_offline_in_chromium(model, tmp_path) -> None:
    bundle = model.save(tmp_path / "model")
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "prodcat.cli", "serve", "--model", str(bundle), "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/ready", 60)
        shot = tmp_path / "docs.png"
        seen = screenshot(f"http://127.0.0.1:{port}/docs", shot, tmp_path / "profile",
                          ready="document.querySelectorAll('.swagger-ui .opblock').length >= 7")
    finally:
        server.terminate()
        server.wait(20)
        log.close()
    assert seen["requests"] and all(url.startswith(f"http://127.0.0.1:{port}/") or url.startswith("data:")
                                    for url in seen["requests"]), seen["requests"]
    image = np.asarray(Image.open(shot).convert("RGB"))
    # Swagger UI paints GET operations blue and POST operations green; a blank page has neither
    assert colour_share(image, "#61affe", 20) > 0.001 and colour_share(image, "#49cc90", 20) > 0.001
    assert (image.min(axis=2) < 120).any(axis=1).mean() > 0.15  # text on many rows

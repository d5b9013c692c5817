"""Photos through the API and the demonstrator, with text + image and image-only models (in memory, never on disk)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

pytest.importorskip("onnxruntime")

from prodcat.data.io import load_official  # noqa: E402
from prodcat.data.sample import make_demo_dataset  # noqa: E402
from prodcat.predictor import ProductClassifier  # noqa: E402
from prodcat.serve import launch, webdata  # noqa: E402
from prodcat.serve.api import create_app  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-image")
    paths = make_demo_dataset(root / "data", n_train=200, n_test=50, image_size=160, progress=False)
    train = load_official(paths.x_train, paths.y_train, paths.images_train)
    test = load_official(paths.x_test, paths.y_test, paths.images_test)
    return root, train, test


@pytest.fixture(scope="module")
def cache_dir(demo) -> Path:
    return demo[0] / "cache"


@pytest.fixture(scope="module")
def fused_dir(demo, cache_dir) -> Path:
    root, train, _ = demo
    model = ProductClassifier("balanced", cache_dir=str(cache_dir), progress=False).fit(train.X, train.y.to_numpy())
    assert set(model.component_names) == {"text", "image"}
    return model.save(root / "balanced")


@pytest.fixture(scope="module")
def image_only_dir(demo, cache_dir, no_ocr) -> Path:
    root, train, _ = demo
    # lite0 instead of the preset's two networks: one LDA head (and the photo text) keeps the fixture quick
    model = ProductClassifier("image", backbone="lite0", cache_dir=str(cache_dir), progress=False).fit(
        train.X, train.y.to_numpy())
    return model.save(root / "image-only")


@pytest.fixture(scope="module")
def client(fused_dir):
    with TestClient(create_app(fused_dir)) as test_client:
        yield test_client


def photo_rows(test, n: int):
    rows = test.X[test.X["image_path"].notna()].iloc[:n]
    return rows, [Path(p).read_bytes() for p in rows["image_path"]]


def store_snapshot(cache_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(cache_dir)): p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()}


def test_text_and_photo_use_both_components(client, demo, fused_dir) -> None:
    _, _, test = demo
    rows, photos = photo_rows(test, 1)
    product = {"designation": rows["designation"].iloc[0], "description": rows["description"].iloc[0]}
    response = client.post("/v1/predict", json={**product, "image_base64": base64.b64encode(photos[0]).decode()})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["has_image"] is True and answer["warnings"] == []
    assert set(answer["modalities"]) == {"text", "image"}
    assert all(set(t["by_modality"]) == {"text", "image"} for t in answer["top"])
    # the upload gives the same probabilities as the same photo read from disk by the library
    model = ProductClassifier.load(fused_dir)
    proba = model.predict_proba(rows)[0]
    best = np.argsort(-proba)[:5]
    assert [t["code"] for t in answer["top"]] == [int(model.classes_[i]) for i in best]
    np.testing.assert_allclose([t["probability"] for t in answer["top"]], proba[best], atol=1e-5)


def test_multipart_upload_matches_base64(client, demo) -> None:
    _, _, test = demo
    rows, photos = photo_rows(test, 1)
    text = {"designation": rows["designation"].iloc[0]}
    uploaded = client.post("/v1/predict", data=text, files={"image": ("p.jpg", photos[0], "image/jpeg")})
    encoded = client.post("/v1/predict", json={**text, "image_base64": base64.b64encode(photos[0]).decode()})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == encoded.json()
    photo_only = client.post("/v1/predict", files={"image": ("p.jpg", photos[0], "image/jpeg")})
    assert photo_only.status_code == 200 and photo_only.json()["has_image"] is True


def test_batch_mixes_products_with_and_without_photos(client, demo) -> None:
    _, _, test = demo
    rows, photos = photo_rows(test, 2)
    products = [{"designation": rows["designation"].iloc[0], "image_base64": base64.b64encode(photos[0]).decode()},
                {"designation": "Piscine tubulaire ronde"},
                {"image_base64": base64.b64encode(photos[1]).decode()}]
    response = client.post("/v1/predict/batch", json={"products": products})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert [a["has_image"] for a in answers] == [True, False, True]
    assert set(answers[1]["modalities"]) == {"text"}
    assert all(set(t["by_modality"]) == {"text"} for t in answers[1]["top"])


def test_uploads_never_reach_the_disk_cache(client, demo, cache_dir) -> None:
    _, _, test = demo
    rows, photos = photo_rows(test, 3)
    before = store_snapshot(cache_dir)
    for photo in photos:
        assert client.post("/v1/predict", files={"image": ("p.jpg", photo, "image/jpeg")}).status_code == 200
    assert store_snapshot(cache_dir) == before


def test_image_only_model_needs_a_photo(image_only_dir, demo) -> None:
    _, _, test = demo
    _, photos = photo_rows(test, 1)
    with TestClient(create_app(image_only_dir)) as test_client:
        text_only = test_client.post("/v1/predict", json={"designation": "Piscine"})
        assert text_only.status_code == 422 and "photos only" in text_only.json()["detail"]
        photo = test_client.post("/v1/predict", files={"image": ("p.jpg", photos[0], "image/jpeg")})
        assert photo.status_code == 200 and set(photo.json()["modalities"]) == {"image", "photo_text"}
        info = test_client.get("/v1/model").json()
        assert info["accepts_images"] is True
        assert info["component_kinds"] == {"image": "image", "photo_text": "ocr"}


def test_demonstrator_shows_text_and_image_contributions(fused_dir, demo, monkeypatch) -> None:
    _, _, test = demo
    rows, photos = photo_rows(test, 1)
    monkeypatch.setenv(webdata.ENV_MODEL, str(fused_dir))
    monkeypatch.delenv(webdata.ENV_DATA, raising=False)
    at = AppTest.from_file(str(launch.WEBAPP), default_timeout=60)
    at.run()
    at.text_input[0].set_value(rows["designation"].iloc[0])
    at.file_uploader[0].set_value(("photo.jpg", photos[0], "image/jpeg"))
    at.button[0].click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.columns) == ["code", "name", "probability", "text", "image"]
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["encoding"]["color"]["scale"]["domain"] == ["combined", "text", "image"]
    assert any(c.value == "Photo used." for c in at.caption)

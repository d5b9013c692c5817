"""REST API with the test client: every endpoint, every kind of bad input, limits, readiness."""

from __future__ import annotations

import base64
import io
import threading
import time
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from prodcat.data.io import make_products
from prodcat.data.sample import build_demo_table
from prodcat.errors import ModelError, ProdcatError
from prodcat.predictor import ProductClassifier
from prodcat.serve.api import create_app
from prodcat.taxonomy import CODES, name_of

MAX_BATCH = 4
MAX_IMAGE = 30_000
MAX_BODY = 200_000


def jpeg(size: int = 64, colour=(200, 40, 40), quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()[:4000]  # header and the first scan lines only


def noisy_png(size: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims a huge picture (a decompression bomb)."""
    small = io.BytesIO()
    Image.new("L", (1, 1)).save(small, "PNG")
    data = bytearray(small.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR checksum
    return bytes(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    table = build_demo_table(n_train=540, n_test=27, seed=5)
    train = table[table["split"] == "train"]
    model = ProductClassifier(progress=False).fit(train, train["prdtypecode"])
    return model.save(tmp_path_factory.mktemp("serve-api") / "model")


@pytest.fixture(scope="module")
def model(model_dir):
    return ProductClassifier.load(model_dir)


@pytest.fixture(scope="module")
def client(model_dir):
    app = create_app(model_dir, max_batch=MAX_BATCH, max_image_bytes=MAX_IMAGE, max_body_bytes=MAX_BODY)
    with TestClient(app) as test_client:
        yield test_client


def detail_text(response) -> str:
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " | ".join(f"{e['loc']} {e['msg']}" for e in detail)


# -- status and description endpoints ----------------------------------------------------------

def test_health_and_ready(client, model) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "fingerprint": model.fingerprint_}


def test_categories_lists_the_taxonomy_with_french_names(client, model) -> None:
    categories = client.get("/v1/categories").json()["categories"]
    assert [c["code"] for c in categories] == list(CODES)
    assert {c["code"]: c["name"] for c in categories}[1280] == "Déguisement"
    assert all(c["name"] == name_of(c["code"]) and c["group"] for c in categories)
    assert {c["code"] for c in categories if c["in_model"]} == {int(c) for c in model.classes_}


def test_model_endpoint_reports_versions_fingerprint_metrics_and_limits(client, model) -> None:
    info = client.get("/v1/model").json()
    assert info["fingerprint"] == model.fingerprint_ and len(info["fingerprint"]) == 64
    assert info["training"]["n"] == 540
    assert info["saved_with"]["scikit-learn"] == model.manifest["versions"]["scikit-learn"]
    assert info["preset"] == "fast" and info["components"] == ["text"] and info["accepts_images"] is False
    assert info["n_classes"] == len(model.classes_)
    assert info["limits"] == {"max_batch": MAX_BATCH, "max_image_bytes": MAX_IMAGE, "max_body_bytes": MAX_BODY,
                              "max_top_k": 27, "max_image_pixels": 16_000_000, "max_concurrent_decodes": 2,
                              "body_timeout_s": 60.0}


def test_model_endpoint_survives_non_finite_metrics(model_dir) -> None:
    odd = ProductClassifier.load(model_dir)
    odd.metrics_ = {"validation": {"weighted_f1": float("nan"), "accuracy": np.float64(0.5), "n": np.int64(3)}}
    with TestClient(create_app(odd)) as test_client:
        response = test_client.get("/v1/model")
    assert response.status_code == 200
    assert response.json()["metrics"]["validation"] == {"weighted_f1": None, "accuracy": 0.5, "n": 3}


# -- predictions -------------------------------------------------------------------------------

def test_predict_json_gives_top5_with_names_modalities_and_words(client, model) -> None:
    product = {"designation": "Piscine tubulaire ronde avec pompe de filtration", "description": "Piscine hors-sol"}
    response = client.post("/v1/predict", json=product)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = model.predict(make_products(product["designation"], product["description"]))[0]
    assert answer["code"] == expected and answer["name"] == name_of(expected)
    top = answer["top"]
    assert len(top) == 5 and top[0]["code"] == answer["code"]
    probabilities = [t["probability"] for t in top]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    assert all(t["name"] == name_of(t["code"]) for t in top)
    assert all(t["by_modality"] == {"text": t["probability"]} for t in top)  # text-only: text is everything
    assert [m["code"] for m in answer["modalities"]["text"]] == [t["code"] for t in top]
    text = (product["designation"] + " " + product["description"]).lower()
    assert answer["words"] and all(w["weight"] > 0 for w in answer["words"])
    assert all(token in text for w in answer["words"] for token in w["word"].split())  # unigrams and bigrams
    assert answer["has_image"] is False and answer["warnings"] == []


def test_predict_agrees_with_the_library_probabilities(client, model) -> None:
    answer = client.post("/v1/predict", json={"designation": "Manette sans fil pour console"}).json()
    proba = model.predict_proba(make_products("Manette sans fil pour console"))[0]
    best = np.argsort(-proba)[:5]
    assert [t["code"] for t in answer["top"]] == [int(model.classes_[i]) for i in best]
    np.testing.assert_allclose([t["probability"] for t in answer["top"]], proba[best], atol=1e-6)


def test_description_alone_is_enough(client) -> None:
    response = client.post("/v1/predict", json={"designation": None, "description": "Livre de poche en bon état"})
    assert response.status_code == 200


@pytest.mark.parametrize("top_k, status, length", [(1, 200, 1), (3, 200, 3), (27, 200, 27), (0, 422, None),
                                                   (28, 422, None), ("many", 422, None)])
def test_top_k_is_bounded(client, top_k, status, length) -> None:
    response = client.post("/v1/predict", params={"top_k": top_k}, json={"designation": "Jeu PS4"})
    assert response.status_code == status, response.text
    if length:
        assert len(response.json()["top"]) == length
        assert all(len(v) == length for v in response.json()["modalities"].values())


def test_forms_without_photo_match_json(client) -> None:
    expected = client.post("/v1/predict", json={"designation": "Figurine Dragon Ball Z"}).json()
    multipart = client.post("/v1/predict", files={"designation": (None, "Figurine Dragon Ball Z")})
    assert multipart.status_code == 200, multipart.text
    assert multipart.json() == expected
    urlencoded = client.post("/v1/predict", data={"designation": "Figurine Dragon Ball Z"})
    assert urlencoded.status_code == 200, urlencoded.text
    assert urlencoded.json() == expected


def test_batch_matches_single_predictions_in_order(client) -> None:
    products = [{"designation": "Piscine gonflable"}, {"designation": "Jeu PS4 neuf"},
                {"designation": "", "description": "Peluche pour bébé"}]
    response = client.post("/v1/predict/batch", json={"products": products}, params={"top_k": 2})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    for product, prediction in zip(products, predictions):
        single = client.post("/v1/predict", json=product, params={"top_k": 2}).json()
        assert prediction == single


def test_batch_is_one_vectorised_call(model_dir) -> None:
    model = ProductClassifier.load(model_dir)
    calls = []
    original = model.explain
    model.explain = lambda X, k=5: calls.append(len(X)) or original(X, k=k)
    with TestClient(create_app(model, max_batch=MAX_BATCH)) as test_client:
        calls.clear()
        response = test_client.post("/v1/predict/batch", json={"products": [{"designation": f"Jeu {i}"}
                                                                             for i in range(MAX_BATCH)]})
    assert response.status_code == 200
    assert calls == [MAX_BATCH]


# -- bad input: always a 4xx that says what is wrong ---------------------------------------------

@pytest.mark.parametrize("body, needle", [
    ({}, "needs a designation, a description or an image"),
    ({"designation": "   ", "description": ""}, "needs a designation, a description or an image"),
    ({"designation": None}, "needs a designation, a description or an image"),
    ({"designation": "Jeu", "desciption": "typo"}, "desciption"),
    ({"designation": 123}, "valid string"),
    ({"designation": ["a", "b"]}, "valid string"),
    ({"designation": "x" * 5001}, "at most 5000 characters"),
    ({"designation": "Jeu", "image_base64": 5}, "valid string"),
])
def test_bad_json_products_get_422_with_a_message(client, body, needle) -> None:
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422, response.text
    assert needle in detail_text(response)


@pytest.mark.parametrize("content, needle", [(b"", "empty"), (b"{not json", "JSON"), (b"[1, 2]", "object"),
                                             (b"\"just text\"", "object")])
def test_malformed_json_bodies_get_422(client, content, needle) -> None:
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert needle.lower() in detail_text(response).lower()


def test_unsupported_content_type_gets_415(client) -> None:
    response = client.post("/v1/predict", content=b"designation=Jeu", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert "application/json or multipart/form-data" in response.json()["detail"]
    assert "text/plain" in response.json()["detail"]


def test_batch_limits_and_bad_items(client) -> None:
    too_many = client.post("/v1/predict/batch", json={"products": [{"designation": "Jeu"}] * (MAX_BATCH + 1)})
    assert too_many.status_code == 422 and f"at most {MAX_BATCH}" in detail_text(too_many)
    empty = client.post("/v1/predict/batch", json={"products": []})
    assert empty.status_code == 422 and "at least 1" in detail_text(empty)
    bad_item = client.post("/v1/predict/batch", json={"products": [{"designation": "Jeu"}, {"description": " "}]})
    assert bad_item.status_code == 422
    assert bad_item.json()["detail"][0]["loc"] == ["body", "products", 1]
    extra = client.post("/v1/predict/batch", json={"products": [{"designation": "Jeu"}], "limit": 3})
    assert extra.status_code == 422 and "limit" in detail_text(extra)
    wrong = client.post("/v1/predict/batch", json={"products": {"designation": "Jeu"}})
    assert wrong.status_code == 422 and "valid array" in detail_text(wrong)
    form = client.post("/v1/predict/batch", data={"designation": "Jeu"})
    assert form.status_code == 415 and "application/json" in form.json()["detail"]


def test_request_body_over_the_cap_gets_413(client) -> None:
    big = {"designation": "Jeu", "description": "x" * 90_000}
    response = client.post("/v1/predict/batch", json={"products": [big, big, big]})
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it streams in
        yield b'{"designation": "Jeu", "description": "'
        for _ in range(30):
            yield b"y" * 10_000
        yield b'"}'

    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_bad_images_in_json(client) -> None:
    def post(image: str):
        return client.post("/v1/predict", json={"designation": "Jeu", "image_base64": image})

    not_image = post(b64(b"%PDF-1.4 this is not a picture" * 10))
    assert not_image.status_code == 415 and "not an image" in not_image.json()["detail"]
    assert not_image.json()["detail"].startswith("image_base64:")
    assert post("@@@ not base64 @@@").status_code == 422
    too_big = post(b64(noisy_png(120)))
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    truncated = post(b64(truncated_jpeg()))
    assert truncated.status_code == 422 and "truncated" in truncated.json()["detail"]
    bomb = post(b64(bomb_png()))
    assert bomb.status_code == 413 and "pixels" in bomb.json()["detail"]
    in_batch = client.post("/v1/predict/batch", json={"products": [{"designation": "Jeu"},
                                                                   {"designation": "Jeu", "image_base64": b64(b"GIF")}]})
    assert in_batch.status_code == 415 and in_batch.json()["detail"].startswith("products[1].image_base64")


def test_bad_images_in_multipart(client) -> None:
    def post(data: bytes, fields=None, **extra):
        return client.post("/v1/predict", data=fields or {"designation": "Jeu"},
                           files={"image": ("photo.jpg", data, "image/jpeg"), **extra})

    assert post(b"hello, I am text").status_code == 415
    assert post(noisy_png(120)).status_code == 413
    assert post(truncated_jpeg()).status_code == 422
    assert post(b"", fields={"designation": "Jeu"}).status_code == 422  # a named file with no bytes
    unknown = post(jpeg(), other=("x.txt", b"x", "text/plain"))
    assert unknown.status_code in (400, 422)
    text_as_file = client.post("/v1/predict", files={"designation": ("d.txt", b"Jeu", "text/plain")})
    assert text_as_file.status_code == 422 and "text field" in detail_text(text_as_file)
    image_as_text = client.post("/v1/predict", data={"designation": "Jeu", "image": "aGVsbG8="})
    assert image_as_text.status_code == 422 and "file upload" in detail_text(image_as_text)
    extra_field = client.post("/v1/predict", data={"designation": "Jeu", "colour": "red"})
    assert extra_field.status_code == 422 and "colour" in detail_text(extra_field)
    nothing = client.post("/v1/predict", data={"designation": " "}, files={"image": ("", b"", "application/octet-stream")})
    assert nothing.status_code == 422 and "needs a designation" in detail_text(nothing)


def test_photo_sent_to_a_text_model(client) -> None:
    with_text = client.post("/v1/predict", json={"designation": "Piscine", "image_base64": "data:image/jpeg;base64,"
                                                 + b64(jpeg())})
    assert with_text.status_code == 200
    assert with_text.json()["has_image"] is False
    assert "does not use photos" in with_text.json()["warnings"][0]
    alone = client.post("/v1/predict", files={"image": ("p.jpg", jpeg(), "image/jpeg")})
    assert alone.status_code == 422 and "text only" in alone.json()["detail"]


# -- start-up, readiness, concurrency ------------------------------------------------------------

def test_not_ready_until_the_model_is_loaded(model_dir) -> None:
    app = create_app(model_dir)
    test_client = TestClient(app)  # no `with`: start-up (model loading) has not run
    assert test_client.get("/health").status_code == 200
    assert test_client.get("/ready").status_code == 503
    response = test_client.post("/v1/predict", json={"designation": "Jeu"})
    assert response.status_code == 503 and "loading" in response.json()["detail"]
    with test_client:
        assert test_client.get("/ready").status_code == 200


def test_bad_configuration_fails_fast(tmp_path) -> None:
    with pytest.raises(ModelError, match="not a prodcat model bundle"):
        create_app(tmp_path)
    with pytest.raises(ProdcatError, match="max_batch"):
        create_app(tmp_path, max_batch=0)


def test_model_runs_off_the_event_loop(model_dir) -> None:
    model = ProductClassifier.load(model_dir)
    original = model.explain
    release = threading.Event()

    def slow_explain(X, k=5):
        release.wait(5)
        return original(X, k=k)

    with TestClient(create_app(model)) as test_client:
        model.explain = slow_explain
        worker = threading.Thread(target=lambda: test_client.post("/v1/predict", json={"designation": "Jeu"}))
        worker.start()
        time.sleep(0.2)
        started = time.perf_counter()
        assert test_client.get("/health").status_code == 200  # answered while the prediction waits
        assert time.perf_counter() - started < 2
        release.set()
        worker.join(10)


def test_openapi_schema_documents_bodies_examples_and_limits(client) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/v1/predict"]["post"]
    content = predict["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data", "application/x-www-form-urlencoded"}
    assert content["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    product = schema["components"]["schemas"]["ProductIn"]
    assert product["additionalProperties"] is False and product["examples"]
    batch = schema["components"]["schemas"]["BatchIn"]
    assert batch["properties"]["products"]["maxItems"] == MAX_BATCH and batch["examples"]
    assert batch["properties"]["products"]["items"] == {"$ref": "#/components/schemas/ProductIn"}
    batch_body = schema["paths"]["/v1/predict/batch"]["post"]["requestBody"]["content"]
    assert batch_body["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchIn"}
    assert {"413", "415", "422"} <= set(predict["responses"])
    assert {"/health", "/ready", "/v1/categories", "/v1/model", "/v1/predict/batch"} <= set(schema["paths"])

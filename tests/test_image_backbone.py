"""The pretrained EfficientNet-Lite backbone: offline export to ONNX, caching, and sanity on real photos."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import prodcat.image.backbone as backbone_module
from prodcat.errors import ModelError
from prodcat.image.backbone import Backbone, CompositeBackbone, model_fingerprint, network_columns, open_backbone
from prodcat.image.io import preprocess

SITE = Path(np.__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def backbone(tmp_path_factory) -> Backbone:
    """One Lite0 export per test session, made with the network blocked."""
    cache = tmp_path_factory.getbasetemp() / "prodcat-image-models"

    def refuse(*args, **kwargs):
        raise OSError("network access blocked by the test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "create_connection", refuse)
        return Backbone("lite0", cache_dir=cache)


def top5(backbone: Backbone, images: np.ndarray) -> np.ndarray:
    return np.argsort(-backbone.predict_imagenet(images), axis=1)[:, :5]


def test_embeddings_shape_and_values(backbone):
    assert backbone.dim == 1280 and backbone.input_size == 224
    batch = np.random.default_rng(0).integers(0, 256, (20, 224, 224, 3), dtype=np.uint8)
    emb = backbone.embed(batch)  # 20 > max_batch: runs in pieces
    assert emb.shape == (20, 1280) and emb.dtype == np.float32
    assert np.isfinite(emb).all() and emb.min() >= 0  # ReLU6 features, average-pooled
    assert np.allclose(backbone.embed(batch[3:4]), emb[3:4], atol=1e-4)  # batch-independent
    assert backbone.embed(batch[:0]).shape == (0, 1280)
    with pytest.raises(ValueError, match="uint8"):
        backbone.embed(batch.astype(np.float32))
    with pytest.raises(ValueError, match="224"):
        backbone.embed(batch[:, :200])


@pytest.mark.parametrize(
    ("photo", "plausible"),
    [
        # a package-shipped portrait in uniform -> 652 military uniform
        ("matplotlib/mpl-data/sample_data/grace_hopper.jpg", {652}),
        # a Chinese palace -> bell cote, stupa, palace, monastery, pagoda...
        ("sklearn/datasets/images/china.jpg", {442, 832, 698, 663, 449}),
    ],
)
def test_recognises_photos_shipped_by_packages(backbone, photo, plausible):
    path = SITE / photo
    if not path.exists():
        pytest.skip(f"{photo} is not installed")
    assert plausible & set(top5(backbone, preprocess(path)[None])[0])


# product id -> ImageNet classes that would be a sensible reading of the photo
PLAUSIBLE = {
    "1190507078": {857, 423, 765, 559},  # baroque armchair: throne, barber/rocking/folding chair
    "3590004082": {532, 765, 559, 423},  # table and stools: dining table, chairs
    "3593005420": {559, 765, 423, 857},  # dining chair
    "3759137530": {418, 563},  # pen: ballpoint, fountain pen
    "75707598": {917, 921},  # comic: comic book, book jacket
    "5862738": {921, 917},  # book cover
    "3793572222": {672},  # gazebo tent: mountain tent
    "3410001417": {818, 846, 619},  # light bulb: spotlight, table lamp, lampshade
}


def test_recognises_real_product_photos(backbone, shared_data):
    folder = shared_data / "rakuten_sample" / "image_train"
    paths = {p.stem.split("_product_")[1]: p for p in folder.glob("*.jpg")}
    ids = sorted(PLAUSIBLE)
    predicted = top5(backbone, np.stack([preprocess(paths[i]) for i in ids]))
    misses = [(i, list(row)) for i, row in zip(ids, predicted) if not PLAUSIBLE[i] & set(row)]
    assert not misses


def test_same_photo_reencoded_is_near_identical_and_products_differ(backbone, shared_data):
    paths = sorted((shared_data / "rakuten_sample" / "image_train").glob("*.jpg"))
    originals = np.stack([preprocess(p) for p in paths])
    reencoded = []
    for p in paths:  # a second JPEG generation at another quality, then the same preprocessing
        buf = io.BytesIO()
        Image.open(p).convert("RGB").save(buf, format="JPEG", quality=75)
        reencoded.append(np.asarray(Image.open(buf).convert("RGB")))
    from prodcat.image.io import crop_white_border, fit_square

    again = np.stack([np.asarray(fit_square(crop_white_border(Image.fromarray(a)), 224)) for a in reencoded])
    a, b = backbone.embed(originals), backbone.embed(again)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    cosine = a @ b.T
    assert np.diag(cosine).min() > 0.9
    assert np.array_equal(cosine.argmax(axis=1), np.arange(len(paths)))  # nearest is itself
    others = (a @ a.T)[~np.eye(len(paths), dtype=bool)]
    assert np.median(others) < np.diag(cosine).min() - 0.1


def test_loading_a_cached_export_does_not_import_torch(backbone):
    code = (
        "import sys; from prodcat.image.backbone import Backbone; "
        f"b = Backbone('lite0', cache_dir={str(backbone.cache_dir)!r}); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(b.onnx_path)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(backbone.onnx_path)


@pytest.fixture()
def fake_export(backbone, monkeypatch):
    """Replace the torch export with a copy of the session's file; records the calls."""
    calls: list[Path] = []
    good = backbone.onnx_path.read_bytes()

    def export(name: str, dest: Path, **options: object) -> Path:
        calls.append(dest)
        time.sleep(0.05)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(good)
        tmp.replace(dest)
        return dest

    monkeypatch.setattr(backbone_module, "export_onnx", export)
    return calls


def test_export_happens_once_and_is_reused(tmp_path, fake_export):
    first = Backbone("lite0", cache_dir=tmp_path)
    assert first.onnx_path.exists() and len(fake_export) == 1
    Backbone("lite0", cache_dir=tmp_path)
    assert len(fake_export) == 1


def test_corrupt_or_stale_exports_are_rebuilt(tmp_path, fake_export):
    b = Backbone("lite0", cache_dir=tmp_path)
    b.onnx_path.write_bytes(b"garbage from an interrupted copy")
    stale = b.onnx_path.with_name("efficientnet-lite0-000000000000.onnx")
    stale.write_bytes(b"an export made by older package versions")
    other_variant = b.onnx_path.with_name("efficientnet-lite0-ms-000000000000.onnx")
    other_variant.write_bytes(b"the multi-scale variant's export")
    again = Backbone("lite0", cache_dir=tmp_path)
    assert len(fake_export) == 2 and again.embed(np.zeros((1, 224, 224, 3), np.uint8)).shape == (1, 1280)
    assert not stale.exists() and other_variant.exists()


def test_concurrent_first_uses_export_once(tmp_path, fake_export):
    made: list[Backbone] = []
    threads = [threading.Thread(target=lambda: made.append(Backbone("lite0", cache_dir=tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 3 and len(fake_export) == 1


def test_multiscale_variant_appends_the_last_two_blocks_to_the_plain_embedding(backbone):
    multi = Backbone("lite0-ms", cache_dir=backbone.cache_dir)
    assert multi.dim == 1280 + 320 + 192 and multi.input_size == 224
    assert multi.onnx_path != backbone.onnx_path and multi.tag != backbone.tag
    assert backbone.onnx_path.exists()  # its own export: the plain one is not taken for a stale file
    images = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    features = multi.embed(images)
    assert features.shape == (3, 1792) and np.isfinite(features).all()
    np.testing.assert_allclose(features[:, :1280], backbone.embed(images), rtol=1e-4, atol=1e-4)
    assert not np.allclose(features[:, 1280:1600], features[:, 1280:1600].mean(axis=0))  # the blocks vary
    np.testing.assert_allclose(multi.predict_imagenet(images), backbone.predict_imagenet(images), rtol=1e-3, atol=1e-3)


def test_fingerprint_and_unknown_backbone():
    assert model_fingerprint("lite0") != model_fingerprint("lite2")
    assert model_fingerprint("lite0") != model_fingerprint("lite0-ms")
    assert model_fingerprint("lite0") == model_fingerprint("lite0")
    with pytest.raises(ModelError, match="lite0, lite1, lite2"):
        Backbone("resnet50")


def test_tta_averages_the_photo_and_its_mirror_under_its_own_cache_tag(backbone):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    tta = Backbone("lite0", cache_dir=backbone.cache_dir, tta=True)
    assert tta.onnx_path == backbone.onnx_path and tta.tag != backbone.tag
    expected = (backbone.embed(images) + backbone.embed(np.ascontiguousarray(images[:, :, ::-1]))) / 2
    np.testing.assert_allclose(tta.embed(images), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_lite2_exports_and_recognises_a_photo(tmp_path):
    photo = SITE / "matplotlib/mpl-data/sample_data/grace_hopper.jpg"
    if not photo.exists():
        pytest.skip("matplotlib's sample photo is not installed")
    lite2 = Backbone("lite2", cache_dir=tmp_path)
    assert lite2.input_size == 260
    image = preprocess(photo, lite2.input_size)[None]
    assert lite2.embed(image).shape == (1, 1280)
    assert 652 in top5(lite2, image)[0]  # military uniform


def test_export_at_another_input_size(tmp_path):
    """``input_size`` makes a graph for that square size (used by the resolution benchmark)."""
    import onnxruntime as ort

    dest = backbone_module.export_onnx("lite0", tmp_path / "lite0-192.onnx", input_size=192)
    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    embedding, logits = session.run(["embedding", "logits"], {"images": np.zeros((2, 192, 192, 3), np.uint8)})
    assert embedding.shape == (2, 1280) and logits.shape == (2, 1000)
    with pytest.raises(Exception):  # the size is fixed in the graph
        session.run(["embedding"], {"images": np.zeros((1, 224, 224, 3), np.uint8)})
    with pytest.raises(ValueError, match="input_size"):
        backbone_module.export_onnx("lite0", tmp_path / "tiny.onnx", input_size=8)
    assert not (tmp_path / "tiny.onnx").exists()


def test_composite_backbone_puts_its_networks_side_by_side_at_the_largest_input(backbone):
    pair = CompositeBackbone("lite1-ms+lite2-ms", cache_dir=backbone.cache_dir)
    assert pair.input_size == 260 and pair.dim == 1792 + 1840
    lite1, lite2 = pair.networks
    assert lite1.input_size == 260 and "260px" in lite1.onnx_path.name and "260px" in lite1.tag
    assert lite2.input_size == 260 and "px" not in lite2.tag  # lite2's native size: its usual export
    images = np.random.default_rng(2).integers(0, 256, (2, 260, 260, 3), dtype=np.uint8)
    features = pair.embed(images)
    assert features.shape == (2, 3632)
    np.testing.assert_allclose(features[:, network_columns(pair.name, "lite2-ms")], lite2.embed(images), atol=1e-5)
    np.testing.assert_allclose(features[:, network_columns(pair.name, "lite1-ms")], lite1.embed(images), atol=1e-5)
    assert pair.tag == f"{lite1.tag}+{lite2.tag}"
    assert isinstance(open_backbone("lite0", cache_dir=backbone.cache_dir), Backbone)
    with pytest.raises(ModelError, match="no network 'lite0'"):
        network_columns(pair.name, "lite0")

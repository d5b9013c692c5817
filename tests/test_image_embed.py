"""Feature cache and embedding pipeline: cache hits, changed files, resume after interruption, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodcat.errors import DataError
from prodcat.image.backbone import Backbone
from prodcat.image.cache import FeatureStore, FileId
from prodcat.image.cachedir import default_cache_dir
from prodcat.image.embed import ImageEmbedder, embed_folder
from prodcat.image.io import preprocess

from test_image_io import huge_png


@pytest.fixture(scope="session")
def backbone(tmp_path_factory) -> Backbone:
    """The session's Lite0 export (same folder as in test_image_backbone: exported once)."""
    return Backbone("lite0", cache_dir=tmp_path_factory.getbasetemp() / "prodcat-image-models")


def product_photo(path: Path, seed: int, size: int = 160) -> Path:
    """A coloured, textured object on a white background."""
    rng = np.random.default_rng(seed)
    arr = np.full((size, size, 3), 255, dtype=np.uint8)
    side = int(rng.integers(size // 2, size))
    obj = rng.integers(0, 256, 3) + rng.normal(0, 25, (side, side, 3))
    x, y = rng.integers(0, size - side + 1, 2)
    arr[y : y + side, x : x + side] = np.clip(obj, 0, 255)
    Image.fromarray(arr).save(path, quality=90)
    return path


@pytest.fixture()
def photos(tmp_path) -> list[str]:
    folder = tmp_path / "images"
    folder.mkdir()
    return [str(product_photo(folder / f"image_{i}_product_{i}.jpg", i)) for i in range(10)]


def embedder(backbone, cache, **kw) -> ImageEmbedder:
    kw.setdefault("workers", 0)
    return ImageEmbedder(backbone, cache_dir=cache, progress=False, **kw)


def test_vectors_match_the_backbone_and_second_run_hits_the_cache(backbone, photos, tmp_path):
    first = embedder(backbone, tmp_path / "cache").embed(photos)
    assert first.ok.all() and first.failures == []
    assert first.stats.n_computed == 10 and first.stats.n_cached == 0
    expected = backbone.embed(np.stack([preprocess(p) for p in photos]))
    assert np.allclose(first.vectors, expected, atol=1e-4)
    second = embedder(backbone, tmp_path / "cache").embed(photos)
    assert second.stats.n_computed == 0 and second.stats.n_cached == 10
    assert np.array_equal(second.vectors, first.vectors)


def test_changed_file_is_recomputed(backbone, photos, tmp_path):
    first = embedder(backbone, tmp_path / "cache").embed(photos)
    product_photo(Path(photos[3]), seed=99)  # new content, new size/mtime
    st = os.stat(photos[3])
    os.utime(photos[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = embedder(backbone, tmp_path / "cache").embed(photos)
    assert second.stats.n_computed == 1 and second.stats.n_cached == 9
    assert not np.allclose(second.vectors[3], first.vectors[3])
    assert np.array_equal(np.delete(second.vectors, 3, axis=0), np.delete(first.vectors, 3, axis=0))


def test_interrupted_run_resumes(backbone, photos, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_embed = backbone.embed

    def failing_embed(batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the 4th batch
        return real_embed(batch)

    run = embedder(backbone, tmp_path / "cache", batch_size=2, flush_every=4)
    monkeypatch.setattr(backbone, "embed", failing_embed)
    with pytest.raises(KeyboardInterrupt):
        run.embed(photos)
    monkeypatch.undo()
    # batches 1-2 were flushed as a block; batch 3 was flushed on the way out
    resumed = embedder(backbone, tmp_path / "cache", batch_size=2, flush_every=4).embed(photos)
    assert resumed.stats.n_cached == 6 and resumed.stats.n_computed == 4
    fresh = embedder(backbone, tmp_path / "other").embed(photos)
    assert np.allclose(resumed.vectors, fresh.vectors, atol=1e-5)


def test_bad_files_are_reported_and_nothing_else_is_lost(backbone, photos, tmp_path):
    folder = Path(photos[0]).parent
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not a picture")
    good = Path(photos[1]).read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    huge_png(folder / "bomb.png")
    bad = [str(folder / n) for n in ("empty.jpg", "text.jpg", "truncated.jpg", "bomb.png", "missing.jpg")]
    paths = [photos[0], bad[0], None, bad[1], photos[1], bad[2], bad[3], bad[4], photos[2]]
    result = embedder(backbone, tmp_path / "cache").embed(paths)
    assert result.ok.tolist() == [True, False, False, False, True, False, False, False, True]
    assert not result.vectors[~result.ok].any()
    reasons = dict(result.failures)
    assert sorted(reasons) == sorted(bad)  # None is "no image", not a failure
    assert "empty" in reasons[bad[0]] and "not an image" in reasons[bad[1]]
    assert "truncated" in reasons[bad[2]] and "too large" in reasons[bad[3]] and reasons[bad[4]] == "missing file"
    stats = result.stats
    assert (stats.n_images, stats.n_computed, stats.n_failed) == (8, 3, 5)
    # a re-run remembers bad content without decoding again, and still reports every file
    again = embedder(backbone, tmp_path / "cache").embed(paths)
    assert again.stats.n_computed == 0 and again.stats.n_cached == 3
    assert dict(again.failures) == reasons and np.array_equal(again.ok, result.ok)


def test_worker_processes_give_the_same_vectors(backbone, photos, tmp_path):
    parallel = embedder(backbone, tmp_path / "a", workers=1, batch_size=3)
    parallel.inline_below = 0  # force the process pool even for 10 images
    many = photos + [photos[0], None]  # duplicates are computed once
    res = parallel.embed(many)
    inline = embedder(backbone, tmp_path / "b").embed(photos)
    assert np.allclose(res.vectors[:10], inline.vectors, atol=1e-5)
    assert np.array_equal(res.vectors[10], res.vectors[0]) and res.ok.tolist() == [True] * 11 + [False]
    assert res.stats.n_images == 11 and res.stats.n_computed == 11


def test_embed_folder(backbone, photos, tmp_path):
    folder = Path(photos[0]).parent
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    (folder / "broken.jpg").write_text("reported")
    stats = embed_folder(folder, cache_dir=tmp_path / "cache", backbone=backbone, workers=0, progress=False)
    assert (stats.n_images, stats.n_computed, stats.n_failed) == (11, 10, 1)
    assert stats.failures[0][0].endswith("broken.jpg") and "10 computed" in stats.summary()
    again = embed_folder(folder, cache_dir=tmp_path / "cache", backbone=backbone, workers=0, progress=False)
    assert again.n_cached == 10 and again.n_computed == 0
    with pytest.raises(DataError, match="not found"):
        embed_folder(tmp_path / "nowhere", cache_dir=tmp_path / "cache", backbone=backbone)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        embed_folder(tmp_path / "empty", cache_dir=tmp_path / "cache", backbone=backbone)


def test_feature_store_roundtrip_isolation_and_prune(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1")
    b.write_bytes(b"22")
    ids = [FileId.of(a), FileId.of(b)]
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    with FeatureStore(tmp_path / "store", tag="m1", dim=4) as store:
        assert store.lookup(ids) == [None, None]
        store.put(ids, vectors)
        hits = store.lookup(ids)
        assert np.array_equal(store.read(hits), vectors) and len(store) == 2
        with pytest.raises(ValueError):
            store.put(ids, vectors[:1])
        store.put([ids[0]], vectors[1:] * 10)  # a newer vector for a: the old shard still holds b
        assert np.array_equal(store.read(store.lookup([ids[0]])), vectors[1:] * 10)
    with FeatureStore(tmp_path / "store", tag="m2", dim=4) as other:  # another model: nothing shared
        assert other.lookup(ids) == [None, None]
    a.write_bytes(b"changed")
    with FeatureStore(tmp_path / "store", tag="m1", dim=4) as store:
        assert store.lookup([FileId.of(a), ids[1]])[0] is None
        (tmp_path / "store" / "shards" / "orphan.npy").write_bytes(b"")
        assert store.prune(older_than_s=-1) == 1  # the orphan; both indexed shards are still in use
        assert np.array_equal(store.read(store.lookup([ids[1]])), vectors[1:])


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PRODCAT_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PRODCAT_CACHE_DIR")
    assert default_cache_dir().name == "prodcat"

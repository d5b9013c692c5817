"""Hostile inputs (issue 13): every case of the red-team pass, and the class of input it stands for.

Each case asserts the exact outcome: the ``error:`` line and exit status 2, the counted fall-back,
or the data that must be kept. One tiny text bundle and one tiny text+image bundle are built per
module. Case numbers refer to the issue.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodcat.cli import main
from prodcat.data.io import MAX_FIELD_CHARS, load_official
from prodcat.data.sample import make_demo_dataset
from prodcat.errors import ModelError, ProdcatError
from prodcat.predictor import ProductClassifier
from prodcat.safe_bundle import BUNDLE_MANIFEST

REPO = Path(__file__).resolve().parents[1]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def demo(root):
    return make_demo_dataset(root / "demo", n_train=300, n_test=40, seed=3, image_size=64, progress=False)


@pytest.fixture(scope="module")
def cache(root) -> Path:
    return root / "cache"


@pytest.fixture(autouse=True)
def _cache_env(cache, monkeypatch):
    monkeypatch.setenv("PRODCAT_CACHE_DIR", str(cache))


@pytest.fixture(scope="module")
def text_bundle(root, demo) -> Path:
    """``M``: a text-only bundle."""
    train = load_official(demo.x_train, demo.y_train)
    return ProductClassifier("fast", progress=False).fit(train.X, train.y.to_numpy()).save(root / "M")


@pytest.fixture(scope="module")
def image_bundle(root, demo, cache) -> Path:
    """``B``: a text+image bundle (balanced preset)."""
    pytest.importorskip("onnxruntime")
    train = load_official(demo.x_train, demo.y_train, demo.images_train)
    model = ProductClassifier("balanced", cache_dir=str(cache), progress=False).fit(train.X, train.y.to_numpy())
    return model.save(root / "B")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr); argparse errors exit through SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one ``error:`` line; fails when there is a traceback or several error lines."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def copy_bundle(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / BUNDLE_MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def state_file(bundle: Path) -> Path:
    return bundle / json.loads((bundle / BUNDLE_MANIFEST).read_text())["state"]["file"]


def png_bytes(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


# --- 1, 2: too little data, bad numbers -------------------------------------------------------


def test_1_compare_on_three_rows_is_one_error_line(demo, tmp_path, capsys) -> None:
    x, y = tmp_path / "x3.csv", tmp_path / "y3.csv"
    x.write_text("\n".join(demo.x_train.read_text().splitlines()[:4]) + "\n")
    y.write_text("\n".join(demo.y_train.read_text().splitlines()[:4]) + "\n")
    code, _, err = run(["compare", "--x", x, "--y", y, "--models", "fast", "--out", tmp_path / "board"], capsys)
    assert code == 2
    assert "comparing models needs a training part with at least two product codes" in error_line(err)


@pytest.mark.parametrize("argv_tail, message", [
    (["eda", "--image-sample", "-5"], "argument --image-sample: must be at least 0, got -5"),
    (["crop", "--size", "0"], "argument --size: must be at least 16, got 0"),
    (["crop", "--size", "-5"], "argument --size: must be at least 16, got -5"),
    (["crop", "--size", "many"], "argument --size: expected an integer, got 'many'"),
    (["embed", "--workers", "-1"], "argument --workers: must be at least 0, got -1"),
    (["classify", "--top", "0"], "argument --top: must be at least 1, got 0"),
    (["compare", "--test-size", "1.5"], "argument --test-size: must be > 0 and < 1, got 1.5"),
    (["train", "--valid-size", "-0.1"], "argument --valid-size: must be >= 0 and < 1, got -0.1"),
    (["train", "--time-limit", "nan"], "argument --time-limit: must be > 0, got nan"),
])
def test_2_negative_or_zero_numbers_are_refused(argv_tail, message, demo, tmp_path, capsys) -> None:
    command, *options = argv_tail
    base = {"eda": ["--x", demo.x_train, "--out", tmp_path / "eda"],
            "crop": [next(demo.images_train.iterdir()), "--out", tmp_path / "c.png"],
            "embed": ["--images", demo.images_train],
            "classify": ["--model", tmp_path, "piscine"],
            "compare": ["--x", demo.x_train, "--y", demo.y_train, "--models", "fast", "--out", tmp_path / "b"],
            "train": ["--x", demo.x_train, "--y", demo.y_train]}[command]
    code, _, err = run([command, *base, *options], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_2_crop_of_a_30000x1_strip(tmp_path, capsys) -> None:
    strip = tmp_path / "strip.png"
    strip.write_bytes(png_bytes(30000, 1))
    code, out, err = run(["crop", strip, "--out", tmp_path / "c.png"], capsys)
    assert code == 0 and "Traceback" not in err
    assert Image.open(tmp_path / "c.png").size == (2 * 224 + 8, 224 + 18)


# --- 3, 4, 18: hostile data files -------------------------------------------------------------


@pytest.mark.parametrize("imageid", ["99999999999999999999999", "9223372036854775808", "-1e30"])
def test_3_an_id_beyond_64_bits_is_one_error_line(imageid, demo, text_bundle, tmp_path, capsys) -> None:
    x = pd.read_csv(demo.x_test, index_col=0, dtype=str)
    x.loc[x.index[0], "imageid"] = imageid
    x.to_csv(tmp_path / "x.csv")
    code, _, err = run(["predict", "--model", text_bundle, "--x", tmp_path / "x.csv", "--images", demo.images_test,
                        "--out", tmp_path / "sub.csv"], capsys)
    assert code == 2
    line = error_line(err)
    assert f"row {x.index[0]}: column 'imageid' must hold integers (that fit in 64 bits)" in line
    assert not (tmp_path / "sub.csv").exists()


def test_4_symlink_loops_count_as_missing_and_hide_nothing(demo, text_bundle, tmp_path, capsys) -> None:
    import shutil

    images = tmp_path / "images"
    shutil.copytree(demo.images_test, images)
    (images / "loop.jpg").symlink_to("loop.jpg")  # a loop that matches no product
    victim = sorted(images.glob("image_*.jpg"))[0]
    victim.unlink()
    victim.symlink_to(victim.name)  # a product's own photo is a loop
    n_files = len(list(demo.images_test.glob("image_*.jpg")))
    dataset = load_official(demo.x_test, None, images)
    assert dataset.report.n_images_found == n_files - 1
    assert str(victim) in dataset.report.missing_images
    code, out, err = run(["predict", "--model", text_bundle, "--x", demo.x_test, "--images", images,
                          "--out", tmp_path / "sub.csv"], capsys)
    assert code == 0 and "Traceback" not in err
    assert f"images: {n_files - 1} found" in out


def test_4_symlink_loop_in_embed_folder_is_skipped(tmp_path) -> None:
    from prodcat.image.embed import embed_folder

    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    with pytest.raises(ProdcatError, match="no image files"):
        embed_folder(tmp_path, progress=False)


def test_18_text_fields_are_capped_and_counted(demo, tmp_path) -> None:
    x = pd.read_csv(demo.x_test, index_col=0)
    x.loc[x.index[1], "description"] = "piscine " * (MAX_FIELD_CHARS // 4)  # 2x the cap
    x.to_csv(tmp_path / "x.csv")
    dataset = load_official(tmp_path / "x.csv")
    assert dataset.report.n_truncated_fields == 1
    assert len(dataset.X.loc[x.index[1], "description"]) == MAX_FIELD_CHARS
    assert f"1 text field(s) longer than {MAX_FIELD_CHARS:,} characters were truncated" in dataset.report.summary()


# --- 5, 12, 13, 14: outputs -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "eda", "compare"])
def test_5_out_an_existing_file_is_refused_before_any_work(command, demo, text_bundle, tmp_path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("mine")
    argv = {"evaluate": ["evaluate", "--model", text_bundle, "--x", demo.x_test, "--y", demo.y_test],
            "eda": ["eda", "--x", demo.x_test, "--y", demo.y_test],
            "compare": ["compare", "--x", demo.x_train, "--y", demo.y_train, "--models", "fast"]}[command]
    code, out, err = run([*argv, "--out", target], capsys)
    assert code == 2
    assert error_line(err) == f"error: {target}: exists and is a file; --out must name a folder (new or empty)"
    assert out == "" and target.read_text() == "mine"  # refused before loading anything


@pytest.mark.parametrize("command", ["evaluate", "eda", "compare"])
def test_5_out_a_folder_holding_files_is_refused_and_kept(command, demo, text_bundle, tmp_path, capsys) -> None:
    target = tmp_path / "earlier"
    target.mkdir()
    (target / "report.html").write_text("my earlier report")
    argv = {"evaluate": ["evaluate", "--model", text_bundle, "--x", demo.x_test, "--y", demo.y_test],
            "eda": ["eda", "--x", demo.x_test, "--y", demo.y_test],
            "compare": ["compare", "--x", demo.x_train, "--y", demo.y_train, "--models", "fast"]}[command]
    code, out, err = run([*argv, "--out", target], capsys)
    assert code == 2
    assert error_line(err) == (f"error: {target}: already holds files; --out must name a new or empty folder "
                               "(prodcat never overwrites earlier reports)")
    assert [p.name for p in target.iterdir()] == ["report.html"]
    assert (target / "report.html").read_text() == "my earlier report"


@pytest.mark.parametrize("kind", ["file", "foreign folder"])
def test_5_train_out_is_checked_before_training(kind, demo, tmp_path, capsys) -> None:
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("mine")
        expected = f"error: {target}: exists and is a file, not a model bundle folder; choose another --out"
    else:
        target.mkdir()
        (target / "NOTES.md").write_text("mine")
        expected = (f"error: {target}: exists, is not empty and is not a prodcat model bundle; refusing to write "
                    "into it (choose a new or empty folder)")
    code, out, err = run(["train", "--x", demo.x_train, "--y", demo.y_train, "--out", target,
                          "--runs-dir", tmp_path / "runs"], capsys)
    assert code == 2 and error_line(err) == expected
    assert not (tmp_path / "runs").exists() and "Loading" not in out
    assert (target.read_text() if kind == "file" else (target / "NOTES.md").read_text()) == "mine"


def test_12_retraining_into_a_bundle_folder_keeps_the_other_files(demo, text_bundle, tmp_path, capsys) -> None:
    out = copy_bundle(text_bundle, tmp_path / "model")
    (out / "NOTES.md").write_text("my notes")
    (out / "eval").mkdir()
    (out / "eval" / "metrics.json").write_text("{}")
    old_state = state_file(out)
    code, _, err = run(["train", "--x", demo.x_train, "--y", demo.y_train, "--out", out, "--valid-size", "0",
                        "--text-model", "linear_svc", "--runs-dir", tmp_path / "runs"], capsys)
    assert code == 0, err
    assert (out / "NOTES.md").read_text() == "my notes" and (out / "eval" / "metrics.json").read_text() == "{}"
    assert not old_state.exists() and state_file(out).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["NOTES.md", "eval", BUNDLE_MANIFEST, state_file(out).name])
    assert ProductClassifier.load(out).spec.components[0].model == "linear_svc"


@pytest.mark.parametrize("command", ["predict", "crop"])
def test_13_an_output_that_is_an_input_is_refused(command, demo, text_bundle, tmp_path, capsys) -> None:
    import shutil

    if command == "predict":
        source = Path(shutil.copy(demo.x_test, tmp_path / "X.csv"))
        argv = ["predict", "--model", text_bundle, "--x", source, "--out", source]
    else:
        source = Path(shutil.copy(next(demo.images_test.glob("*.jpg")), tmp_path / "photo.jpg"))
        argv = ["crop", source, "--out", source]
    before = source.read_bytes()
    code, _, err = run(argv, capsys)
    assert code == 2
    assert error_line(err).startswith(f"error: {source}: is also an input file")
    assert source.read_bytes() == before


@pytest.mark.parametrize("existing", [True, False])
def test_14_a_failed_save_leaves_the_previous_bundle_whole(existing, text_bundle, tmp_path, monkeypatch) -> None:
    from prodcat import safe_bundle

    model = ProductClassifier.load(text_bundle)
    target = copy_bundle(text_bundle, tmp_path / "model") if existing else tmp_path / "model"
    before = sorted(p.name for p in tmp_path.rglob("*"))

    def killed(obj, path):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt  # as a kill in the middle of writing

    monkeypatch.setattr(safe_bundle, "save_state", killed)
    with pytest.raises(KeyboardInterrupt):
        model.save(target)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no temporary left, nothing removed
    if existing:
        assert ProductClassifier.load(target).predict(["piscine tubulaire"]).shape == (1,)


# --- 8, 9, 15, 16: bundles ----------------------------------------------------------------------


def _reverse(m):
    m["classes"] = m["classes"][::-1]


def _swap(m):
    c = m["classes"]
    i, j = c.index(2583), c.index(2585)
    c[i], c[j] = c[j], c[i]


def _replace_code(m):
    m["classes"][m["classes"].index(2583)] = 2584


def _unknown_param(m):
    m["params"]["bogus"] = 1


def _format_1(m):
    m["format"] = 1


TAMPERED = [
    ("reversed classes", _reverse, "the manifest's classes are not unique and in increasing order"),
    ("swapped classes (9)", _swap, "the manifest's classes are not unique and in increasing order"),
    ("a code replaced", _replace_code, "component 'text' predicts classes the manifest does not list"),
    ("unknown param", _unknown_param, "the manifest has unknown parameter(s) 'bogus'"),
    ("old pickle format", _format_1, "bundle format 1 stores pickled components, which could run code"),
    ("truncated state", "truncate", "does not match the manifest's checksum (truncated, damaged or edited)"),
    ("deleted state", "delete", "named by the manifest is missing"),
    ("garbage manifest", "garbage", "unreadable manifest"),
]


@pytest.mark.parametrize("name, change, message", TAMPERED, ids=[t[0] for t in TAMPERED])
@pytest.mark.parametrize("command", ["classify", "serve"])
def test_8_9_tampered_bundles_are_one_error_line(name, change, message, command, text_bundle, tmp_path,
                                                 capsys) -> None:
    bundle = copy_bundle(text_bundle, tmp_path / "tampered")
    if change == "truncate":
        data = state_file(bundle).read_bytes()
        state_file(bundle).write_bytes(data[: len(data) // 2])
    elif change == "delete":
        state_file(bundle).unlink()
    elif change == "garbage":
        (bundle / BUNDLE_MANIFEST).write_text("{not json")
    else:
        edit_manifest(bundle, change)
    argv = ["classify", "--model", bundle, "Piscine tubulaire"] if command == "classify" else \
        ["serve", "--model", bundle, "--port", "1"]  # fails before binding any port
    code, out, err = run(argv, capsys)
    assert code == 2 and message in error_line(err) and out == ""


def test_9_an_untouched_bundle_answers_right(text_bundle, capsys) -> None:
    code, out, _ = run(["classify", "--model", text_bundle, "--json", "Piscine tubulaire 366 x 76 cm avec pompe"],
                       capsys)
    assert code == 0 and json.loads(out)["top"][0]["code"] == 2583


MARKER_CODE = "open({marker!r}, 'w').write('pwned')"


class _Payload:
    """Pickles to a call that writes a marker file: what a hostile bundle would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (MARKER_CODE.format(marker=self.marker),))


@pytest.mark.parametrize("where", ["legacy components.joblib", "as the state file", "inside the npz"])
def test_15_a_pickle_payload_in_a_bundle_is_never_executed(where, text_bundle, tmp_path, capsys) -> None:
    from prodcat.persist import file_sha256

    marker = tmp_path / "pwned"
    bundle = copy_bundle(text_bundle, tmp_path / "evil")
    payload = pickle.dumps({"components": _Payload(marker)})
    if where == "legacy components.joblib":
        (bundle / "components.joblib").write_bytes(payload)
        edit_manifest(bundle, _format_1)
        message = "bundle format 1 stores pickled components"
    else:
        target = state_file(bundle)
        if where == "as the state file":
            target.write_bytes(payload)
        else:  # a valid npz whose structure member is an object array (needs pickle to load)
            with open(target, "wb") as handle:
                np.savez(handle, __structure__=np.array([_Payload(marker)], dtype=object))
        edit_manifest(bundle, lambda m: m["state"].update(sha256=file_sha256(target)))
        message = "holds pickled data, which prodcat never loads (loading it could run code)"
    code, _, err = run(["classify", "--model", bundle, "piscine"], capsys)
    assert code == 2 and message in error_line(err)
    assert not marker.exists()


def test_15_an_untrusted_class_in_the_structure_is_refused(text_bundle, tmp_path) -> None:
    from prodcat.persist import UnsafeStateError, file_sha256

    bundle = copy_bundle(text_bundle, tmp_path / "evil")
    target = state_file(bundle)
    structure = {"format": "prodcat-state/1",
                 "root": {"t": "dict", "v": {"components": {"t": "obj", "cls": "subprocess.Popen",
                                                            "state": {"t": "dict", "v": {"args": "touch x"}}}}}}
    with open(target, "wb") as handle:
        np.savez(handle, __structure__=np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8))
    edit_manifest(bundle, lambda m: m["state"].update(sha256=file_sha256(target)))
    with pytest.raises(UnsafeStateError, match="names the class 'subprocess.Popen', which is not a trusted type"):
        ProductClassifier.load(bundle)


def test_15_unsafe_objects_are_refused_on_save(tmp_path) -> None:
    from prodcat.persist import UnsafeStateError, load_state, save_state

    with pytest.raises(UnsafeStateError, match="cannot store a builtins.function"):
        save_state({"f": lambda: 1}, tmp_path / "s.npz")
    save_state({"ok": [1, 2.5, "x", (3, None)], "a": np.arange(3), "d": {1: "one"}}, tmp_path / "s.npz")
    state = load_state(tmp_path / "s.npz")
    assert state["ok"] == [1, 2.5, "x", (3, None)] and state["d"] == {1: "one"}
    np.testing.assert_array_equal(state["a"], np.arange(3))


def test_15_deep_components_train_into_a_safe_bundle(demo, tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    code, _, err = run(["train", "--x", demo.x_train, "--y", demo.y_train, "--text-model", "neural_simple",
                        "--time-limit", "5", "--runs-dir", tmp_path / "runs", "--out", tmp_path / "M"], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "M" / BUNDLE_MANIFEST).read_text())
    assert manifest["spec"]["components"][0]["model"] == "neural_simple"
    with np.load(tmp_path / "M" / manifest["state"]["file"], allow_pickle=False) as arrays:
        assert all(arrays[name].dtype.kind != "O" for name in arrays.files)
    code, _, err = run(["predict", "--model", tmp_path / "M", "--x", demo.x_test, "--out", tmp_path / "sub.csv"],
                       capsys)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "sub.csv")) == len(pd.read_csv(demo.x_test))


def test_16_the_bundle_never_chooses_the_cache_dir(image_bundle, demo, cache, tmp_path, capsys,
                                                   monkeypatch) -> None:
    import shutil

    for fresh in ("my-cache", "env-cache"):  # the exported backbone, so that only the choice of folder is tested
        shutil.copytree(cache / "models", tmp_path / fresh / "models")
    bundle = copy_bundle(image_bundle, tmp_path / "B")
    forbidden = tmp_path / "not-here"
    edit_manifest(bundle, lambda m: m["params"].update(cache_dir=str(forbidden)))
    assert ProductClassifier.load(bundle).cache_dir is None
    mine = tmp_path / "my-cache"
    photo = next(demo.images_test.glob("*.jpg"))
    code, _, err = run(["classify", "--model", bundle, "--cache", mine, "--image", photo, "piscine"], capsys)
    assert code == 0, err
    assert (mine / "features" / "index.sqlite").exists() and not forbidden.exists()
    monkeypatch.setenv("PRODCAT_CACHE_DIR", str(tmp_path / "env-cache"))
    code, _, err = run(["predict", "--model", bundle, "--x", demo.x_test, "--images", demo.images_test,
                        "--out", tmp_path / "sub.csv"], capsys)
    assert code == 0 and (tmp_path / "env-cache" / "features").is_dir() and not forbidden.exists()


# --- 10: unusable photos ------------------------------------------------------------------------


def _photo(kind: str, demo, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.img"
    good = next(demo.images_test.glob("*.jpg")).read_bytes()
    path.write_bytes({"empty": b"", "truncated": good[: len(good) // 2], "text": b"hello, not a photo\n",
                      "bomb": png_bytes(15000, 15000, "1")}[kind])
    return path


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty file (0 bytes)"),
    ("truncated", "corrupt or truncated image"),
    ("text", "not an image (unrecognised format)"),
    ("bomb", "image too large"),
])
def test_10_classify_says_why_a_photo_is_unusable(kind, reason, demo, image_bundle, tmp_path, capsys) -> None:
    photo = _photo(kind, demo, tmp_path)
    code, out, err = run(["classify", "--model", image_bundle, "--image", photo, "Piscine tubulaire"], capsys)
    assert code == 0 and "Traceback" not in err
    assert f"warning: {photo}: photo unusable ({reason}" in err
    assert "the answer comes from the text only" in err and out.startswith("1.")


def test_10_classify_with_a_missing_photo_is_an_error(image_bundle, tmp_path, capsys) -> None:
    code, _, err = run(["classify", "--model", image_bundle, "--image", tmp_path / "nope.jpg", "piscine"], capsys)
    assert code == 2 and error_line(err) == f"error: {tmp_path / 'nope.jpg'}: photo not found"


def test_10_classify_says_a_text_model_ignores_the_photo(text_bundle, demo, capsys) -> None:
    photo = next(demo.images_test.glob("*.jpg"))
    code, _, err = run(["classify", "--model", text_bundle, "--image", photo, "piscine"], capsys)
    assert code == 0 and "this model does not use photos; the answer comes from the text only" in err


def test_10_predict_and_evaluate_count_unusable_photos(image_bundle, demo, tmp_path, capsys) -> None:
    import shutil

    images = tmp_path / "images"
    shutil.copytree(demo.images_test, images)
    first, second = sorted(images.glob("*.jpg"))[:2]
    first.write_bytes(b"not a photo")
    second.write_bytes(b"")
    code, out, _ = run(["predict", "--model", image_bundle, "--x", demo.x_test, "--images", images,
                        "--out", tmp_path / "sub.csv"], capsys)
    assert code == 0 and "2 photo(s) unusable (text used instead)" in out
    code, out, _ = run(["evaluate", "--model", image_bundle, "--x", demo.x_test, "--y", demo.y_test,
                        "--images", images, "--out", tmp_path / "eval"], capsys)
    assert code == 0 and "2 photo(s) unusable (text used instead)" in out


# --- 6: a damaged embedding cache -------------------------------------------------------------


def _filled_store(root: Path):
    from prodcat.image.cache import FeatureStore, FileId

    files = []
    for i in range(6):
        path = root / f"f{i}.jpg"
        path.write_bytes(bytes([i]) * (i + 1))
        files.append(FileId.of(path))
    with FeatureStore(root / "features", tag="t", dim=4) as store:
        store.put(files[:3], np.ones((3, 4), np.float32))
        store.put(files[3:], np.full((3, 4), 2, np.float32))
    return files


@pytest.mark.parametrize("damage", ["garbage index", "truncated shard", "deleted shard"])
def test_6_a_damaged_cache_warns_once_and_recomputes(damage, tmp_path, capsys) -> None:
    from prodcat.image.cache import FeatureStore

    files = _filled_store(tmp_path)
    shards = sorted((tmp_path / "features" / "shards").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    if damage == "garbage index":
        for extra in (tmp_path / "features").glob("index.sqlite-*"):
            extra.unlink()
        (tmp_path / "features" / "index.sqlite").write_bytes(os.urandom(4096))
        lost = 6
    elif damage == "truncated shard":
        shards[0].write_bytes(shards[0].read_bytes()[:150])
        lost = 3
    else:
        shards[0].unlink()
        lost = 3
    with FeatureStore(tmp_path / "features", tag="t", dim=4) as store:
        hits = store.lookup(files)
        assert sum(h is None for h in hits) == lost  # never reported as cached
        cached = [h for h in hits if h is not None]
        if cached:
            np.testing.assert_array_equal(store.read(cached), np.full((len(cached), 4), 2, np.float32))
        assert len(store.repairs) == 1
        store.put([f for f, h in zip(files, hits) if h is None], np.zeros((lost, 4), np.float32))
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and ("damaged" in err)
    with FeatureStore(tmp_path / "features", tag="t", dim=4) as store:  # repaired: all cached, no warning
        assert all(h is not None for h in store.lookup(files)) and not store.repairs


# --- 7: signals -------------------------------------------------------------------------------


def _python(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


EMBED_SCRIPT = """
    import os, signal, sys, time
    import numpy as np
    from PIL import Image
    from prodcat.cli import Terminated, _on_sigterm
    from prodcat.image.backbone import Backbone
    from prodcat.image.cache import FeatureStore
    from prodcat.image.embed import ImageEmbedder

    root = sys.argv[1]
    paths = []
    for i in range(400):
        path = os.path.join(root, f"p{i}.png")
        Image.new("RGB", (40, 40), (i % 256, 0, 0)).save(path)
        paths.append(path)

    class SlowBackbone(Backbone):
        name, tag, input_size, dim = "fake", "fake", 32, 4
        def __init__(self):
            self.batches = 0
        def embed(self, images):
            self.batches += 1
            if self.batches == 3:
                pids = [p.pid for p in __import__("multiprocessing").active_children()]
                print(" ".join(map(str, pids)), flush=True)
            time.sleep(0.2)
            return np.ones((len(images), 4), np.float32)

    signal.signal(signal.SIGTERM, _on_sigterm)
    embedder = ImageEmbedder(SlowBackbone(), cache_dir=root, workers=2, batch_size=8, flush_every=10**6,
                             progress=False)
    embedder.inline_below = 0
    try:
        embedder.run(paths)
    except Terminated:
        with FeatureStore(os.path.join(root, "features"), tag="fake-32px-p1", dim=4) as store:
            print("kept", len(store), flush=True)
        sys.exit(143)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_7_embedding_workers_die_with_their_parent_and_sigterm_flushes(sig, tmp_path) -> None:
    process = _python(EMBED_SCRIPT, str(tmp_path))
    workers = [int(p) for p in process.stdout.readline().split()]
    assert len(workers) == 2, process.stderr.read()
    process.send_signal(sig)
    process.wait(timeout=30)
    assert _wait_gone(workers) == []
    if sig == signal.SIGTERM:
        assert process.returncode == 143
        kept = int(process.stdout.readline().split()[1])
        assert kept >= 16  # the batches embedded before the signal were flushed, not dropped


APP_SCRIPT = """
    import signal, subprocess, sys
    from prodcat.cli import EXIT_TERMINATED, _on_sigterm
    from prodcat.serve import launch

    child = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(120)"]
    launch.webapp_command = lambda *a, **k: (child, None)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sys.exit(launch.run_webapp("unused"))
    except KeyboardInterrupt as stop:
        sys.exit(EXIT_TERMINATED if type(stop).__name__ == "Terminated" else 130)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")
def test_7_sigterm_to_app_stops_the_streamlit_child(tmp_path) -> None:
    process = _python(APP_SCRIPT)
    child = int(process.stdout.readline())
    assert _alive(child)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert _wait_gone([child]) == []
    assert process.returncode == 143  # the CLI's "terminated" status, as for every other command


# --- 11, 17: the REST API ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(text_bundle):
    from fastapi.testclient import TestClient

    from prodcat.serve.api import create_app

    with TestClient(create_app(text_bundle)) as test_client:
        yield test_client


def test_11_no_known_word_and_no_photo_gets_a_warning(client) -> None:
    from prodcat.input_checks import NO_USABLE_INPUT

    answer = client.post("/v1/predict", json={"designation": "!!!???..."})
    assert answer.status_code == 200 and NO_USABLE_INPUT in answer.json()["warnings"]
    answer = client.post("/v1/predict", json={"designation": "Piscine tubulaire"})
    assert answer.status_code == 200 and answer.json()["warnings"] == [] and answer.json()["code"] == 2583


def test_17_a_small_png_of_many_pixels_is_refused(image_bundle) -> None:
    import base64

    from fastapi.testclient import TestClient

    from prodcat.serve.api import create_app

    data = png_bytes(6300, 6300, "1")
    assert len(data) < 100_000
    with TestClient(create_app(image_bundle)) as client:
        answer = client.post("/v1/predict", json={"designation": "piscine",
                                                  "image_base64": base64.b64encode(data).decode()})
    assert answer.status_code == 413
    assert "6300x6300 pixels, over the limit of 16,000,000 pixels" in answer.json()["detail"]


def test_17_concurrent_decodes_are_capped() -> None:
    from starlette.exceptions import HTTPException

    from prodcat.serve.limits import DecodeGate

    gate = DecodeGate(1, wait_s=0.2)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.slot():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with pytest.raises(HTTPException) as refused:
        with gate.slot():
            pass
    release.set()
    thread.join()
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "5"}
    with gate.slot():  # free again
        pass


async def _call(middleware, messages) -> list[dict]:
    sent = []
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        await __import__("asyncio").sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": [], "client": ("1.2.3.4", 5)}
    await middleware(scope, receive, send)
    return sent


def test_17_a_slow_body_gets_408_and_an_abandoned_one_logs_one_line(caplog) -> None:
    import asyncio

    from starlette.requests import Request

    from prodcat.serve.limits import BodySizeLimit

    async def app(scope, receive, send):
        await Request(scope, receive).body()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    first_byte = {"type": "http.request", "body": b"{", "more_body": True}
    slow = asyncio.run(_call(BodySizeLimit(app, timeout_s=0.2), [first_byte]))
    assert slow[0]["status"] == 408 and b"not received within 0.2 s" in slow[1]["body"]
    with caplog.at_level("WARNING", logger="prodcat.serve"):
        gone = asyncio.run(_call(BodySizeLimit(app), [first_byte, {"type": "http.disconnect"}]))
    assert gone == []
    assert [r.getMessage() for r in caplog.records] == [
        "1.2.3.4:5 abandoned its POST /v1/predict request after 1 body bytes"]


def test_17_incomplete_headers_are_cut_off(monkeypatch) -> None:
    import uvicorn

    from prodcat.serve.limits import HEADER_TIMEOUT_ENV, server_options

    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "0.5")

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off",
                                          **server_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            started = time.monotonic()
            assert sock.recv(100) == b""  # closed by the server
            assert time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a whole request still works
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


# --- the CLI's last line of defence ------------------------------------------------------------


@pytest.mark.parametrize("error, line", [
    (ValueError("bad\nvalue"), "error: ValueError: bad value (run with --debug for the traceback)"),
    (OSError(28, "No space left on device", "/x/y"), "error: /x/y: No space left on device"),
    (__import__("sqlite3").DatabaseError("database disk image is malformed"),
     "error: the embedding cache database is unusable (database disk image is malformed); delete the cache "
     "folder to rebuild it"),
    (MemoryError(), "error: out of memory"),
])
def test_any_remaining_error_is_one_line_and_debug_shows_the_traceback(error, line, monkeypatch, capsys) -> None:
    import prodcat.cli as cli

    def fail(args):
        raise error

    monkeypatch.setattr(cli, "cmd_presets", fail)
    code, _, err = run(["presets"], capsys)
    assert code == 2 and error_line(err) == line
    code, _, err = run(["presets", "--debug"], capsys)
    assert code == 2 and "Traceback" in err and err.strip().endswith(line)

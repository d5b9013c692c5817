"""Engines: chunked prediction (CSV and Parquet), shards then one file, and the Ray engine matching the local one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prodcat.cli import DEFAULT_CHUNK_ROWS as CLI_CHUNK_ROWS, main
from prodcat.data.io import load_official, read_submission
from prodcat.data.sample import make_demo_dataset
from prodcat.engines import DEFAULT_CHUNK_ROWS, LocalEngine, OutputSpec, ProductSource, get_engine
from prodcat.engines.sink import ShardedOutput
from prodcat.errors import DataError, ProdcatError
from prodcat.predictor import ProductClassifier
from prodcat.review import ReviewPolicy, prediction_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=300, n_test=90, seed=5,
                             with_images=False, progress=False)


@pytest.fixture(scope="module")
def bundle(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fast-preset bundle with review thresholds (measured on its validation rows)."""
    root = tmp_path_factory.mktemp("model")
    assert main(["train", "--x", str(demo.x_train), "--y", str(demo.y_train), "--out", str(root / "bundle"),
                 "--runs-dir", str(root / "runs")]) == 0
    return root / "bundle"


@pytest.fixture(scope="module")
def whole(demo, bundle: Path) -> tuple[pd.Series, pd.DataFrame]:
    """Codes and the top-3 table predicted on the whole file loaded at once (the reference)."""
    model = ProductClassifier.load(bundle)
    X = load_official(demo.x_test).X
    table = prediction_table(model.predict_proba(X), model.classes_, X.index, top=3,
                             policy=ReviewPolicy.for_model(model))
    return pd.Series(model.predict(X), index=X.index), table


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0)


def test_local_chunks_equal_whole_file(demo, bundle: Path, whole, tmp_path: Path) -> None:
    codes, _ = whole
    stats = LocalEngine().predict(bundle, ProductSource(str(demo.x_test)), tmp_path / "sub.csv", chunk_rows=7)
    assert stats.n_rows == 90 and stats.n_shards == 13
    submission = read_submission(stats.path)
    assert (tmp_path / "sub.csv").read_text().splitlines()[0] == ",prdtypecode"
    pd.testing.assert_series_equal(submission, codes.rename("prdtypecode"), check_names=False)
    assert [p.name for p in tmp_path.iterdir()] == ["sub.csv"]  # shards removed
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(stats.path.stat().st_mode) == 0o666 & ~umask  # not the 0600 of a temporary file


def test_parquet_input_and_table_equal_whole_file(demo, bundle: Path, whole, tmp_path: Path) -> None:
    _, table = whole
    parquet = tmp_path / "X_test.parquet"
    pd.read_csv(demo.x_test, index_col=0).to_parquet(parquet)
    out = tmp_path / "table.csv"
    stats = LocalEngine().predict(bundle, ProductSource(str(parquet)), out, output=OutputSpec(top=3), chunk_rows=20)
    written = _read_table(out)
    assert list(written.columns) == list(table.columns)
    pd.testing.assert_frame_equal(written, _read_table_of(table, tmp_path / "reference.csv"))
    assert table["needs_review"].notna().all() and stats.n_review == int(table["needs_review"].sum())


def _read_table_of(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    table.to_csv(path)
    return _read_table(path)


def test_generic_csv_without_index_numbers_rows_across_chunks(demo, bundle: Path, tmp_path: Path) -> None:
    csv = tmp_path / "titles.csv"
    pd.read_csv(demo.x_test, index_col=0)[["designation"]].rename(columns={"designation": "title"}).to_csv(
        csv, index=False)
    out = tmp_path / "sub.csv"
    assert main(["predict", "--model", str(bundle), "--x", str(csv), "--text-col", "title", "--out", str(out),
                 "--chunk-rows", "25"]) == 0
    assert list(read_submission(out).index) == list(range(90))


def test_failed_chunk_keeps_existing_output(demo, bundle: Path, tmp_path: Path, capsys) -> None:
    x = pd.read_csv(demo.x_test, index_col=0)
    x.iloc[50, x.columns.get_loc("designation")] = ""
    x.iloc[50, x.columns.get_loc("description")] = ""
    bad = tmp_path / "bad.csv"
    x.to_csv(bad)
    out = tmp_path / "sub.csv"
    out.write_text("mine\n")
    assert main(["predict", "--model", str(bundle), "--x", str(bad), "--out", str(out), "--chunk-rows", "20"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "rows 40..59" in error and "no text" in error
    assert out.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "sub.csv"]


def test_bad_inputs_are_one_error_line(demo, bundle: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "sub.csv")
    for argv, message in [
        (["--x", str(tmp_path / "missing.csv")], "not found"),
        (["--x", str(demo.x_test), "--chunk-rows", "0"], "at least 1 row"),
        (["--x", str(demo.y_test)], "designation"),
        (["--x", str(demo.x_test), "--address", "auto"], "--address needs --engine ray"),
    ]:
        assert main(["predict", "--model", str(bundle), "--out", out, *argv]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and message in error and error.count("\n") == 1, error
    with ShardedOutput(tmp_path / "empty.csv") as sink, pytest.raises(DataError, match="no products"):
        sink.finish()


def test_cli_default_chunk_is_the_engines(tmp_path: Path) -> None:
    assert CLI_CHUNK_ROWS == DEFAULT_CHUNK_ROWS


def test_ray_engine_missing_is_an_install_hint(demo, bundle: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    assert main(["predict", "--model", str(bundle), "--x", str(demo.x_test), "--out", str(tmp_path / "s.csv"),
                 "--engine", "ray"]) == 2
    assert "pip install 'prodcat[ray]'" in capsys.readouterr().err
    with pytest.raises(ProdcatError, match="unknown engine"):
        get_engine("spark")


def test_local_predict_never_imports_ray(demo, bundle: Path, tmp_path: Path) -> None:
    code = ("import sys, prodcat, prodcat.engines\n"
            "from prodcat.cli import main\n"
            f"assert main(['predict', '--model', {str(bundle)!r}, '--x', {str(demo.x_test)!r}, "
            f"'--out', {str(tmp_path / 's.csv')!r}, '--top', '2']) == 0\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# --- the Ray engine (skipped when Ray is not installed) -----------------------------------


@pytest.fixture(scope="module")
def ray_engine(ray_runtime):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    return ray_runtime


def test_ray_predictions_equal_local(ray_engine, demo, bundle: Path, whole, tmp_path: Path) -> None:
    codes, table = whole
    local = LocalEngine().predict(bundle, ProductSource(str(demo.x_test)), tmp_path / "local.csv", chunk_rows=30)
    distributed = ray_engine.predict(bundle, ProductSource(str(demo.x_test)), tmp_path / "ray.csv", chunk_rows=30)
    assert distributed.engine == "ray" and distributed.n_rows == 90
    assert local.path.read_bytes() == distributed.path.read_bytes()
    pd.testing.assert_series_equal(read_submission(distributed.path), codes.rename("prdtypecode"), check_names=False)
    parquet = tmp_path / "X_test.parquet"
    pd.read_csv(demo.x_test, index_col=0).to_parquet(parquet)
    out = tmp_path / "ray-table.csv"
    stats = ray_engine.predict(bundle, ProductSource(str(parquet)), out, output=OutputSpec(top=3), chunk_rows=40)
    pd.testing.assert_frame_equal(_read_table(out), _read_table_of(table, tmp_path / "reference.csv"))
    assert stats.n_review == int(table["needs_review"].sum())


def test_ray_errors_come_back_as_prodcat_errors(ray_engine, demo, bundle: Path, tmp_path: Path) -> None:
    x = pd.read_csv(demo.x_test, index_col=0)
    x.iloc[3, x.columns.get_loc("designation")] = ""
    x.iloc[3, x.columns.get_loc("description")] = ""
    bad = tmp_path / "bad.csv"
    x.to_csv(bad)
    with pytest.raises(ProdcatError, match="1 product.* have no text and no image"):
        ray_engine.predict(bundle, ProductSource(str(bad)), tmp_path / "sub.csv")
    assert list(tmp_path.iterdir()) == [bad]
    not_a_bundle = tmp_path / "not-a-bundle"
    not_a_bundle.mkdir()
    with pytest.raises(ProdcatError, match="not-a-bundle"):  # the actors cannot load it: one error, no traceback
        ray_engine.predict(not_a_bundle, ProductSource(str(demo.x_test)), tmp_path / "sub.csv")
    with pytest.raises(ProdcatError, match="task 3 is bad"):
        ray_engine.map(_fail_on_three, range(5))


def test_ray_map_keeps_task_order(ray_engine) -> None:
    assert ray_engine.map(_square, range(6)) == LocalEngine().map(_square, range(6)) == [0, 1, 4, 9, 16, 25]
    shared = np.arange(10.0)
    assert ray_engine.map(_sum_of, [(0, 5), (5, 10), (2, 3)], shared) == \
        LocalEngine().map(_sum_of, [(0, 5), (5, 10), (2, 3)], shared) == [10.0, 35.0, 2.0]


def _square(value: int) -> int:
    return value * value


def _sum_of(bounds: tuple[int, int], values: np.ndarray) -> float:
    return float(values[bounds[0]:bounds[1]].sum())


def _fail_on_three(value: int) -> int:
    if value == 3:
        raise DataError("task 3 is bad")
    return value


def test_ray_embed_fills_the_cache_the_local_engine_reads(ray_engine, tmp_path_factory, tmp_path: Path,
                                                           capsys) -> None:
    pytest.importorskip("onnxruntime")
    from test_image_embed import product_photo

    cache = tmp_path_factory.getbasetemp() / "prodcat-image-models"  # the session's backbone export, reused
    folder = tmp_path / "images"
    folder.mkdir()
    photos = [str(product_photo(folder / f"image_{i}_product_{i}.jpg", i)) for i in range(4)]
    (folder / "image_9_product_9.jpg").write_bytes(b"not a jpeg")
    assert main(["embed", "--images", str(folder), "--cache", str(cache), "--engine", "ray", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "5 images: 4 computed, 0 from cache, 1 failed" in out and "image_9_product_9.jpg" in out
    again = LocalEngine().embed(photos, cache_dir=str(cache))
    assert (again.n_cached, again.n_computed) == (4, 0)

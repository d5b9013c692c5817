"""Loading official and generic files, images, mojibake, products for prediction, submissions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prodcat.data.io import (
    MAX_LISTED_MISSING,
    PRODUCT_COLUMNS,
    TEXT_COLUMNS,
    LoadReport,
    attach_images,
    image_filename,
    load_generic_csv,
    load_official,
    make_products,
    read_labels,
    read_submission,
    write_submission,
)
from prodcat.errors import DataError
from prodcat.taxonomy import CODES


def official_frames(n: int = 4, start: int = 100) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tiny X and Y frames in the official layout (unnamed integer index)."""
    index = pd.RangeIndex(start, start + n)
    X = pd.DataFrame(
        {
            "designation": [f"Produit numéro {i}" for i in range(n)],
            "description": [f"Description <br> {i}" if i % 2 == 0 else None for i in range(n)],
            "productid": [1000 + i for i in range(n)],
            "imageid": [5000 + i for i in range(n)],
        },
        index=index,
    )
    Y = pd.DataFrame({"prdtypecode": [CODES[i % len(CODES)] for i in range(n)]}, index=index)
    return X, Y


def write_official(tmp_path: Path, X: pd.DataFrame, Y: pd.DataFrame | None = None, **to_csv) -> tuple[Path, Path | None]:
    x_path = tmp_path / "X_train.csv"
    X.to_csv(x_path, **to_csv)
    y_path = None
    if Y is not None:
        y_path = tmp_path / "Y_train.csv"
        Y.to_csv(y_path)
    return x_path, y_path


def make_images(folder: Path, X: pd.DataFrame, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        (folder / image_filename(X.loc[r, "imageid"], X.loc[r, "productid"])).write_bytes(b"\xff\xd8\xff")


# ---------------------------------------------------------------- official files


def test_image_filename_follows_the_official_pattern():
    assert image_filename(1263597046, 3804725264) == "image_1263597046_product_3804725264.jpg"
    assert image_filename(np.int64(5), pd.array([7], dtype="Int64")[0]) == "image_5_product_7.jpg"


def test_load_official_round_trip_standard_frame(tmp_path):
    X, Y = official_frames()
    x_path, y_path = write_official(tmp_path, X, Y)
    ds = load_official(x_path, y_path)
    assert list(ds.X.columns) == list(PRODUCT_COLUMNS)
    assert ds.X.index.tolist() == X.index.tolist() and ds.X.index.name is None
    assert ds.X["designation"].tolist() == X["designation"].tolist()
    assert ds.X["description"].tolist() == ["Description <br> 0", "", "Description <br> 2", ""]
    assert str(ds.X["productid"].dtype) == "Int64" and str(ds.X["imageid"].dtype) == "Int64"
    assert ds.X["productid"].tolist() == X["productid"].tolist()
    assert ds.X["image_path"].dtype == object and ds.X["image_path"].isna().all()
    assert ds.y is not None and ds.y.name == "prdtypecode" and ds.y.dtype == np.int64
    assert ds.y.index.equals(ds.X.index) and ds.y.tolist() == Y["prdtypecode"].tolist()
    report = ds.report
    assert (report.n_rows, report.n_empty_descriptions, report.n_mojibake_fixed) == (4, 2, 0)
    assert report.images_dir is None and report.n_images_found == report.n_images_missing == 0
    assert "not checked" in report.summary()


def test_load_official_without_labels(tmp_path):
    x_path, _ = write_official(tmp_path, official_frames()[0])
    ds = load_official(x_path)
    assert ds.y is None and len(ds) == 4


def test_text_that_looks_like_missing_markers_stays_text(tmp_path):
    X, Y = official_frames(3)
    X["designation"] = ["NA", "None", "null"]
    x_path, y_path = write_official(tmp_path, X, Y)
    assert load_official(x_path, y_path).X["designation"].tolist() == ["NA", "None", "null"]


def test_images_found_missing_and_listed(tmp_path):
    X, Y = official_frames(4)
    x_path, y_path = write_official(tmp_path, X, Y)
    images = tmp_path / "image_train"
    make_images(images, X, [100, 102])
    (images / "unrelated.jpg").write_bytes(b"x")
    ds = load_official(x_path, y_path, images)
    paths = ds.X["image_path"]
    assert paths[100] == str((images / image_filename(5000, 1000)).resolve())
    assert Path(paths[102]).is_absolute() and Path(paths[102]).exists()
    assert paths[101] is None and paths[103] is None
    report = ds.report
    assert (report.n_images_found, report.n_images_missing) == (2, 2)
    assert [Path(p).name for p in report.missing_images] == [image_filename(5001, 1001), image_filename(5003, 1003)]
    assert report.images_dir == str(images.resolve())
    assert "2 found, 2 missing" in report.summary()


def test_missing_image_list_is_capped_but_counts_are_complete(tmp_path):
    X, Y = official_frames(MAX_LISTED_MISSING + 5)
    x_path, y_path = write_official(tmp_path, X, Y)
    (tmp_path / "images").mkdir()
    report = load_official(x_path, y_path, tmp_path / "images").report
    assert report.n_images_missing == MAX_LISTED_MISSING + 5
    assert len(report.missing_images) == MAX_LISTED_MISSING
    assert any("no image matched" in w for w in report.warnings)


def test_images_parent_folder_gets_a_hint(tmp_path):
    X, Y = official_frames(2)
    x_path, y_path = write_official(tmp_path, X, Y)
    make_images(tmp_path / "images" / "image_train", X, [100])
    report = load_official(x_path, y_path, tmp_path / "images").report
    assert report.n_images_found == 0
    assert any("image_train" in w for w in report.warnings)


def test_images_folder_that_does_not_exist_is_an_error(tmp_path):
    x_path, _ = write_official(tmp_path, official_frames()[0])
    with pytest.raises(DataError, match="images folder not found"):
        load_official(x_path, images_dir=tmp_path / "nope")


def test_attach_images_directly_and_rows_without_ids(tmp_path):
    X = make_products(["a", "b", "c"])
    X["productid"] = pd.array([1, 2, pd.NA], dtype="Int64")
    X["imageid"] = pd.array([10, 20, 30], dtype="Int64")
    (tmp_path / image_filename(10, 1)).write_bytes(b"x")
    out, n_found, missing = attach_images(X, tmp_path)
    assert n_found == 1
    assert out["image_path"].tolist() == [str(tmp_path.resolve() / image_filename(10, 1)), None, None]
    assert missing == [str(tmp_path.resolve() / image_filename(20, 2))]
    assert X["image_path"].isna().all(), "the input frame is not modified"


def test_mojibake_is_repaired_and_counted(tmp_path):
    X, Y = official_frames(4)
    X.loc[100, "designation"] = "CafetiÃ¨re Ã  piston"
    X.loc[101, "description"] = "Lâ€™eau chaude"
    X.loc[102, "description"] = "l’été\xa0chaud"  # correct text: curly quote and no-break space stay
    X.loc[102, "designation"] = "voilÃ  tout"  # "à" whose no-break space became a space
    X.loc[103, "designation"] = "l\x92eau et l\x9cuvre"  # cp1252 bytes read as latin-1 (C1 controls)
    x_path, y_path = write_official(tmp_path, X, Y)
    ds = load_official(x_path, y_path)
    assert ds.X.loc[100, "designation"] == "Cafetière à piston"
    assert ds.X.loc[101, "description"] == "L’eau chaude"  # repaired; curly quotes are kept
    assert ds.X.loc[102, "description"] == "l’été\xa0chaud"
    assert ds.X.loc[102, "designation"] == "voilà tout"
    assert ds.X.loc[103, "designation"] == "l’eau et lœuvre"
    assert ds.report.n_mojibake_fixed == 4
    raw = load_official(x_path, y_path, fix_mojibake=False)
    assert raw.X.loc[100, "designation"] == "CafetiÃ¨re Ã  piston" and raw.report.n_mojibake_fixed == 0


def test_utf8_bom_and_other_encodings(tmp_path):
    X, Y = official_frames(2)
    X.loc[100, "designation"] = "Théière émaillée"
    x_path, y_path = write_official(tmp_path, X, Y, encoding="utf-8-sig")
    assert x_path.read_bytes().startswith(b"\xef\xbb\xbf")
    ds = load_official(x_path, y_path)
    assert ds.X.index.tolist() == [100, 101] and ds.X.loc[100, "designation"] == "Théière émaillée"
    X.to_csv(x_path, encoding="cp1252")
    assert load_official(x_path, y_path, encoding="cp1252").X.loc[100, "designation"] == "Théière émaillée"


def test_labels_in_another_order_are_reordered_with_a_warning(tmp_path):
    X, Y = official_frames(4)
    x_path, _ = write_official(tmp_path, X)
    y_path = tmp_path / "Y.csv"
    Y.iloc[::-1].to_csv(y_path)
    ds = load_official(x_path, y_path)
    assert ds.y.index.equals(ds.X.index) and ds.y.tolist() == Y["prdtypecode"].tolist()
    assert any("reordered" in w for w in ds.report.warnings)


def test_empty_designation_with_description_is_kept_with_a_warning(tmp_path):
    X, Y = official_frames(4)
    X.loc[102, "designation"] = "   "
    x_path, y_path = write_official(tmp_path, X, Y)
    ds = load_official(x_path, y_path)
    assert len(ds.X) == 4 and ds.X.loc[102, "description"] == "Description <br> 2"
    assert any("empty designation" in w and "102" in w for w in ds.report.warnings)
    assert "warning:" in ds.report.summary()


def test_report_to_dict_is_json_ready(tmp_path):
    X, Y = official_frames(3)
    x_path, y_path = write_official(tmp_path, X, Y)
    (tmp_path / "img").mkdir()
    d = load_official(x_path, y_path, tmp_path / "img").report.to_dict()
    assert json.loads(json.dumps(d))["n_images_missing"] == 3
    assert LoadReport(**d) == LoadReport(**d)


def test_read_labels(tmp_path):
    _, Y = official_frames(5)
    Y.to_csv(tmp_path / "Y.csv")
    y = read_labels(tmp_path / "Y.csv")
    assert y.name == "prdtypecode" and y.dtype == np.int64 and y.index.tolist() == list(range(100, 105))


# ---------------------------------------------------------------- generic CSV


def test_load_generic_csv_text_labels_and_image_column(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.jpg").write_bytes(b"x")
    pd.DataFrame(
        {
            "title": ["Lampe", "Chaise", "Livre"],
            "body": ["Lampe LED", None, "Roman"],
            "label": [1560, 1560, 10],
            "img": ["a.jpg", "b.jpg", None],
        }
    ).to_csv(tmp_path / "data.csv", index=False)
    ds = load_generic_csv(tmp_path / "data.csv", "title", "label", description_col="body", images_dir=tmp_path / "pics", image_col="img")
    assert list(ds.X.columns) == list(PRODUCT_COLUMNS)
    assert ds.X["designation"].tolist() == ["Lampe", "Chaise", "Livre"]
    assert ds.X["description"].tolist() == ["Lampe LED", "", "Roman"]
    assert ds.X["productid"].isna().all() and str(ds.X["imageid"].dtype) == "Int64"
    assert ds.X["image_path"].tolist() == [str((tmp_path / "pics" / "a.jpg").resolve()), None, None]
    assert ds.y.name == "prdtypecode" and ds.y.tolist() == [1560, 1560, 10]
    assert (ds.report.n_images_found, ds.report.n_images_missing) == (1, 2)
    assert ds.report.missing_images == [str((tmp_path / "pics" / "b.jpg").resolve())]


def test_generic_csv_image_names_relative_to_the_csv_folder(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"x")
    pd.DataFrame({"text": ["a", "b"], "img": ["x.jpg", "y.jpg"]}).to_csv(tmp_path / "d.csv", index=False)
    ds = load_generic_csv(tmp_path / "d.csv", "text", image_col="img")
    assert ds.y is None and ds.X["description"].tolist() == ["", ""]
    assert ds.X["image_path"].tolist() == [str((tmp_path / "x.jpg").resolve()), None]


def test_generic_csv_with_official_ids_matches_official_image_names(tmp_path):
    X, _ = official_frames(2)
    X.to_csv(tmp_path / "d.csv", index=False)
    make_images(tmp_path / "img", X, [101])
    ds = load_generic_csv(tmp_path / "d.csv", "designation", images_dir=tmp_path / "img")
    assert ds.X.index.tolist() == [0, 1]
    assert ds.X["image_path"][0] is None and ds.X["image_path"][1].endswith(image_filename(5001, 1001))


def test_generic_csv_errors(tmp_path):
    pd.DataFrame({"text": ["a"], "label": [10]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) 'titre'; found: 'text', 'label'"):
        load_generic_csv(tmp_path / "d.csv", "titre")
    with pytest.raises(DataError, match="cannot match images"):
        load_generic_csv(tmp_path / "d.csv", "text", images_dir=tmp_path)
    pd.DataFrame({"text": ["a"], "label": [11]}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(DataError, match="row 0 = 11"):
        load_generic_csv(tmp_path / "e.csv", "text", "label")


# ---------------------------------------------------------------- products for prediction


def test_make_products_standard_frame(tmp_path):
    X = make_products(["Lampe de chevet", "Chaise"], ["Lampe LED", None], [tmp_path / "a.jpg", None])
    assert list(X.columns) == list(PRODUCT_COLUMNS)
    assert X["description"].tolist() == ["Lampe LED", ""]
    assert X["image_path"].tolist() == [str(tmp_path / "a.jpg"), None] and X["image_path"].dtype == object
    assert X["productid"].isna().all() and str(X["productid"].dtype) == "Int64"
    assert make_products(np.array(["a", "b"], dtype=object), [np.nan, "x"])["description"].tolist() == ["", "x"]
    one = make_products("TÃ©lÃ©phone")
    assert len(one) == 1 and one["designation"][0] == "Téléphone"


def test_make_products_matches_loader_dtypes(tmp_path):
    X, Y = official_frames(2)
    x_path, y_path = write_official(tmp_path, X, Y)
    loaded = load_official(x_path, y_path).X
    made = make_products(["a", "b"])
    assert loaded.dtypes.astype(str).tolist() == made.dtypes.astype(str).tolist()


def test_make_products_rejects_bad_input():
    with pytest.raises(DataError, match="2 values but descriptions has 1"):
        make_products(["a", "b"], ["x"])
    with pytest.raises(DataError, match="no text and no image: 1") as info:
        make_products(["a", " "], [None, ""])
    assert info.value.row == 1
    assert len(make_products([""], image_paths=["photo.jpg"])) == 1  # an image alone is enough


# ---------------------------------------------------------------- submissions


def test_submission_format_and_round_trip(tmp_path):
    index = pd.Index([84916, 84917, 84918])
    out = write_submission(index, np.array([2583, 10, 1560]), tmp_path / "sub" / "submission.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == ",prdtypecode"
    assert lines[1] == "84916,2583"
    back = read_submission(out)
    pd.testing.assert_series_equal(back, pd.Series([2583, 10, 1560], index=index, name="prdtypecode"))
    official = pd.read_csv(out, index_col=0)
    assert official.columns.tolist() == ["prdtypecode"] and official.index.tolist() == index.tolist()


def test_submission_with_named_index_still_has_empty_first_header_cell(tmp_path):
    s = pd.Series([10, 40], index=pd.Index([5, 6], name="row"))
    out = write_submission(s.index, s, tmp_path / "s.csv")
    assert out.read_text().splitlines()[0] == ",prdtypecode"


def test_write_submission_rejects_bad_codes(tmp_path):
    with pytest.raises(DataError, match="3 values but codes has 2"):
        write_submission([1, 2, 3], [10, 40], tmp_path / "s.csv")
    with pytest.raises(DataError, match="integer"):
        write_submission([1, 2], [10.5, 40], tmp_path / "s.csv")
    with pytest.raises(DataError, match="duplicated"):
        write_submission([1, 1], [10, 40], tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------- the real sample


def test_real_sample(shared_data):
    folder = shared_data / "rakuten_sample"
    ds = load_official(folder / "X_train_sample.csv", folder / "Y_train_sample.csv", folder / "image_train")
    assert len(ds.X) == 499 and ds.X.index.tolist() == list(range(499))
    assert ds.y is not None and ds.y.isin(CODES).all() and ds.y.index.equals(ds.X.index)
    truth = pd.read_csv(folder / "image_labels.csv")
    in_sample = truth[truth["in_text_sample"]]
    assert len(truth) == 22 and len(in_sample) == 7
    report = ds.report
    assert (report.n_images_found, report.n_images_missing) == (7, 492)
    with_image = ds.X[ds.X["image_path"].notna()]
    assert sorted(with_image.index) == sorted(in_sample["row"])
    assert (ds.y[with_image.index] == in_sample.set_index("row")["prdtypecode"][with_image.index]).all()
    assert all(Path(p).exists() for p in with_image["image_path"])
    assert report.n_empty_descriptions == (pd.read_csv(folder / "X_train_sample.csv")["description"].isna()).sum()
    assert report.n_mojibake_fixed >= 3
    for column in TEXT_COLUMNS:
        assert not ds.X[column].str.contains("Ã©|Ã¨|â€™|Â·|[\x80-\x9f]", regex=True).any()


def test_rows_with_an_image_and_no_text_are_kept_with_a_warning(tmp_path):
    X, Y = official_frames(3)
    X.loc[101, ["designation", "description"]] = ["", ""]
    x_path, y_path = write_official(tmp_path, X, Y)
    make_images(tmp_path / "img", X, [101])
    ds = load_official(x_path, y_path, tmp_path / "img")
    assert len(ds.X) == 3 and ds.X.loc[101, "designation"] == "" and ds.X.loc[101, "image_path"]
    assert any("no text, only an image" in w and "101" in w for w in ds.report.warnings)
    with pytest.raises(DataError, match=r"empty designation and no description and no image.*: 101"):
        load_official(x_path, y_path)  # no image folder: nothing to classify

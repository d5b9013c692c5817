"""Every validation rule on bad input: the error names the file, the row and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodcat.data.io import load_generic_csv, load_official, read_labels
from prodcat.errors import DataError

HEADER = ",designation,description,productid,imageid\n"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.fixture
def x_file(tmp_path) -> Path:
    return write(
        tmp_path / "X.csv",
        HEADER + "0,Lampe,Lampe LED,11,21\n1,Chaise,,12,22\n2,Livre,Roman,13,23\n",
    )


def y_file(tmp_path: Path, rows: str, name: str = "Y.csv") -> Path:
    return write(tmp_path / name, ",prdtypecode\n" + rows)


def test_missing_file_names_it_and_lists_nearby_csv(tmp_path, x_file):
    with pytest.raises(DataError, match="product file not found; CSV files in .*: X.csv") as info:
        load_official(tmp_path / "X_trian.csv")
    assert info.value.path == str(tmp_path / "X_trian.csv")
    with pytest.raises(DataError, match="label file not found"):
        load_official(x_file, tmp_path / "missing.csv")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load_official(tmp_path)


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match=r"empty \(0 bytes\)"):
        load_official(write(tmp_path / "X.csv", b""))
    with pytest.raises(DataError, match="no header line"):
        load_official(write(tmp_path / "X.csv", "\n\n"))


def test_header_without_rows(tmp_path):
    with pytest.raises(DataError, match="header but no data rows"):
        load_official(write(tmp_path / "X.csv", HEADER))


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "looks like a JPEG image"),
        (b"PK\x03\x04\x14\x00\x06\x00", "looks like a zip archive"),
        (b"abc\x00\x01\x02def", "binary NUL bytes"),
    ],
)
def test_binary_file_is_not_csv(tmp_path, content, problem):
    with pytest.raises(DataError, match=problem):
        load_official(write(tmp_path / "X.csv", content))


def test_malformed_csv(tmp_path):
    with pytest.raises(DataError, match="not a well-formed CSV"):
        load_official(write(tmp_path / "X.csv", HEADER + "0,a,b,1,2\n1,a,b,1,2,3,4,5\n"))


def test_missing_column_says_which_and_lists_found(tmp_path):
    path = write(tmp_path / "X.csv", ",designation,productid,imageid\n0,a,1,2\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) 'description'; found: 'designation', 'productid', 'imageid'"):
        load_official(path)


def test_other_separator_gets_a_hint(tmp_path):
    path = write(tmp_path / "X.csv", ";designation;description;productid;imageid\n0;a;b;1;2\n")
    with pytest.raises(DataError, match="another separator"):
        load_official(path)


def test_label_file_given_as_product_file_is_caught(tmp_path, x_file):
    with pytest.raises(DataError, match=r"lacks column\(s\) 'prdtypecode'; found: 'designation'"):
        load_official(x_file, x_file)


def test_x_y_index_mismatch_names_rows_and_counts(tmp_path, x_file):
    y = y_file(tmp_path, "0,10\n1,40\n7,50\n8,50\n")
    with pytest.raises(DataError) as info:
        load_official(x_file, y)
    message = str(info.value)
    assert "X has 3 rows, Y has 4" in message
    assert "1 X row(s) have no label (first: 2)" in message
    assert "2 Y row(s) have no product (first: 7, 8)" in message
    assert info.value.path == str(y) and info.value.row == 2


def test_duplicate_index_in_products(tmp_path):
    path = write(tmp_path / "X.csv", HEADER + "0,a,,1,2\n1,b,,3,4\n1,c,,5,6\n")
    with pytest.raises(DataError, match=r"1 duplicated index value\(s\): 1") as info:
        load_official(path)
    assert info.value.row == 1


def test_duplicate_index_in_labels(tmp_path, x_file):
    with pytest.raises(DataError, match="label file has 1 duplicated index value"):
        load_official(x_file, y_file(tmp_path, "0,10\n1,40\n1,50\n2,10\n"))


def test_duplicate_product_and_image_pair_names_rows(tmp_path):
    path = write(tmp_path / "X.csv", HEADER + "0,a,,11,21\n1,b,,12,22\n2,c,,11,21\n3,d,,11,99\n")
    with pytest.raises(DataError, match=r"productid=11, imageid=21 on rows 0, 2") as info:
        load_official(path)
    assert info.value.row == 0


def test_non_integer_ids(tmp_path):
    path = write(tmp_path / "X.csv", HEADER + "0,a,,11,21\n1,b,,abc,22\n")
    with pytest.raises(DataError, match=r"'productid' must hold integers.*row 1 = 'abc'") as info:
        load_official(path)
    assert info.value.row == 1


def test_missing_ids_are_a_warning(tmp_path):
    path = write(tmp_path / "X.csv", HEADER + "0,a,,11,21\n1,b,,,22\n")
    ds = load_official(path)
    assert ds.X["productid"].isna().tolist() == [False, True]
    assert any("lack a productid or imageid" in w for w in ds.report.warnings)


def test_unknown_label_codes_name_row_and_value(tmp_path, x_file):
    with pytest.raises(DataError, match=r"1 row\(s\) have a prdtypecode outside the 27 official codes, first: row 1 = 999") as info:
        load_official(x_file, y_file(tmp_path, "0,10\n1,999\n2,10\n"))
    assert info.value.row == 1


@pytest.mark.parametrize("value", ["abc", "10.5", "1e400x"])
def test_non_integer_labels(tmp_path, x_file, value):
    with pytest.raises(DataError, match=rf"must be an integer code.*row 2 = '?{value}") as info:
        load_official(x_file, y_file(tmp_path, f"0,10\n1,40\n2,{value}\n"))
    assert info.value.row == 2


def test_integral_float_labels_are_accepted(tmp_path):
    y = read_labels(y_file(tmp_path, "0,10.0\n1,40\n"))
    assert y.tolist() == [10, 40] and y.dtype == "int64"


def test_missing_label(tmp_path, x_file):
    with pytest.raises(DataError, match=r"1 row\(s\) have no prdtypecode label: 1"):
        load_official(x_file, y_file(tmp_path, "0,10\n1,\n2,10\n"))


def test_empty_designation_without_description_is_an_error(tmp_path):
    path = write(tmp_path / "X.csv", HEADER + "0,a,,11,21\n1,,,12,22\n2,  ,  ,13,23\n")
    with pytest.raises(DataError, match=r"2 row\(s\) have an empty designation and no description.*: 1, 2") as info:
        load_official(path)
    assert info.value.row == 1 and info.value.path == str(path)


def test_undecodable_bytes_name_line_byte_and_suggest_encoding(tmp_path):
    content = (HEADER + "0,Lampe,,11,21\n1,Th").encode() + "éière".encode("cp1252") + b",,12,22\n"
    path = write(tmp_path / "X.csv", content)
    with pytest.raises(DataError) as info:
        load_official(path)
    message = str(info.value)
    assert str(path) in message
    assert "cannot be decoded as utf-8: byte" in message
    assert "byte 0xe9 at line 3, byte 5" in message
    assert "encoding='cp1252'" in message
    assert load_official(path, encoding="cp1252").X.loc[1, "designation"] == "Théière"


def test_unknown_encoding_name(x_file):
    with pytest.raises(DataError, match="unknown encoding 'utf-9'"):
        load_official(x_file, encoding="utf-9")


def test_generic_csv_applies_the_same_rules(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,10\n,40\n")
    with pytest.raises(DataError, match=r"empty designation and no description.*: 1"):
        load_generic_csv(path, "text", "label")
    path = write(tmp_path / "d.csv", "text,label\na,10\nb,x\n")
    with pytest.raises(DataError, match="row 1 = 'x'"):
        load_generic_csv(path, "text", "label")


def test_error_message_format(tmp_path):
    error = DataError("problem", path=tmp_path / "f.csv", row=3)
    assert str(error) == f"{tmp_path / 'f.csv'}, row 3: problem"

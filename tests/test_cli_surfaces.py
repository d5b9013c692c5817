"""CLI details users hit: `clean --skip`, defaults in every `--help`, generic-mode `eda`, `--align`."""

from __future__ import annotations

import argparse
import re

import pandas as pd
import pytest

from prodcat.cli import build_parser, main
from prodcat.data.io import load_generic_csv, load_official
from prodcat.errors import DataError


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- clean --skip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--skip", "stem,stopwords", "Une TABLE très jolie"],
                                  ["--skip", "stem", "--skip", "stopwords", "Une TABLE très jolie"],
                                  ["Une TABLE très jolie", "--skip", "stem,stopwords"]])
def test_clean_skip_takes_a_comma_list_or_repeats_and_keeps_the_text(capsys, argv) -> None:
    code, out, err = run(capsys, "clean", *argv)
    assert code == 0, err
    rows = dict(line.split("  ", 1) for line in out.splitlines())
    assert not any(name.startswith(("Stem", "Drop stop")) for name in rows)  # both steps off
    # the text reached clean (not swallowed by --skip); "une" survives (no stop words), "jolie" is not stemmed
    assert out.splitlines()[-1].endswith("une table tres jolie")


def test_clean_old_space_separated_skip_is_refused_with_a_hint(capsys) -> None:
    code, out, err = run(capsys, "clean", "--skip", "stem", "stopwords", "Une table")
    assert code == 2 and not out
    assert err.strip().count("\n") == 0 and err.startswith("error: 'stopwords' is a cleaning step")
    assert "--skip stem,stopwords" in err


def test_clean_unknown_step_names_the_steps(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["clean", "--skip", "stem,bogus", "x"])
    assert exit_.value.code == 2
    assert "unknown cleaning step bogus" in capsys.readouterr().err


# --- defaults in --help ---------------------------------------------------------------------------


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_help_shows_its_defaults(name, capsys) -> None:
    sub = subcommands()[name]
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    full_help = " ".join(capsys.readouterr().out.split())
    for action in sub._actions:
        if action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            continue
        option = action.option_strings[-1]
        entry = " ".join(sub._get_formatter()._format_action(action).split())  # this option's lines of --help
        assert entry in full_help
        shown = re.search(r"\(default: ([^)]*)\)", entry)
        assert shown, f"`prodcat {name} --help` does not show the default of {option}: {entry}"
        assert str(action.default).strip("./") in shown.group(1), (option, shown.group(1))


def test_serve_help_shows_host_and_port(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 127.0.0.1)" in text and "(default: 8000)" in text


# --- generic mode: eda --x-other, no description column -------------------------------------------


@pytest.fixture
def generic_files(tmp_path):
    train = pd.DataFrame({"title": ["Piscine ronde", "Manette PS4", "Livre de poche", "Piscine gonflable"],
                          "code": [2583, 50, 10, 2583]})
    other = pd.DataFrame({"title": ["piscine ronde", "Drone 4K"]})
    train.to_csv(tmp_path / "train.csv", index=False)
    other.to_csv(tmp_path / "other.csv", index=False)
    return tmp_path


def test_generic_load_does_not_count_empty_descriptions_of_a_missing_column(generic_files) -> None:
    dataset = load_generic_csv(generic_files / "train.csv", "title", "code")
    assert not dataset.report.has_description and dataset.report.n_empty_descriptions == 0
    assert "no description column" in dataset.report.summary() and "empty descriptions" not in dataset.report.summary()
    with_description = load_generic_csv(generic_files / "train.csv", "title", "code", description_col="title")
    assert with_description.report.has_description and "0 empty descriptions" in with_description.report.summary()


def test_eda_generic_mode_reads_x_other_with_text_col_and_shows_no_description_card(generic_files, capsys) -> None:
    out = generic_files / "eda"
    code, stdout, err = run(capsys, "eda", "--x", str(generic_files / "train.csv"), "--text-col", "title",
                            "--label-col", "code", "--x-other", str(generic_files / "other.csv"),
                            "--image-sample", "0", "--out", str(out))
    assert code == 0, err
    assert "empty descriptions" not in stdout and "no description column" in stdout
    html = (out / "eda.html").read_text(encoding="utf-8")
    assert "other set: 2 products" in html
    assert "1 of 2 products of the other set" in html  # "piscine ronde" matches a training title
    assert "empty description" not in html.lower() and "description_words.png" not in html
    assert not (out / "description_words.png").exists()


# --- --align ----------------------------------------------------------------------------------------


@pytest.fixture
def official_files(tmp_path):
    X = pd.DataFrame({"designation": ["Piscine", "Manette", "Livre"], "description": ["", "noire", ""],
                      "productid": [1, 2, 3], "imageid": [11, 12, 13]}, index=[0, 1, 2])
    Y = pd.DataFrame({"prdtypecode": [50, 10, 2583, 1280]}, index=[1, 2, 3, 4])
    X.to_csv(tmp_path / "X.csv")
    Y.to_csv(tmp_path / "Y.csv")
    return tmp_path / "X.csv", tmp_path / "Y.csv"


def test_mismatched_files_are_refused_with_a_hint_to_align(official_files) -> None:
    with pytest.raises(DataError, match=r"2 Y row\(s\) have no product.*--align"):
        load_official(*official_files)


def test_align_keeps_the_rows_in_both_files_and_reports_the_rest(official_files, capsys) -> None:
    dataset = load_official(*official_files, align=True)
    assert dataset.X.index.tolist() == [1, 2] and dataset.y.tolist() == [50, 10]
    assert dataset.y.index.equals(dataset.X.index)
    assert any("kept 2 products with a label; left out 1 product(s) without a label and 2 label(s) without a "
               "product" in w for w in dataset.report.warnings)
    code, out, err = run(capsys, "eda", "--x", str(official_files[0]), "--y", str(official_files[1]), "--align",
                         "--image-sample", "0", "--out", str(official_files[0].parent / "eda"))
    assert code == 0, err
    assert "2 products loaded" in out and "left out 1 product(s) without a label" in out


def test_align_with_nothing_in_common_is_one_error_line(tmp_path, capsys) -> None:
    pd.DataFrame({"designation": ["a"], "description": [""], "productid": [1], "imageid": [2]}, index=[5]).to_csv(
        tmp_path / "X.csv")
    pd.DataFrame({"prdtypecode": [10]}, index=[6]).to_csv(tmp_path / "Y.csv")
    code, out, err = run(capsys, "eda", "--x", str(tmp_path / "X.csv"), "--y", str(tmp_path / "Y.csv"), "--align",
                         "--out", str(tmp_path / "eda"))
    assert code == 2 and err.startswith("error:") and err.strip().count("\n") == 0 and "no row index" in err


@pytest.mark.shared
def test_align_sample_x_with_the_full_official_y(shared_data) -> None:
    x = shared_data / "rakuten_sample" / "X_train_sample.csv"
    y_full = shared_data / "rakuten_sample" / "Y_train_CVw08PX.csv"
    with pytest.raises(DataError, match="Y row\\(s\\) have no product"):
        load_official(x, y_full)
    aligned = load_official(x, y_full, align=True)
    expected = load_official(x, shared_data / "rakuten_sample" / "Y_train_sample.csv")
    assert len(aligned) == len(expected) == 499
    assert aligned.y.equals(expected.y)
    n_y = len(pd.read_csv(y_full, index_col=0))
    assert any(f"left out 0 product(s) without a label and {n_y - 499} label(s)" in w for w in aligned.report.warnings)


def test_embed_backbone_choices_are_the_library_backbones() -> None:
    from prodcat.cli import IMAGE_BACKBONES
    from prodcat.image.backbone import BACKBONES

    assert IMAGE_BACKBONES == BACKBONES

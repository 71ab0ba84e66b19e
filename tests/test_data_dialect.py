"""Delimited tables in the user's locale: the separator and the decimal mark are found from the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainwell.data.dialect import Dialect, read_delimited, sniff_separator, wants_decimal_comma
from trainwell.data.sources import load_features, load_source

SUITE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tabular"
if not SUITE.is_dir():
    SUITE = Path("/work/shared/data/tabular")


def _frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"income": rng.normal(3000, 900, rows).round(2), "rate": rng.uniform(0, 1, rows).round(4),
                          "kids": rng.integers(0, 4, rows), "city": rng.choice(["Köln", "Wien", "Graz"], rows)})
    frame["y"] = (frame.income / 3000 + frame.rate + rng.normal(0, 0.3, rows) > 1.5).astype(int)
    return frame


@pytest.mark.parametrize("name, sep, decimal", [("excel_de.csv", ";", ","), ("points.csv", ";", "."),
                                                ("table.tsv", "\t", "."), ("table.tab", "\t", ","),
                                                ("bars.csv", "|", ".")])
def test_a_table_reads_the_same_in_any_separator_and_decimal_mark(tmp_path, name, sep, decimal):
    frame = _frame()
    frame.to_csv(tmp_path / "plain.csv", index=False)
    frame.to_csv(tmp_path / name, index=False, sep=sep, decimal=decimal)
    plain = load_source(str(tmp_path / "plain.csv"), "y")
    other = load_source(str(tmp_path / name), "y")
    assert other.feature_names == plain.feature_names
    np.testing.assert_array_equal(other.X, plain.X)      # 0,1257 is 0.1257: not text, not 1257
    np.testing.assert_array_equal(other.y, plain.y)
    assert any(f"is {Dialect(sep, decimal).describe()}" in n for n in other.notes)
    assert not plain.notes                                # the usual dialect needs no note
    features = load_features(str(tmp_path / name), plain.feature_names, "y", onehot=plain.columns)
    np.testing.assert_array_equal(features, plain.X)     # predict reads it as fit did


def test_thousands_points_with_a_decimal_comma(tmp_path):
    (tmp_path / "de.csv").write_text("Preis;Menge;y\n1.234,5;3;1\n-2,25;4;0\n12.000,0;5;1\n0,5;6;0\n", encoding="utf-8")
    frame, dialect = read_delimited(tmp_path / "de.csv")
    assert dialect == Dialect(";", ",")
    assert frame["Preis"].tolist() == [1234.5, -2.25, 12000.0, 0.5]


def test_the_separator_is_the_one_that_splits_every_line_alike(tmp_path):
    cases = {"quoted.csv": 'a,b,y\n"x;1",2,0\n"z;3",4,1\n',       # semicolons inside quoted comma fields
             "one.csv": "y\n1\n0\n1\n",                           # one column: the comma, as written
             "mixed.csv": "a;b,c;y\n1;2,5;0\n3;4,5;1\n"}         # 3 fields by ';' on every line, 2 or 3 by ','
    want = {"quoted.csv": ",", "one.csv": ",", "mixed.csv": ";"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert sniff_separator(tmp_path / name) == want[name], name


def test_a_decimal_point_anywhere_keeps_the_point(tmp_path):
    mixed = pd.DataFrame({"a": ["1,5", "2,5", "3,0"], "b": [0.5, 1.25, 2.0]})
    assert not wants_decimal_comma(mixed)                # a parsed 1.25 means the file writes points
    assert wants_decimal_comma(mixed[["a"]])
    codes = pd.DataFrame({"zip": ["1,2", "x", "y", "z"]})  # a few commas in a text column: still text
    assert not wants_decimal_comma(codes)


def test_every_suite_table_is_read_as_a_comma_separated_file_with_points():
    """The 15 real tables are plain CSV: the sniffing changes none of them."""
    for path in sorted(SUITE.glob("*.csv")):
        frame, dialect = read_delimited(path)
        assert dialect == Dialect(), path.name
        pd.testing.assert_frame_equal(frame, pd.read_csv(path))


def _regression_twins(tmp_path: Path, text: bool = True) -> tuple[Path, Path]:
    frame = _frame(300, seed=1)
    if not text:
        frame = frame.drop(columns="city")       # streamed features are numeric (docs/scaling.md)
    frame["y"] = (frame.income / 1000 + frame.rate).round(3)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    frame.to_csv(tmp_path / "excel_de.csv", index=False, sep=";", decimal=",")
    return tmp_path / "plain.csv", tmp_path / "excel_de.csv"


def test_predictions_are_written_in_the_convention_of_the_data_file(cli, tmp_path):
    """A semicolon export with decimal commas gets its predictions back in the same convention, equal to
    the comma twin's; a comma file keeps commas and points."""
    plain, german = _regression_twins(tmp_path)
    res = cli("fit", str(plain), "--target", "y", "--out", str(tmp_path / "run"),
              "--set", "train.epochs=3", "--set", "train.progress=false")
    assert res.returncode == 0, res.stderr
    for data, out in ((plain, "p_plain.csv"), (german, "p_de.csv")):
        res = cli("predict", str(tmp_path / "run"), str(data), "--out", str(tmp_path / out))
        assert res.returncode == 0, res.stderr
    assert "semicolon-separated, decimal comma as the data" in res.stdout
    lines = (tmp_path / "p_de.csv").read_text().splitlines()
    assert lines[0] == "prediction" and "," in lines[1] and "." not in lines[1]   # 4,123 as the data writes it
    written = pd.read_csv(tmp_path / "p_de.csv", sep=";", decimal=",")
    comma = pd.read_csv(tmp_path / "p_plain.csv")
    np.testing.assert_array_equal(written["prediction"].to_numpy(), comma["prediction"].to_numpy())
    assert (tmp_path / "p_plain.csv").read_text().startswith("prediction\n")


def test_a_streamed_csv_is_read_in_its_own_convention(tmp_path):
    """data.streaming=true reads a semicolon file with decimal commas through pyarrow exactly as its comma
    twin: the same rows, the same scaler, the same test score; the dialect is said once."""
    import trainwell as tw
    from trainwell.core.spec import Spec
    from trainwell.data.streaming import prepare_streaming
    plain, german = _regression_twins(tmp_path, text=False)
    sets = ["data.target=y", "data.streaming=true", "train.epochs=2", "train.progress=false", "train.monitor=false"]
    runs = [tw.fit(str(p), sets=sets, save=False, verbose=False) for p in (plain, german)]
    assert runs[0].metrics["test"]["r2"] == runs[1].metrics["test"]["r2"]
    prep = prepare_streaming(Spec.build(None, sets=[f"data.source={german}", *sets]))
    assert any("excel_de.csv is semicolon-separated, decimal comma" in n for n in prep.notes)
    np.testing.assert_array_equal(prep.pre.scaler.mean,
                                  prepare_streaming(Spec.build(None, sets=[f"data.source={plain}", *sets])).pre.scaler.mean)


def test_a_streamed_csv_with_thousands_points_is_refused_with_advice(tmp_path):
    """pyarrow reads a decimal comma but no thousands points: the refusal says how to read the file."""
    import trainwell as tw
    from trainwell.core.errors import UserError
    rows = "".join(f"{i // 1000}.{i % 1000:03d},5;{i % 7};{i % 2}\n" for i in range(1000, 1400))
    (tmp_path / "de.csv").write_text("Preis;Menge;y\n" + rows, encoding="utf-8")
    with pytest.raises(UserError, match=r"data.streaming=false reads the file whole"):
        tw.fit(str(tmp_path / "de.csv"), sets=["data.target=y", "data.streaming=true", "train.epochs=1",
                                               "train.progress=false"], save=False, verbose=False)
    whole = tw.fit(str(tmp_path / "de.csv"), sets=["data.target=y", "train.epochs=1", "train.progress=false"],
                   save=False, verbose=False)
    assert whole.data_summary["n_train"] > 0


@pytest.mark.parametrize("name, encoding, sep, decimal", [("excel_de.csv", "cp1252", ";", ","),
                                                          ("bom.csv", "utf-8-sig", ",", "."),
                                                          ("unicode.tsv", "utf-16", "\t", "."),
                                                          ("unicode.txt", "utf-16", "\t", "."),
                                                          ("latin.csv", "latin-1", ",", ".")])
def test_a_table_reads_the_same_in_any_encoding(tmp_path, name, encoding, sep, decimal):
    """Excel's plain CSV on a Western European Windows is Windows-1252 (ö is the byte 0xF6), its "Unicode
    text" UTF-16 with tabs, a "CSV UTF-8" carries a byte-order mark: each reads as the UTF-8 original,
    column names with umlauts included, and says how it was read when that is not UTF-8."""
    frame = _frame().rename(columns={"income": "Einkommen (€)" if encoding != "latin-1" else "Größe"})
    frame.to_csv(tmp_path / "plain.csv", index=False)
    frame.to_csv(tmp_path / name, index=False, sep=sep, decimal=decimal, encoding=encoding)
    plain = load_source(str(tmp_path / "plain.csv"), "y")
    other = load_source(str(tmp_path / name), "y")
    assert other.feature_names == plain.feature_names            # no BOM glued to the first name, no mojibake
    np.testing.assert_array_equal(other.X, plain.X)
    np.testing.assert_array_equal(other.y, plain.y)
    said = " ".join(other.notes)
    if encoding in ("utf-8-sig",):
        assert not said
    else:
        assert {"cp1252": "Windows-1252", "utf-16": "UTF-16", "latin-1": "Windows-1252"}[encoding] in said


def test_a_file_that_stops_being_utf8_after_its_first_lines_is_read_as_windows_1252(tmp_path):
    rows = ["city,x,y"] + [f"Wien,{i},{i % 2}" for i in range(5000)] + ["Köln,1,0", "Köln,2,1"]
    (tmp_path / "late.csv").write_bytes("\n".join(rows).encode("cp1252"))
    frame, dialect = read_delimited(tmp_path / "late.csv")
    assert dialect.encoding == "cp1252" and frame["city"].iloc[-1] == "Köln"


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".tsv.gz"])
def test_a_compressed_table_reads_as_the_plain_one(tmp_path, suffix):
    frame = _frame()
    frame.to_csv(tmp_path / "plain.csv", index=False)
    sep = "\t" if suffix.startswith(".tsv") else ";"
    frame.to_csv(tmp_path / f"table{suffix}", index=False, sep=sep, decimal=",")   # pandas compresses by the name
    plain = load_source(str(tmp_path / "plain.csv"), "y")
    packed = load_source(str(tmp_path / f"table{suffix}"), "y")
    assert packed.feature_names == plain.feature_names
    np.testing.assert_array_equal(packed.X, plain.X)
    features = load_features(str(tmp_path / f"table{suffix}"), plain.feature_names, "y", onehot=plain.columns)
    np.testing.assert_array_equal(features, plain.X)


def test_a_zip_of_two_tables_is_refused_naming_them(tmp_path):
    import zipfile
    from trainwell.core.errors import UserError
    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", "x,y\n1,0\n")
        archive.writestr("b.csv", "x,y\n2,1\n")
    with pytest.raises(UserError, match=r"holds 2 files.*a\.csv, b\.csv"):
        load_source(str(tmp_path / "two.csv.zip"), "y")


def test_predictions_of_a_windows_1252_file_are_written_in_windows_1252(cli, tmp_path):
    """Labels with umlauts come back as the same bytes the user's spreadsheet wrote."""
    frame = _frame(300, seed=2)
    frame["Stadt"] = np.where(frame.income > 3000, "Köln", "Graz")
    frame = frame.drop(columns=["y", "city"])
    frame.to_csv(tmp_path / "de.csv", index=False, sep=";", decimal=",", encoding="cp1252")
    res = cli("fit", str(tmp_path / "de.csv"), "--target", "Stadt", "--out", str(tmp_path / "run"),
              "--set", "train.epochs=3", "--set", "train.progress=false")
    assert res.returncode == 0, res.stderr
    res = cli("predict", str(tmp_path / "run"), str(tmp_path / "de.csv"), "--out", str(tmp_path / "p.csv"), "--proba")
    assert res.returncode == 0, res.stderr
    raw = (tmp_path / "p.csv").read_bytes()
    text = raw.decode("cp1252")
    assert "Köln" in text and "proba_Köln" in text.splitlines()[0] and ";" in text.splitlines()[0]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")                         # 0xF6, as Excel wrote it, not UTF-8's two bytes


@pytest.mark.parametrize("title, sep, decimal", [("Table 3. Households, 2024\nSource: a survey\n\n", ",", "."),
                                                 ("Tabelle 3, Haushalte 2024\n", ";", ",")])
def test_a_title_above_the_header_is_skipped_and_said(tmp_path, title, sep, decimal):
    """A report's export with a title, a source line or a blank line above its header reads as the bare
    table (its lines have fewer fields than every row below them), in memory and streamed."""
    from trainwell.core.spec import Spec
    from trainwell.data.streaming import prepare_streaming
    frame = _frame().drop(columns="city")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    (tmp_path / "report.csv").write_text(title + frame.to_csv(index=False, sep=sep, decimal=decimal), encoding="utf-8")
    plain = load_source(str(tmp_path / "plain.csv"), "y")
    titled = load_source(str(tmp_path / "report.csv"), "y")
    assert titled.feature_names == plain.feature_names
    np.testing.assert_array_equal(titled.X, plain.X)
    header_line = title.count("\n") + 1
    assert any(f"its header on line {header_line}" in n for n in titled.notes)
    sets = ["data.target=y", "data.streaming=true", "train.progress=false"]
    streamed = prepare_streaming(Spec.build(None, sets=[f"data.source={tmp_path / 'report.csv'}", *sets]))
    twin = prepare_streaming(Spec.build(None, sets=[f"data.source={tmp_path / 'plain.csv'}", *sets]))
    assert streamed.counts == twin.counts
    np.testing.assert_array_equal(streamed.pre.scaler.mean, twin.pre.scaler.mean)


def test_only_a_title_is_skipped_never_rows_of_the_table(tmp_path):
    """A ragged row inside the table is not a title: nothing is skipped (pandas then names the row)."""
    from trainwell.data.dialect import sniff_layout
    (tmp_path / "ragged.csv").write_text("a,b,y\n1,2,3\n4,5\n6,7,8\n")
    (tmp_path / "wide_title.csv").write_text("a title, with, many, commas\na,b,y\n1,2,3\n4,5,6\n")
    assert sniff_layout(tmp_path / "ragged.csv") == (",", 0)
    assert sniff_layout(tmp_path / "wide_title.csv") == (",", 0)   # more fields than the table: not a title


def test_a_space_after_every_separator_is_layout_not_data(tmp_path):
    """UCI's adult.data writes "39, State-gov, 77516": the names and categories are read without the space,
    so --target income finds its column and a file written without spaces predicts alike."""
    from trainwell.core.spec import Spec
    from trainwell.data.streaming import prepare_streaming
    frame = _frame()
    frame.to_csv(tmp_path / "plain.csv", index=False)
    spaced = frame.to_csv(index=False).replace(",", ", ")
    (tmp_path / "adult.csv").write_text(spaced)
    plain = load_source(str(tmp_path / "plain.csv"), "y")
    other = load_source(str(tmp_path / "adult.csv"), "y")
    assert other.feature_names == plain.feature_names          # "city=Köln", not "city= Köln"
    np.testing.assert_array_equal(other.X, plain.X)
    assert any("a space after each separator" in n for n in other.notes)
    features = load_features(str(tmp_path / "plain.csv"), other.feature_names, "y", onehot=other.columns)
    np.testing.assert_array_equal(features, plain.X)
    numeric = frame.drop(columns="city").to_csv(index=False).replace(",", ", ")
    (tmp_path / "numeric.csv").write_text(numeric)
    sets = ["data.target=y", "data.streaming=true", "train.progress=false"]
    streamed = prepare_streaming(Spec.build(None, sets=[f"data.source={tmp_path / 'numeric.csv'}", *sets]))
    assert streamed.pre.feature_names == ["income", "rate", "kids"]
    labelled = frame.drop(columns="city").assign(y=np.where(frame["income"] > frame["income"].median(), "yes", "no"))
    (tmp_path / "labelled.csv").write_text(labelled.to_csv(index=False).replace(",", ", "))
    streamed = prepare_streaming(Spec.build(None, sets=[f"data.source={tmp_path / 'labelled.csv'}", *sets]))
    assert list(streamed.pre.coder.classes) == ["no", "yes"]              # not " no", " yes"


def test_a_header_one_field_short_of_its_rows_is_not_a_title(tmp_path):
    """R's write.table(sep=",") writes row names without a header field: the header is kept (pandas makes
    the row names the index), never skipped as if it were a title above the first data row."""
    from trainwell.data.dialect import sniff_layout
    rows = "".join(f'"car {i}",{i * 0.5},{i % 4},{i % 2}\n' for i in range(40))
    (tmp_path / "r.csv").write_text('"mpg","cyl","y"\n' + rows)
    assert sniff_layout(tmp_path / "r.csv") == (",", 0)
    frame, _ = read_delimited(tmp_path / "r.csv")
    assert list(frame.columns) == ["mpg", "cyl", "y"] and len(frame) == 40


def test_currency_and_percent_cells_of_a_comma_decimal_locale_are_numbers(tmp_path):
    """Excel exports a currency-formatted cell as it shows it: "1.234,50 €", "12,5 %". Such a column is read
    as numbers with a decimal comma (1234.5, 0.125), the mark stored with the model, so rows that happen to
    have no decimals at predict time ("2.000 €") are still read as thousands, not as 2.0."""
    from trainwell.data.columns import ColumnEncoder
    rng = np.random.default_rng(3)
    price = rng.uniform(100, 5000, 200).round(2)
    share = rng.uniform(0, 100, 200).round(1)
    fmt = lambda v: f"{v:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")   # noqa: E731 - 1.234,50
    frame = pd.DataFrame({"Preis": [fmt(v) + " €" for v in price], "Anteil": [f"{v}".replace(".", ",") + " %" for v in share]})
    frame["y"] = (price > 2500).astype(int)
    frame.to_csv(tmp_path / "de.csv", sep=";", index=False, encoding="cp1252")
    table = load_source(str(tmp_path / "de.csv"), "y")
    names = table.feature_names
    np.testing.assert_allclose(table.X[:, names.index("Preis")], price, rtol=1e-6)
    np.testing.assert_allclose(table.X[:, names.index("Anteil")], share / 100, rtol=1e-6)
    stored = ColumnEncoder.from_json(table.columns.to_json())               # as model.json keeps it
    later = pd.DataFrame({"Preis": ["2.000 €", "15,5 €"], "Anteil": ["5 %", "7,5 %"], "y": [0, 0]})
    later.to_csv(tmp_path / "later.csv", sep=";", index=False)
    X = load_features(str(tmp_path / "later.csv"), names, "y", onehot=stored)
    np.testing.assert_allclose(X[:, names.index("Preis")], [2000.0, 15.5])
    np.testing.assert_allclose(X[:, names.index("Anteil")], [0.05, 0.075])


def test_a_row_named_in_an_error_is_found_at_that_line_below_the_skipped_title(tmp_path):
    """Messages name the file's line, counted with the title lines the reader skipped, so an editor's
    'go to line' lands on the value."""
    from trainwell.data.column_types import row_label
    path = tmp_path / "report.csv"
    lines = ["Sales report 2024", "Source: internal", "", "a,b,y", "1,2,0", "3,x7,1"] + \
        [f"{i},{i % 5},{i % 2}" for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    assert row_label(path, 1) == "row 2 (line 6 of the file)" and lines[5] == "3,x7,1"
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(lines[3:]) + "\n")
    assert row_label(plain, 1) == "row 2 (line 3 of the file)"

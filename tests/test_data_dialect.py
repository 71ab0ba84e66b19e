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

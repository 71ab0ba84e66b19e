"""Excel workbooks as data: the first sheet read as the same table its CSV export holds."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from trainwell.core.errors import UserError
from trainwell.data.sources import load_features, load_source


def _frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"Stadt": rng.choice(["Köln", "München", "Zürich"], rows),
                          "Größe": rng.normal(size=rows).round(3),
                          "Datum": pd.date_range("2020-01-01", periods=rows, freq="D"),
                          "ok": rng.choice([True, False], rows),
                          "fehlt": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows).round(4))})
    frame["y"] = (frame["Größe"] + 0.5 * frame["ok"] > 0.3).astype(int)
    return frame


def test_a_workbook_reads_as_its_csv_export(tmp_path):
    """Dates, true/false, missing cells and umlauts arrive as in the CSV twin; the sheet read is named."""
    frame = _frame()
    frame.to_csv(tmp_path / "plain.csv", index=False)
    with pd.ExcelWriter(tmp_path / "book.xlsx") as book:
        frame.to_excel(book, index=False, sheet_name="Daten")
        frame.head(3).to_excel(book, index=False, sheet_name="Notizen")
    plain = load_source(str(tmp_path / "plain.csv"), "y", allow_missing=True)
    book = load_source(str(tmp_path / "book.xlsx"), "y", allow_missing=True)
    assert book.feature_names == plain.feature_names
    np.testing.assert_array_equal(book.X, plain.X)             # NaN where a cell is empty, in both
    np.testing.assert_array_equal(book.y, plain.y)
    assert any('sheet "Daten" of book.xlsx, the first of 2 ("Notizen" not read' in n for n in book.notes)
    features = load_features(str(tmp_path / "book.xlsx"), plain.feature_names, "y", onehot=plain.columns,
                             allow_missing=True)
    np.testing.assert_array_equal(features, plain.X)


def test_a_workbook_trains_and_predicts_from_the_command_line(cli, tmp_path):
    frame = _frame(seed=1)
    frame.to_excel(tmp_path / "book.xlsx", index=False)
    res = cli("fit", str(tmp_path / "book.xlsx"), "--target", "y", "--out", str(tmp_path / "run"),
              "--set", "train.epochs=3", "--set", "train.progress=false")
    assert res.returncode == 0, res.stderr
    assert "dates: Datum" in res.stdout and "read: sheet" not in res.stdout     # one sheet: nothing to say
    res = cli("predict", str(tmp_path / "run"), str(tmp_path / "book.xlsx"), "--out", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(frame)


def test_without_openpyxl_a_workbook_is_refused_with_the_install_line(tmp_path, monkeypatch):
    _frame().to_excel(tmp_path / "book.xlsx", index=False)
    monkeypatch.setitem(sys.modules, "openpyxl", None)          # as if the optional extra were not installed
    with pytest.raises(UserError, match=r"pip install 'trainwell\[excel\]'"):
        load_source(str(tmp_path / "book.xlsx"), "y")


def test_a_sheet_without_a_header_row_with_data_header_false(tmp_path):
    from trainwell.core.spec import Spec
    frame = _frame(50)
    frame.to_excel(tmp_path / "raw.xlsx", index=False, header=False)
    spec = Spec.build(None, sets=[f"data.source={tmp_path / 'raw.xlsx'}", "data.header=false"])
    table = load_source(str(tmp_path / "raw.xlsx"), "column_6", data=spec.data, allow_missing=True)
    assert len(table.y) == 50 and "column_2" in table.feature_names
    np.testing.assert_array_equal(table.y, frame["y"].to_numpy())

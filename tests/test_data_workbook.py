"""Excel workbooks as data: the first sheet (or data.sheet) read as the same table its CSV export holds."""
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
    assert any('sheet "Daten" of book.xlsx, 1 of 2 ("Notizen" not read; data.sheet=NAME' in n for n in book.notes)
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


def test_data_sheet_reads_another_sheet_by_name_or_position_and_predict_reads_it_again(cli, tmp_path):
    """A workbook whose table is not on the first sheet: data.sheet picks it, by name or by its position as
    Excel's tabs show it (1 = first); the choice is stored with the model, so predict on a new workbook of
    the same layout reads the same sheet. A sheet it does not have is refused with the list."""
    from trainwell.core.spec import Spec
    frame = _frame()
    frame.to_csv(tmp_path / "plain.csv", index=False)
    with pd.ExcelWriter(tmp_path / "book.xlsx") as book:
        pd.DataFrame({"note": ["exported 2026-12-03"]}).to_excel(book, index=False, sheet_name="About")
        frame.to_excel(book, index=False, sheet_name="Daten")
    plain = load_source(str(tmp_path / "plain.csv"), "y", allow_missing=True)
    for sheet in ("Daten", 2):
        spec = Spec.build(None, sets=[f"data.source={tmp_path / 'book.xlsx'}", f"data.sheet={sheet}"])
        table = load_source(str(tmp_path / "book.xlsx"), "y", data=spec.data, allow_missing=True)
        np.testing.assert_array_equal(table.X, plain.X)
        assert any('sheet "Daten" of book.xlsx, 2 of 2 ("About" not read' in n for n in table.notes)
    spec = Spec.build(None, sets=[f"data.source={tmp_path / 'book.xlsx'}", "data.sheet=Data"])
    with pytest.raises(UserError, match=r'1: "About", 2: "Daten"'):
        load_source(str(tmp_path / "book.xlsx"), "y", data=spec.data)
    spec = Spec.build(None, sets=[f"data.source={tmp_path / 'plain.csv'}", "data.sheet=Daten"])
    with pytest.raises(UserError, match="not one"):
        load_source(str(tmp_path / "plain.csv"), "y", data=spec.data)
    res = cli("fit", str(tmp_path / "book.xlsx"), "--target", "y", "--set", "data.sheet=Daten", "--out",
              str(tmp_path / "run"), "--set", "train.epochs=2", "--set", "train.progress=false")
    assert res.returncode == 0, res.stderr
    res = cli("predict", str(tmp_path / "run"), str(tmp_path / "book.xlsx"), "--out", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(frame)

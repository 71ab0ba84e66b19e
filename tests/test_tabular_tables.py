"""Real tables train with `trainwell fit FILE --target COL` and nothing else, then predict held-out rows.

Small tables of ../shared/data/tabular (suite.json); 3 epochs keep it quick. Every table of the
suite was checked by hand with `--set train.epochs=2` (docs/data.md).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED

TABULAR = SHARED / "data" / "tabular"
# file -> (target, decision lines the fit must print)
TABLES = {
    "Hitters.csv": ("Salary", ["target: 59 of 297 row(s) without a value in Salary dropped",
                               "dropped: rownames (identifier", "one-hot: 3 text column(s)",
                               "target: z-score fitted on the training split (skewness 1."]),
    "Carseats.csv": ("Sales", ["booleans: Urban, US read as 1/0", "one-hot: 1 text column(s) -> 3 inputs: ShelveLoc (3)",
                               "scale: robust (median, interquartile range) + smooth clipping"]),
    "Housing.csv": ("price", ["booleans: driveway, recroom", "predictions clipped to the training target range"]),
    "OJ.csv": ("Purchase", ["booleans: Store7 read as 1/0", "task: binary"]),
}


@pytest.mark.slow
@pytest.mark.skipif(not TABULAR.exists(), reason="../shared/data/tabular is not checked out")
@pytest.mark.parametrize("name", list(TABLES))
def test_fit_then_predict_held_out_rows(cli, tmp_path, name):
    target, lines = TABLES[name]
    df = pd.read_csv(TABULAR / name)
    held = df[df[target].notna()].sample(25, random_state=0)
    df.drop(index=held.index).to_csv(tmp_path / name, index=False)
    held.drop(columns=target).to_csv(tmp_path / "new.csv", index=False)
    res = cli("fit", str(tmp_path / name), "--target", target, "--set", "train.epochs=3", "--out",
              str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())                      # rich wraps long lines
    for line in lines:
        assert line in text, (line, res.stdout)
    res = cli("predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    pred = pd.read_csv(tmp_path / "p.csv")["prediction"]
    assert len(pred) == 25
    meta = json.loads((tmp_path / "run" / "model.json").read_text())["preprocessing"]
    if meta["labels"]["task"] == "regression":
        low, high = meta["target"]["low"][0], meta["target"]["high"][0]
        assert np.isfinite(pred).all() and pred.between(low, high).all()
        assert 0.2 < pred.median() / held[target].median() < 5        # original units
    else:
        assert set(pred) <= set(df[target].dropna().unique())

"""Columns that give the target away are named before training (data/leakage.py), with the evidence and
the setting that drops them; no column of the 15 real tables of ../shared/data/tabular is named."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from trainwell.build import load_prepared, spec_for
from trainwell.data.leakage import LeakageWarning, target_leaks

from conftest import SHARED

TABULAR = SHARED / "data" / "tabular"
N = 400


def _names(n: int) -> list[str]:
    return [f"x{j}" for j in range(n)]


def test_each_rule_names_its_column_and_only_it():
    """A recoded label, a number that separates the classes, a value missing for one class, a regression target's
    affine copy: each named with its evidence. The same columns with the rows shuffled, and an honest
    feature, are not."""
    rng = np.random.default_rng(0)
    score = rng.lognormal(0, 1, N)
    y = np.digitize(score, [0.8, 2.0])                          # the label made from the score by thresholds
    honest = y + rng.normal(0, 1.0, N)                          # informative, not decisive
    recoded = np.array([7.0, 2.0, 5.0])[y]                      # the label under other codes
    apart = y * 10 + rng.uniform(0, 5, N)                       # each class in its own range, far apart
    X = np.stack([honest, recoded, score, apart], axis=1).astype(np.float32)
    found = target_leaks(X, y, _names(4), "multiclass")
    assert found == {"x1": "each of its 3 values belongs to one class",
                     "x2": "every class in its own range of values, ranges that touch (a threshold on it gives "
                           "the class)"}
    assert target_leaks(X[rng.permutation(N)], y, _names(4), "multiclass") == {}
    many = (y * 7 + rng.integers(0, 7, N)).astype(np.float32)  # 21 values, each in one class: a feature, not a code
    assert target_leaks(many[:, None], y, ["many"], "multiclass") == {}

    binary = rng.integers(0, 2, N)
    after = np.where(binary == 1, rng.uniform(100, 900, N), np.nan).astype(np.float32)   # known only after a default
    assert target_leaks(after[:, None], binary, ["recovered"], "binary") == {
        "recovered": "whether it is missing tells the class"}

    price = rng.lognormal(3, 1, N)
    X = np.stack([price * 0.93 + 1.0, price + rng.normal(0, price.std(), N)], axis=1).astype(np.float32)
    found = target_leaks(X, price.astype(np.float32), ["in_euros", "noisy"], "regression")
    assert list(found) == ["in_euros"] and found["in_euros"].startswith("correlation +1.0000")

    onehot = np.eye(4, dtype=np.float32)[np.array([0, 1, 2, 3])[binary * 2 + rng.integers(0, 2, N)]]
    assert target_leaks(onehot, binary, ["grade"] * 4, "binary") == {"grade": "each of its 4 values belongs to one class"}
    assert target_leaks(X[:20], price[:20], ["a", "b"], "regression") == {}     # too few rows to judge


def test_a_strong_feature_far_from_the_other_class_is_not_named():
    """Iris's setosa against versicolor: the petals alone separate them, by a wide margin. A real feature, so
    nothing is named; the same petal length with the label made by a threshold on it is named."""
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    X, y = X[y < 2].astype(np.float32), y[y < 2]
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert target_leaks(X, y, names, "binary") == {}
    made = (X[:, 2] > 4.2).astype(np.int64)                    # within versicolor: the classes touch
    assert list(target_leaks(X, made, names, "binary")) == ["petal_length"]


def test_a_copy_of_the_label_is_named_by_fit_and_the_suggested_setting_drops_it(tmp_path, cli):
    """HMDA with a recoded copy of its label: one warning line naming the column and the setting; with that
    setting (which keeps dropping what was dropped before), no warning."""
    table = pd.read_csv(TABULAR / "HMDA.csv")
    table["decision_code"] = table["deny"].map({"no": "A", "yes": "R"})
    table.to_csv(tmp_path / "hmda.csv", index=False)
    res = cli("fit", str(tmp_path / "hmda.csv"), "--target", "deny", "--set", "train.epochs=1",
              "--out", str(tmp_path / "r1"))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "target away" in ln]
    assert len(lines) == 1 and lines[0].startswith(
        "warning: A column of hmda gives the target away on the training rows: decision_code (each of its 2 "
        "values belongs to one class)."), res.stderr
    setting = lines[0].split("--set ", 1)[1].split(" (docs/data.md)")[0].strip('"')
    assert setting == "data.drop_columns=['decision_code']"
    notes = json.loads((tmp_path / "r1" / "data.json").read_text())["notes"]
    assert "possible leakage: decision_code (each of its 2 values belongs to one class)" in notes
    # the doctor repeats it at the end, where the user reads the verdict, and keeps it in diagnosis.json
    assert ("WARNING target_leakage: Possible target leakage: decision_code (each of its 2 values belongs to one "
            "class)") in " ".join(res.stdout.split()), res.stdout
    findings = json.loads((tmp_path / "r1" / "diagnosis.json").read_text())["findings"]
    leak = [f for f in findings if f["id"] == "target_leakage"]
    assert leak and leak[0]["evidence"] == {"columns": {"decision_code": "each of its 2 values belongs to one class"}}
    assert setting in leak[0]["remedy"]
    res = cli("fit", str(tmp_path / "hmda.csv"), "--target", "deny", "--set", "train.epochs=1", "--set", setting,
              "--out", str(tmp_path / "r2"))
    assert res.returncode == 0 and "target away" not in res.stderr and "target_leakage" not in res.stdout, res.stderr


@pytest.mark.parametrize("entry", json.loads((TABULAR / "suite.json").read_text()), ids=lambda e: e["file"])
def test_no_column_of_a_real_table_is_named(entry):
    """The 15 real tables have no column that reproduces their target: none is named (no false alarm)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        load_prepared(spec_for(str(TABULAR / entry["file"]), None, [f"data.target={entry['target']}"], {}))

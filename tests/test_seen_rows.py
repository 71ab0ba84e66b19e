"""Scoring a model on rows it learned from is caught: fingerprints of the training and validation rows
(data/fingerprints.py) are kept in the run directory and ``evaluate`` counts the rows it is given among them."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.data.fingerprints import SeenRows, row_fingerprints
from trainwell.run.artifact import SeenRowsWarning

from conftest import SHARED

HMDA = SHARED / "data" / "tabular" / "HMDA.csv"


def test_a_fingerprint_is_the_rows_values_and_nothing_else():
    """Equal rows hash alike (whatever their dtype, -0.0 as 0.0, every NaN alike); one bit, or two values
    swapped between columns, makes another fingerprint; no collision among 100,000 random rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 7)).astype(np.float32)
    prints = row_fingerprints(X)
    assert prints.dtype == np.uint64 and len(np.unique(prints)) == len(X)
    assert np.array_equal(row_fingerprints(X.astype(np.float64)), prints)
    a = np.array([[0.0, np.nan, 1.5]], dtype=np.float32)
    b = np.array([[-0.0, -np.nan, 1.5]], dtype=np.float32)
    assert row_fingerprints(a) == row_fingerprints(b)
    flipped = X[:1].copy()
    flipped.view(np.uint32)[0, 3] ^= 1
    swapped = X[:1, [1, 0, 2, 3, 4, 5, 6]]
    assert row_fingerprints(flipped) != prints[0] and row_fingerprints(swapped) != prints[0]
    assert row_fingerprints(X.reshape(-1, 7, 1))[5] == prints[5]     # shaped rows: all of their values
    seen = SeenRows.of(X[:10], X[10:15])
    assert seen.count(np.concatenate([X[3:12], X[20:30]])) == (7, 2)
    back = SeenRows.from_bytes(seen.to_bytes())
    assert np.array_equal(back.train, seen.train) and np.array_equal(back.validation, seen.validation)


@pytest.fixture(scope="module")
def split_hmda(tmp_path_factory):
    """HMDA cut 80/20 by hand: the model trains on the first file (which it splits 80/10/10 itself)."""
    d = tmp_path_factory.mktemp("seen")
    table = pd.read_csv(HMDA)
    table = table[~table.drop(columns="deny").duplicated(keep=False)]   # so every count below is exact
    assert len(table) > 2300
    new = table.sample(frac=0.2, random_state=0)
    table.drop(index=new.index).to_csv(d / "train.csv", index=False)
    new.to_csv(d / "new.csv", index=False)
    return d, table.drop(index=new.index), new


def test_evaluate_names_the_training_and_validation_rows_it_is_given(split_hmda, cli):
    """The file the model was fitted on: every row counted, as training or validation row, exactly as many as
    the split had (the test rows train the cross-fitted members, so they count as training rows); the same rows shuffled among new ones: the same count; new rows alone: no warning, and the
    same scores as Python's evaluate."""
    d, train, new = split_hmda
    fit = cli("fit", str(d / "train.csv"), "--target", "deny", "--set", "train.epochs=2", "--out", str(d / "run"))
    assert fit.returncode == 0, fit.stderr
    sizes = json.loads((d / "run" / "data.json").read_text())
    assert "seen_rows.safetensors" in json.loads((d / "run" / "model.json").read_text())["files"]

    res = cli("evaluate", str(d / "run"), str(d / "train.csv"))
    assert res.returncode == 0, res.stderr
    # the cross-fitted default trains on the test rows too (train/crossfit.py): every row of the file is named
    n_train, n_val, n = sizes["n_train"] + sizes["n_test"], sizes["n_val"], len(train)
    assert n_train + n_val == n
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")] == [
        f"warning: {n_train + n_val:,} of the {n:,} rows of {d / 'train.csv'} ({(n_train + n_val) / n:.0%}) have the "
        f"same features as rows the model learned from ({n_train:,} training rows; {n_val:,} validation rows, which "
        f"chose its epoch), so these scores are optimistic. Score rows it has not seen: `trainwell evaluate "
        f"{d / 'run'}` without data scores its own held-out test split (docs/evaluation.md)."]

    mixed = pd.concat([new, train]).sample(frac=1.0, random_state=1)     # new rows add none to the count
    mixed.to_csv(d / "mixed.csv", index=False)
    res = cli("evaluate", str(d / "run"), str(d / "mixed.csv"))
    assert res.returncode == 0 and f" {n_train + n_val:,} of the {len(mixed):,} rows" in res.stderr, res.stderr

    res = cli("evaluate", str(d / "run"), str(d / "new.csv"))
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    run = tw.load(d / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = run.evaluate(new.drop(columns="deny"), new["deny"])
    assert f"accuracy     {scores['accuracy']:.4f}" in res.stdout
    with pytest.warns(SeenRowsWarning, match=r"^10 of the 10 rows of the data \(100%\)"):
        run.evaluate(train.drop(columns="deny").iloc[:10], train["deny"].iloc[:10])


def test_the_fingerprints_are_those_of_the_encoded_training_rows(split_hmda):
    """What fit keeps is the fingerprint of each training and validation row as the preprocessing encodes it,
    and the run loaded back holds the same arrays."""
    d, train, _ = split_hmda
    run = tw.fit(str(d / "train.csv"), sets=["data.target=deny", "train.epochs=1"], verbose=False, out=d / "run2")
    prints = row_fingerprints(run.pre.encode_X(train.drop(columns="deny")))
    seen = run.seen_rows
    assert len(seen.train) + len(seen.validation) == len(np.intersect1d(prints, np.union1d(seen.train, seen.validation)))
    loaded = tw.load(d / "run2").seen_rows
    assert np.array_equal(loaded.train, seen.train) and np.array_equal(loaded.validation, seen.validation)

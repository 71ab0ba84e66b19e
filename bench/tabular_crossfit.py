"""Cross-fitting the ensemble's members over validation folds, measured on bench/tabular.py's outer splits.

    .venv/bin/python bench/tabular_crossfit.py [--tables SwissLabor,OJ] [--splits 3] [--folds 8]
                                               [--epochs 200] [--fold-seed 0] [--out FILE.json]
                                               [--data FOLDER]

The idea (issue 13; docs/tabular.md, "What was tried next"): on a table of a few hundred rows the
default's one 10 % validation split (70 rows on SwissLabor) decides when the ensemble stops, and
changing only which rows land in it moves the test score as much as any recipe change. Cross-fitting
uses every row for validation and every row for training: the rows are cut into K folds, member j
trains on all folds but j and is scored on fold j, and the test prediction averages the K members
(probabilities for classification, predictions for regression). It is measured here with K single
networks trained through the public API (``fit(X, y, validation_data=fold j)``, split ``[0.9, 0.1, 0]``
so no internal test split is held out and every other row trains), each for a fixed ``--epochs`` with
its weights kept after every epoch, and two stopping rules applied afterwards with the default's
patience rule (train/early_stopping.py: 10 epochs, at least 1,000 steps):

- ``own``: each member restores its own best epoch on its own fold (the default's monitor: accuracy,
  ties broken by the log-loss; regression: the squared error);
- ``joint``: every member restores the same epoch, chosen on the out-of-fold predictions of all rows
  (each row scored by the member that did not train on it): a validation set as large as the table;
- ``own_loss``, ``joint_loss``: the same two rules on the validation log-loss alone.

Prints one JSON line per table and split (the test scores, the epochs chosen, CPU seconds) and a mean
per table; ``--out`` writes the lines as JSON. The default is scored by bench/tabular.py itself.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tabular as bench  # noqa: E402  (bench/tabular.py: the suite, the outer splits, the scores)

import trainwell as tw  # noqa: E402
from trainwell.train.early_stopping import resolve_patience  # noqa: E402


class KeepEveryEpoch:
    """A fit callback that keeps a copy of the weights after each epoch."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def on_epoch_end(self, state) -> None:
        self.states.append(copy.deepcopy(state.model.state_dict()))


def folds_of(y: np.ndarray, classification: bool, k: int, seed: int) -> list[np.ndarray]:
    """The K validation folds' row positions (stratified for classification)."""
    cut = StratifiedKFold(k, shuffle=True, random_state=seed) if classification else KFold(k, shuffle=True,
                                                                                           random_state=seed)
    return [val for _, val in cut.split(np.zeros(len(y)), y if classification else None)]


def train_member(X: pd.DataFrame, y: np.ndarray, fold: np.ndarray, member: int, epochs: int):
    """Member ``member``: trained on the rows outside ``fold``, validated on ``fold``; (run, kept weights)."""
    rest = np.setdiff1d(np.arange(len(y)), fold)
    keep = KeepEveryEpoch()
    run = tw.fit(X=X.iloc[rest].reset_index(drop=True), y=y[rest],
                 validation_data=(X.iloc[fold].reset_index(drop=True), y[fold]),
                 sets=["data.split=[0.9,0.1,0.0]", "model.ensemble=1", f"train.seed={member}",
                       "stop.enabled=false", f"train.epochs={epochs}", "train.calibrate=none", "train.monitor=false",
                       "train.progress=false"], save=False, verbose=False, callbacks=[keep])
    steps = math.ceil(len(rest) / run.spec.train.batch_size) if isinstance(run.spec.train.batch_size, int) else 1
    return run, keep.states, steps


def outputs_per_epoch(run, states: list[dict], X: pd.DataFrame, regression: bool) -> np.ndarray:
    """``[epochs, rows, ...]``: the member's predictions (regression) or probabilities after each epoch."""
    out = []
    for weights in states:
        run.model.load_state_dict(weights)
        out.append(run.predict(X).astype(float) if regression else run.predict_proba(X))
    return np.array(out)


def best_epoch(scores: list[tuple], patience: int) -> int:
    """The epoch early stopping restores: the first best of ``scores`` (larger is better), stopping once
    ``patience`` epochs pass without a better one."""
    best = 0
    for e in range(1, len(scores)):
        if scores[e] > scores[best]:
            best = e
        elif e - best >= patience:
            break
    return best


def fold_scores(probs: np.ndarray, truth: np.ndarray, regression: bool) -> np.ndarray:
    """Per epoch, what stopping compares on one fold, summed over its rows: (correct, -log-loss) or
    (-squared error,)."""
    if regression:
        return -((probs - truth[None]) ** 2).sum(1)[:, None]
    p = np.clip(np.take_along_axis(probs, truth[None, :, None].repeat(len(probs), 0), -1)[..., 0], 1e-7, 1)
    return np.stack([(probs.argmax(-1) == truth[None]).sum(1), np.log(p).sum(1)], axis=1)


def crossfit_split(entry: dict, train: pd.DataFrame, test: pd.DataFrame, args) -> dict:
    """Both stopping rules on one outer split: their test scores and the epochs they restore."""
    target, regression = entry["target"], entry["task"] == "regression"
    X, X_test = train.drop(columns=[target]).reset_index(drop=True), test.drop(columns=[target])
    y = train[target].to_numpy()
    start = time.process_time()
    folds = folds_of(y, not regression, args.folds, args.fold_seed)
    val_out, test_out, per_fold, patience = [], [], [], []
    for j, fold in enumerate(folds):
        run, states, steps = train_member(X, y, fold, j, args.epochs)
        val_out.append(outputs_per_epoch(run, states, X.iloc[fold], regression))
        test_out.append(outputs_per_epoch(run, states, X_test, regression))
        truth = y[fold].astype(float) if regression else np.asarray(run.pre.coder.encode(y[fold]), np.int64)
        per_fold.append(fold_scores(val_out[-1], truth.ravel(), regression))
        patience.append(resolve_patience("auto", steps))
    cpu = time.process_time() - start
    epochs = min(len(s) for s in per_fold)
    own = [best_epoch([tuple(r) for r in s[:epochs]], p) for s, p in zip(per_fold, patience)]
    pooled = sum(s[:epochs] for s in per_fold)
    joint = best_epoch([tuple(r) for r in pooled], round(float(np.mean(patience))))
    # the same two rules on the log-loss alone (regression: the one column already is the loss)
    own_loss = [best_epoch([(r[-1],) for r in s[:epochs]], p) for s, p in zip(per_fold, patience)]
    joint_loss = best_epoch([(r[-1],) for r in pooled], round(float(np.mean(patience))))
    row = dict(table=bench.table_name(entry), cpu_s=round(cpu, 1), joint_epoch=joint, own_epochs=own,
               joint_loss_epoch=joint_loss, own_loss_epochs=own_loss)
    for name, pick in (("joint", [joint] * len(folds)), ("own", own),
                       ("joint_loss", [joint_loss] * len(folds)), ("own_loss", own_loss)):
        mean = np.mean([t[e] for t, e in zip(test_out, pick)], axis=0)
        row[name] = test_score(entry, run, mean, test[target])
    return row


def test_score(entry: dict, run, mean: np.ndarray, truth: pd.Series) -> float:
    """Accuracy or R² of the members' averaged output, as bench/tabular.py scores a tool's predictions."""
    if entry["task"] == "regression":
        return float(r2_score(truth.to_numpy(dtype=float), mean))
    labels = run.pre.coder.decode(mean.argmax(-1))        # predict_proba: [rows, classes], binary too
    return float(bench.same_labels(truth.reset_index(drop=True), pd.Series(np.asarray(labels).ravel())).mean())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="SwissLabor,OJ")
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--folds", type=int, default=8)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    p.add_argument("--data", type=Path, default=bench.DATA,
                   help="a folder with suite.json and its CSVs (default: ../shared/data/tabular)")
    args = p.parse_args(argv)
    bench.set_data(args.data)
    rows = bench.each_split(args, lambda entry, train, test: crossfit_split(entry, train, test, args))
    print(pd.DataFrame(rows).groupby("table")[["joint", "own", "joint_loss", "own_loss", "cpu_s"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()

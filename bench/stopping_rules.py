"""Which epoch to restore when the validation split is small: rules compared on bench/tabular.py's outer splits.

    .venv/bin/python bench/stopping_rules.py [--tables SwissLabor,OJ] [--splits 10] [--out FILE.json]
                                             [--ceiling] [--set section.key=value ...]
                                             [--data FOLDER]

The default restores the epoch of least validation loss (train/early_stopping.py). On a table of a few
hundred rows the validation split holds a few dozen rows, and the epoch it ranks first is partly the
luck of those rows (docs/tabular.md). The candidates here ask for *evidence* before a later epoch
replaces the one kept, using the per-row validation losses (a paired comparison: the same rows scored at
two epochs):

- ``default``: the epoch of least mean validation loss, among the epochs before early stopping ended;
- ``paired_z``: a later epoch replaces the kept one only when its mean loss is lower by more than ``z``
  standard errors of the mean per-row difference (z = 0.5, 1, 2): an online rule that keeps one copy
  of the weights, as the default does;
- ``one_se``: the earliest epoch whose mean loss is within one standard error of the best one's
  (the one-standard-error rule, Hastie, Tibshirani & Friedman, The Elements of Statistical Learning,
  2nd ed., section 7.10), which needs every epoch's weights.

Each split trains the defaults once through the public API (``tw.fit(X=, y=)``, 200-epoch budget,
early stopping as usual, ``train.calibrate=none``), keeping each epoch's weights and the per-row
validation losses; every rule then restores its epoch and is scored on the outer test rows. The rules
change nothing but which epoch is restored, so their differences are paired on the same runs.
Prints one JSON line per table and split and a mean per table; ``--out`` writes them as JSON
(bench/results/stopping_rules.json: SwissLabor and OJ, 10 splits; docs/tabular.md shows them).

``--ceiling`` asks a different question: could *any* choice of epoch do better? It trains the whole
200-epoch budget (``stop.enabled=false``; the epochs before the default would stop are the same), scores
every epoch on the outer test rows, and reports per table: ``default`` (the epoch the default rule
restores, its patience replayed on the recorded losses), ``ceiling`` (the epoch of best *test* score in
each split: no rule can do better, since it peeks at the test rows) and ``fixed`` (the one epoch number
best on average over the splits, and its mean score). If the ceiling is below a peer's score, the gap
is in what the network learns, not in when it is stopped. ``--set`` changes the recipe (in both
modes), e.g. to see the trajectory of scikit-learn's training recipe run by trainwell.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import r2_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tabular as bench  # noqa: E402  (bench/tabular.py: the suite, the outer splits, the scores)

import trainwell as tw  # noqa: E402
from trainwell.train.early_stopping import resolve_patience  # noqa: E402

SETS: list[str] = []      # --set: changes to the recipe, for both modes
Z_VALUES = (0.5, 1.0, 2.0)
WINDOWS = (5, 10, 20)


class KeepEpochs:
    """A fit callback keeping, after each epoch, the weights and the validation rows' own losses."""

    def __init__(self) -> None:
        self.states: list[dict] = []
        self.row_losses: list[np.ndarray] = []

    @torch.no_grad()
    def on_epoch_end(self, state) -> None:
        self.states.append(copy.deepcopy(state.model.state_dict()))
        self.steps_per_epoch = state.steps_per_epoch
        self.X_val, self.y_val, self.task = state.data.X_val, state.data.y_val, state.head.task
        self.row_losses.append(row_losses(state.model, self.task, self.X_val, self.y_val))


@torch.no_grad()
def row_losses(model, task: str, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Each row's loss under ``model`` in evaluation mode (the ensemble's averaged prediction)."""
    was = model.training
    model.eval()
    out = model(X).float()
    model.train(was)
    if task == "multiclass":
        loss = torch.nn.functional.cross_entropy(out, y.long(), reduction="none")
    elif task == "binary":
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), y.float(), reduction="none")
    else:
        loss = ((out - y.view_as(out)) ** 2).mean(-1)
    return loss.double().numpy()


def averaged_states(states: list[dict], window: int) -> list[dict]:
    """Per epoch, each weight averaged over the last ``window`` epochs (fewer at the start)."""
    out = []
    for e in range(len(states)):
        chunk = states[max(0, e - window + 1): e + 1]
        out.append({k: sum(s[k] for s in chunk) / len(chunk) if chunk[0][k].is_floating_point() else chunk[-1][k]
                    for k in chunk[0]})
    return out


def paired_choice(losses: np.ndarray, last: int, z: float) -> int:
    """The online rule: the kept epoch changes only on an improvement beyond ``z`` paired standard errors."""
    kept = 0
    for e in range(1, last + 1):
        diff = losses[e] - losses[kept]
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if diff.mean() < -z * se:
            kept = e
    return kept


def one_se_choice(losses: np.ndarray, best: int) -> int:
    """The earliest epoch up to ``best`` within one standard error of ``best``'s mean loss."""
    level = losses[best].mean() + losses[best].std(ddof=1) / np.sqrt(losses.shape[1])
    return int(next(e for e in range(best + 1) if losses[e].mean() <= level))


def test_scores(run, states: list[dict], X_test: pd.DataFrame, truth: pd.Series, regression: bool,
                epochs: set[int]) -> dict[int, float]:
    """Accuracy or R² on the outer test rows with each asked-for epoch's weights restored."""
    scores = {}
    for e in sorted(epochs):
        run.model.load_state_dict(states[e])
        pred = run.predict(X_test)
        if regression:
            scores[e] = float(r2_score(truth.to_numpy(dtype=float), np.asarray(pred, float).ravel()))
        else:
            same = bench.same_labels(truth.reset_index(drop=True), pd.Series(np.asarray(pred).ravel()))
            scores[e] = float(same.mean())
    return scores


def one_split(entry: dict, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    target, regression = entry["target"], entry["task"] == "regression"
    keep = KeepEpochs()
    start = time.process_time()
    run = tw.fit(X=train.drop(columns=[target]).reset_index(drop=True), y=train[target].to_numpy(),
                 sets=["train.calibrate=none", "train.monitor=false", "train.progress=false", *SETS],
                 save=False, verbose=False, callbacks=[keep])
    losses = np.stack(keep.row_losses)                    # [epochs, validation rows]
    last = len(losses) - 1
    best = int(np.argmin(losses.mean(1)))
    picks = {"default": best, "one_se": one_se_choice(losses, best)}
    picks |= {f"paired_{z:g}": paired_choice(losses, last, z) for z in Z_VALUES}
    scores = test_scores(run, keep.states, test.drop(columns=[target]), test[target], regression, set(picks.values()))
    for window in WINDOWS:        # weights averaged over the last epochs, the epoch chosen on their losses
        avg = averaged_states(keep.states, window)
        avg_losses = []
        for st in avg:
            run.model.load_state_dict(st)
            avg_losses.append(row_losses(run.model, keep.task, keep.X_val, keep.y_val).mean())
        e = int(np.argmin(avg_losses))
        name = f"avg_{window}"
        picks[name] = e
        scores_avg = test_scores(run, avg, test.drop(columns=[target]), test[target], regression, {e})
        scores[("avg", window)] = scores_avg[e]
    row = dict(table=bench.table_name(entry), val_rows=int(losses.shape[1]), epochs_run=last + 1,
               cpu_s=round(time.process_time() - start, 1), epochs={k: v + 1 for k, v in picks.items()})
    row |= {k: scores[("avg", int(k[4:]))] if k.startswith("avg_") else scores[v] for k, v in picks.items()}
    return row


def ceiling_split(entry: dict, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """The default's whole trajectory on one split: each epoch's test score and the default's pick."""
    target, regression = entry["target"], entry["task"] == "regression"
    keep = KeepEpochs()
    run = tw.fit(X=train.drop(columns=[target]).reset_index(drop=True), y=train[target].to_numpy(),
                 sets=["train.calibrate=none", "train.monitor=false", "train.progress=false", "stop.enabled=false",
                       *SETS],
                 save=False, verbose=False, callbacks=[keep])
    mean_loss = np.stack(keep.row_losses).mean(1)
    scores = test_scores(run, keep.states, test.drop(columns=[target]), test[target], regression,
                         set(range(len(mean_loss))))
    patience = resolve_patience(run.spec.stop.patience, keep.steps_per_epoch)
    best = 0
    for epoch in range(len(mean_loss)):        # the default rule, replayed: least loss, patience epochs' wait
        best = epoch if mean_loss[epoch] < mean_loss[best] else best
        if epoch - best >= patience:
            break
    by_epoch = [scores[e] for e in range(len(mean_loss))]
    return dict(table=bench.table_name(entry), default=by_epoch[best], default_epoch=best + 1,
                ceiling=max(by_epoch), ceiling_epoch=int(np.argmax(by_epoch)) + 1, by_epoch=by_epoch)


def print_ceiling(rows: list[dict]) -> None:
    for table in dict.fromkeys(r["table"] for r in rows):
        mine = [r for r in rows if r["table"] == table]
        curve = np.mean([r["by_epoch"][:min(len(m["by_epoch"]) for m in mine)] for r in mine], axis=0)
        print(f"{table}: default {np.mean([r['default'] for r in mine]):.4f}, ceiling "
              f"{np.mean([r['ceiling'] for r in mine]):.4f}, best fixed epoch {int(np.argmax(curve)) + 1} "
              f"{curve.max():.4f} ({len(mine)} splits)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="SwissLabor,OJ")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--out", type=Path)
    p.add_argument("--ceiling", action="store_true", help="score every epoch of the whole budget instead")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets")
    p.add_argument("--data", type=Path, default=bench.DATA,
                   help="a folder with suite.json and its CSVs (default: ../shared/data/tabular)")
    args = p.parse_args(argv)
    bench.set_data(args.data)
    SETS[:] = args.sets
    if args.ceiling:
        return print_ceiling(bench.each_split(args, ceiling_split))
    rows = bench.each_split(args, one_split)
    frame = pd.DataFrame(rows)
    rules = ["default", "one_se"] + [f"paired_{z:g}" for z in Z_VALUES] + [f"avg_{w}" for w in WINDOWS]
    means = frame.groupby("table", sort=False)[rules + ["cpu_s"]].mean()
    for rule in rules[1:]:
        diff = frame[rule] - frame["default"]
        se = diff.groupby(frame["table"], sort=False).std(ddof=1) / np.sqrt(frame.groupby("table", sort=False).size())
        means[f"{rule}-default"] = diff.groupby(frame["table"], sort=False).mean().round(4).astype(str) \
            + " ± " + se.round(4).astype(str)
    print(means.round(4).to_string())


if __name__ == "__main__":
    main()

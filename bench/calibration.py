"""Does a temperature make trainwell's default classifiers' probabilities better on rows it never saw?
(issue 18; the answer and the numbers are in docs/training.md, "Calibrated probabilities").

    python bench/calibration.py [--tables OJ,HMDA] [--seeds 0,1,2,3,4,5] [--set model.ensemble=1 ...]
                                [--out bench/results/calibration.json]

Every classification table of the suite trains with trainwell's defaults and ``train.calibrate=none``
once per seed (``train.seed`` also draws the 80/10/10 split), and the members' logits on the validation
and test splits are kept (a ``on_train_end`` callback, after the best epoch is restored). Each candidate
below is then fitted on the validation split of the *same* network and scored on both splits, so a
difference is the calibration alone:

- ``auto``: what ``fit`` does by default (train/calibration.py): the temperature on the ensemble's
  logits, kept only when its cross-validated gain on the validation rows exceeds twice its standard error;
- ``temperature``: that temperature always (``train.calibrate=temperature``; Guo et al. 2017,
  https://arxiv.org/abs/1706.04599);
- ``member_temperature``: one temperature dividing every member's logits *before* their probabilities
  are averaged (calibrate-then-pool; Rahaman & Thiery, "Uncertainty Quantification and Deep Ensembles",
  NeurIPS 2021, https://arxiv.org/abs/2007.08792, argue for pooling first);
- ``logit_average_temperature``: the members' logits averaged instead of their probabilities, then a
  temperature (this one can change predicted labels);
- ``oracle``: the temperature fitted on the *test* split itself: not a method but the most any
  temperature could gain, to size the room there is.

The tables are dealt into two halves fixed before measuring (``CHOOSE``, ``CONFIRM``): a candidate is
chosen on the first half and confirmed on the second. A candidate "helps" a table when its test
log-loss gain, averaged over the seeds, exceeds twice its standard error across seeds.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tabular  # noqa: E402  (the same suite as bench/tabular.py)

import trainwell as tw  # noqa: E402
from trainwell.nn.ensemble import combine_members  # noqa: E402
from trainwell.train.calibration import (fit_temperature, generalises, held_out_gains, nll,  # noqa: E402
                                         probabilities, reliability)

CHOOSE = ("lending_club", "hepatic_injury_qsar", "Caravan", "HMDA")   # every other table in suite order
CONFIRM = ("stackoverflow", "Default", "OJ", "SwissLabor")
METHODS = ("auto", "temperature", "member_temperature", "logit_average_temperature", "oracle")


class Keep:
    """The restored network and its splits, as ``fit`` hands them to calibration."""

    def on_train_end(self, state) -> None:
        self.model, self.data = state.model, state.data


@torch.no_grad()
def member_logits(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """``[rows, members, outputs]`` (one member for a single network)."""
    model.eval()
    return model.member_outputs(X) if hasattr(model, "member_outputs") else model(X).unsqueeze(1)


def loss(z: torch.Tensor, y: torch.Tensor, task: str) -> float:
    return float(nll(z, y, task))


def member_temperature(zm: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """The one T minimizing the log-loss of the members' averaged probabilities of ``zm / T``."""
    best = minimize_scalar(lambda lt: loss(combine_members(zm / math.exp(lt), task), y, task),
                           bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-6})
    return math.exp(best.x)


def candidates(zv: torch.Tensor, yv: torch.Tensor, zt: torch.Tensor, yt: torch.Tensor, task: str) -> dict:
    """Each candidate's (temperature, validation logits, test logits); ``none`` is the default's output."""
    pv, pt = combine_members(zv, task), combine_members(zt, task)
    T = fit_temperature(pv, yv, task)
    kept = T if generalises(held_out_gains(pv, yv, task)) and loss(pv / T, yv, task) < loss(pv, yv, task) else 1.0
    Tm = member_temperature(zv, yv, task)
    lv, lt = zv.mean(1), zt.mean(1)
    Tl = fit_temperature(lv, yv, task)
    To = fit_temperature(pt, yt, task)
    return {"none": (1.0, pv, pt), "auto": (kept, pv / kept, pt / kept), "temperature": (T, pv / T, pt / T),
            "member_temperature": (Tm, combine_members(zv / Tm, task), combine_members(zt / Tm, task)),
            "logit_average_temperature": (Tl, lv / Tl, lt / Tl), "oracle": (To, pv / To, pt / To)}


def measure(entry: dict, seed: int, sets: list[str]) -> dict:
    """One table and seed: every candidate's validation/test log-loss, test ECE and test accuracy."""
    keep = Keep()
    run = tw.fit({"source": str(tabular.DATA / entry["file"]), "target": entry["target"]}, save=False,
                 verbose=False, callbacks=[keep], sets=["train.calibrate=none", f"train.seed={seed}", *sets])
    task, d = run.pre.task, keep.data
    zv, zt = (member_logits(keep.model, X).double().cpu() for X in (d.X_val, d.X_test))
    yv, yt = d.y_val.cpu(), d.y_test.cpu()
    out = {"table": tabular.table_name(entry), "seed": seed, "val_rows": len(yv), "members": zv.shape[1],
           "best_epoch": run.metrics["best_epoch"], "epochs_run": run.metrics["epochs_run"]}
    for name, (T, v, t) in candidates(zv, yv, zt, yt, task).items():
        rel = reliability(probabilities(t, task), yt.numpy(), task)
        out[name] = {"T": T, "val": loss(v, yv, task), "test": loss(t, yt, task), "ece": rel["ece"],
                     "accuracy": rel["hits"]}
    return out


def summary(rows: list[dict]) -> dict:
    """Per table and candidate, over the seeds: the means before/after and the paired test gain."""
    table = {}
    for name in dict.fromkeys(r["table"] for r in rows):
        runs = [r for r in rows if r["table"] == name]
        base = {k: np.mean([r["none"][k] for r in runs]) for k in ("val", "test", "ece", "accuracy")}
        per = {"seeds": len(runs), "val_rows": runs[0]["val_rows"], "none": base}
        for m in METHODS:
            gain = np.array([r["none"]["test"] - r[m]["test"] for r in runs])
            se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else float("nan")
            per[m] = {**{k: float(np.mean([r[m][k] for r in runs])) for k in ("T", "val", "test", "ece", "accuracy")},
                      "T_spread": [float(min(r[m]["T"] for r in runs)), float(max(r[m]["T"] for r in runs))],
                      "test_gain": float(gain.mean()), "test_gain_se": se, "test_better": int((gain > 0).sum()),
                      "applied": int(sum(r[m]["T"] != 1.0 for r in runs)),
                      "helps": bool(gain.mean() > 2 * se), "hurts": bool(gain.mean() < -2 * se)}
        table[name] = per
    return table


def markdown(table: dict) -> str:
    """The side-by-side table (means over seeds) and the choose/confirm verdict per candidate."""
    lines = ["| table | val rows | seeds | candidate | T (range) | val log-loss | test log-loss | test gain ± se "
             "(better/seeds) | test ECE | test accuracy |", "|---|---:|---:|---|---|---|---|---|---|---|"]
    for name, per in table.items():
        b = per["none"]
        for m in METHODS:
            c = per[m]
            lines.append(
                f"| {name} | {per['val_rows']} | {per['seeds']} | {m} | {c['T']:.3f} ({c['T_spread'][0]:.2f}-"
                f"{c['T_spread'][1]:.2f}) | {b['val']:.4f} -> {c['val']:.4f} | {b['test']:.4f} -> {c['test']:.4f} "
                f"| {1000 * c['test_gain']:+.1f} ± {1000 * c['test_gain_se']:.1f} m ({c['test_better']}/{per['seeds']})"
                f" | {b['ece']:.4f} -> {c['ece']:.4f} | {b['accuracy']:.4f} -> {c['accuracy']:.4f} |")
    lines.append("")
    for m in METHODS:
        for half, names in (("choose", CHOOSE), ("confirm", CONFIRM)):
            here = [table[n] for n in names if n in table]
            lines.append(f"{m} on the {half} tables: helps {sum(p[m]['helps'] for p in here)}, hurts "
                         f"{sum(p[m]['hurts'] for p in here)} of {len(here)} (test gain beyond 2 se over seeds); "
                         f"test log-loss lower on {sum(p[m]['test_better'] for p in here)} of "
                         f"{sum(p['seeds'] for p in here)} runs")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="", help="comma-separated table names (default: every classification table)")
    ap.add_argument("--seeds", default="0,1,2,3,4,5", help="comma-separated train.seed values")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="spec override (section.key=value)")
    ap.add_argument("--data", default=str(tabular.DATA), help="the suite's folder (suite.json and the CSVs)")
    ap.add_argument("--out", default=str(HERE / "results" / "calibration.json"))
    args = ap.parse_args()
    tabular.DATA = Path(args.data)
    entries = [e for e in tabular.load_suite([t for t in args.tables.split(",") if t] or None)
               if e["task"] == "classification"]
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for e in entries:
            rows.append(measure(e, seed, args.sets))
            print(json.dumps({k: rows[-1][k] for k in ("table", "seed", "val_rows", "best_epoch")}), flush=True)
    table = summary(rows)
    Path(args.out).write_text(json.dumps({"sets": args.sets, "summary": table, "runs": rows}, indent=1))
    print(markdown(table))


if __name__ == "__main__":
    main()

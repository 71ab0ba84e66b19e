"""The training doctor: rules that turn the history and the monitors into findings.

Each finding is ``{"id", "severity", "title", "evidence", "remedy"}`` (docs/diagnosis.md,
``diagnosis.json``); the list holds problems only, so a healthy run has none.
Remedies: docs/practices/gradients.md (depth recipe, vanishing and exploding gradients, clipping,
lr: Glorot & Bengio 2010, Pascanu et al. 2013) and docs/practices/bias_variance.md (Ng 2018).

Thresholds (module constants below) are documented in docs/diagnosis.md.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# -- thresholds ---------------------------------------------------------------
VANISHING_RATIO = 1e-2      # first-layer / output-layer back-propagated gradient (RMS), first epochs
EXPLODING_NORM = 1e3        # an epoch-mean layer gradient norm above this
EXPLODING_GROWTH = 1e3      # or growing by this factor from the first epoch
SATURATED_SHARE = 0.25      # share of sigmoid/tanh outputs near their bounds, in some layer
DEAD_SHARE = 0.5            # share of ReLU units silent for a whole batch, in some layer
OVERFIT_RISE = 0.10         # validation loss above its best by this relative amount at the end
OVERFIT_RISE_CAUGHT = 0.50  # the same when early stopping restored the best epoch (it caught the overfitting)
FLAT_DROP = 0.05            # lr too low: training loss fell by less than this share over the run
BV_THRESHOLD = 0.05         # bias or variance above 5 percentage points is "high" (docs/practices/bias_variance.md)

REMEDIES = {
    "vanishing_gradients": "Use ReLU with he_uniform init (model.activation=relu, model.init=he_uniform); for deep "
                           "nets (more than 8 layers) add residual blocks and batch normalization "
                           "(model.residual=true model.batchnorm=true); or make the net shallower (docs/practices/depth.md).",
    "exploding_gradients": "Lower the learning rate (try 10x lower), clip gradients (regularize.clip_norm=1.0), "
                           "use a matched initializer (model.init=auto) and batch normalization (docs/practices/initializers.md, docs/practices/normalization.md).",
    "saturation": "Use an initializer matched to the activation (model.init=glorot_uniform for tanh/sigmoid), "
                  "standardize the inputs (data.scale=standard), or switch to ReLU with he_uniform (docs/practices/initializers.md, "
                  "docs/practices/activations.md).",
    "dead_units": "Lower the learning rate, use bias_init=0 and he_uniform init, or a ReLU variant that keeps a "
                  "gradient for x < 0 (model.activation=leaky_relu or elu) (docs/practices/activations.md).",
    "lr_too_high": "Lower the learning rate (try 3-10x lower; `trainwell lr-find` suggests one), or use a "
                   "decaying schedule (schedule.name=plateau) (docs/practices/schedules.md).",
    "lr_too_low": "Raise the learning rate (try 3-10x higher; `trainwell lr-find` suggests one), or use an "
                  "adaptive optimizer (optim.name=adam) (docs/practices/optimizers.md).",
    "overfitting": "Keep early stopping on with restore_best (the best epoch is named), regularize "
                   "(regularize.l2=1e-4, model.dropout=0.2), get more data or augment (regularize.noise), or use "
                   "a smaller network (docs/practices/regularization.md).",
    "underfitting": "Train longer (train.epochs), use a bigger network (model.hidden), or a higher learning rate "
                    "(docs/diagnosis.md, bias and variance).",
    "high_bias": "Train a bigger network, try other architectures, train longer (more epochs) (docs/diagnosis.md).",
    "high_variance": "Regularize (L2, dropout), try a smaller network, get more data or augment it "
                     "(bootstrap, noise) (docs/practices/regularization.md).",
    "depth_recipe": "The depth recipe (docs/practices/depth.md): 1-3 layers: tanh with U(-0.5, 0.5) is fine; 4-8: ReLU + he_uniform; "
                    "9-25: residual blocks + batch normalization (model.residual=true model.batchnorm=true).",
}


def finding(fid: str, severity: str, title: str, evidence: dict, remedy: str | None = None) -> dict:
    return {"id": fid, "severity": severity, "title": title, "evidence": _clean(evidence),
            "remedy": remedy or REMEDIES[fid]}


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# -- bias / variance (Ng, Machine Learning Yearning, 2018) -----------------------
def bias_variance(train_error: float, val_error: float, bayes_error: float = 0.0,
                  threshold: float = BV_THRESHOLD) -> dict:
    """The bias/variance verdict (Ng 2018): bias = train - Bayes, variance = val - train.

    Errors are fractions (0.01 = 1 %). A component is "high" when it exceeds
    ``threshold`` (5 percentage points by default). The verdict is "high bias",
    "high variance", "both" or "neither", with the next steps of docs/practices/bias_variance.md.
    """
    bias = train_error - bayes_error
    variance = val_error - train_error
    hb, hv = bias > threshold, variance > threshold
    verdict = "both" if hb and hv else "high bias" if hb else "high variance" if hv else "neither"
    steps = []
    if hb:
        steps.append(REMEDIES["high_bias"])
    if hv:
        steps.append(REMEDIES["high_variance"])
    return {"train_error": train_error, "val_error": val_error, "bayes_error": bayes_error,
            "bias": bias, "variance": variance, "verdict": verdict, "next_steps": steps}


# -- the rules ------------------------------------------------------------------
def _per_layer(diag: pd.DataFrame, stat: str, epochs: list[int] | None = None) -> pd.Series:
    d = diag if epochs is None else diag[diag["epoch"].isin(epochs)]
    return d.groupby("index")[stat].mean().sort_index()


def _names(diag: pd.DataFrame) -> dict[int, str]:
    return dict(zip(diag["index"], diag["layer"]))


def check_gradients(diag: pd.DataFrame, history: pd.DataFrame, stopped_because: str, lr: float) -> list[dict]:
    out = []
    losses = history["train_loss"].to_numpy(dtype=float) if "train_loss" in history else np.array([])
    nan_epochs = [int(e) for e, v in zip(history.get("epoch", []), losses) if not math.isfinite(v)]
    g = diag.pivot_table(index="epoch", columns="index", values="grad_norm", dropna=False) if not diag.empty else None
    evidence: dict[str, Any] = {"lr": lr}
    exploding = bool(nan_epochs) or stopped_because == "nan"
    if nan_epochs:
        evidence["nan_epoch"] = nan_epochs[0]
    if g is not None and not g.empty:
        gv = g.to_numpy(dtype=float)
        nonfinite = ~np.isfinite(gv)
        if nonfinite.any():
            exploding = True
            evidence["first_nonfinite_gradient_epoch"] = int(g.index[np.argmax(nonfinite.any(axis=1))])
        finite = np.where(np.isfinite(gv), gv, np.nan)
        peak = np.nanmax(finite) if np.isfinite(finite).any() else math.nan
        first = np.nanmax(finite[0]) if np.isfinite(finite[0]).any() else math.nan
        if math.isfinite(peak):
            evidence["max_gradient_norm"] = peak
            evidence["first_epoch_gradient_norm"] = first
            if peak > EXPLODING_NORM or (first > 0 and peak / first > EXPLODING_GROWTH):
                exploding = True
    if exploding:
        what = f"the loss became NaN/inf in epoch {nan_epochs[0]}" if nan_epochs else "gradient norms blew up"
        out.append(finding("exploding_gradients", "error", f"Exploding gradients: {what}", evidence))
    if g is None or g.empty or g.shape[1] < 3:
        return out
    # vanishing: gradient norms shrink from the output layer back to the input layer, at the start
    first_epochs = [0] if 0 in g.index else list(g.index[:1])     # the network as initialised
    stat = "out_grad_rms" if "out_grad_rms" in diag and diag["out_grad_rms"].notna().any() else "grad_norm"
    early = _per_layer(diag, stat, first_epochs)
    names = _names(diag)
    if not np.isfinite(early.to_numpy()).all():
        return out
    last = float(early.iloc[-1])
    first_layer = float(early.iloc[0])
    ratio = first_layer / last if last > 0 else math.nan
    if last > 0 and ratio < VANISHING_RATIO:
        per_layer = {names[i]: float(v) for i, v in early.items()}
        logs = np.log10(np.maximum(early.to_numpy(), 1e-30))
        slope = float(np.polyfit(np.arange(len(logs)), logs, 1)[0])
        out.append(finding(
            "vanishing_gradients", "error",
            f"Vanishing gradients: the back-propagated gradient at the first layer is {ratio:.1e} x the one at "
            f"the output layer ({len(early)} layers)",
            {"epochs": [int(e) for e in first_epochs], "statistic": stat, "first_to_last_ratio": ratio,
             "decades_per_layer": slope, "gradient_by_layer": per_layer}))
    return out


def check_activations(diag: pd.DataFrame) -> list[dict]:
    out = []
    if diag.empty:
        return out
    names = _names(diag)
    kinds = dict(zip(diag["index"], diag["activation"]))
    first = sorted(diag["epoch"].unique())[:3]          # what training starts from
    sat = _per_layer(diag, "saturated_frac", first)
    sat = sat[[kinds[i] in ("sigmoid", "tanh") for i in sat.index]].dropna()
    bad = sat[sat > SATURATED_SHARE]
    if len(bad):
        out.append(finding(
            "saturation", "error" if bad.max() > 0.6 else "warning",
            f"Saturation: up to {bad.max():.0%} of {kinds[bad.idxmax()]} outputs sit at their bounds "
            f"in {len(bad)} of {len(sat)} layers",
            {"epochs": [int(e) for e in first], "threshold": SATURATED_SHARE,
             "saturated_share_by_layer": {names[i]: float(v) for i, v in sat.items()},
             "layers": [names[i] for i in bad.index]}))
    last = sorted(diag["epoch"].unique())[-3:]          # units that stayed dead
    dead = _per_layer(diag, "dead_frac", last)
    dead = dead[[kinds[i] == "relu" for i in dead.index]].dropna()
    bad = dead[dead > DEAD_SHARE]
    if len(bad):
        out.append(finding(
            "dead_units", "error" if bad.max() > 0.9 else "warning",
            f"Dead ReLUs: up to {bad.max():.0%} of the units output 0 for every sample, in {len(bad)} of "
            f"{len(dead)} layers",
            {"epochs": [int(e) for e in last], "threshold": DEAD_SHARE,
             "dead_share_by_layer": {names[i]: float(v) for i, v in dead.items()},
             "layers": [names[i] for i in bad.index]}))
    return out


def check_lr(history: pd.DataFrame, lr: float, explained: bool) -> list[dict]:
    """lr too high: the training loss oscillates or diverges; too low: it hardly moves."""
    out = []
    if history.empty or "train_loss" not in history:
        return out
    loss = history["train_loss"].to_numpy(dtype=float)
    loss = loss[np.isfinite(loss)]
    if len(loss) < 5:
        return out
    first, low, last = loss[0], loss.min(), loss[-1]
    span = max(first - low, 1e-12)
    rises = np.diff(loss) > 0.05 * span + 1e-12
    share_up = float(rises.mean())
    climbed = (last - low) / span
    if last > first * 1.05 or (climbed > 0.25 and last - low > 0.05 * first) or (share_up > 0.3 and climbed > 0.1):
        what = "diverges" if last > first * 1.05 or climbed > 0.5 else "oscillates"
        out.append(finding(
            "lr_too_high", "warning", f"Learning rate too high: the training loss {what}",
            {"lr": lr, "first_train_loss": first, "lowest_train_loss": low, "last_train_loss": last,
             "epoch_of_lowest": int(history["epoch"].iloc[int(np.argmin(history["train_loss"]))]),
             "share_of_epochs_with_rising_loss": share_up}))
    elif not explained and (first - last) / max(abs(first), 1e-12) < FLAT_DROP and last > 1e-3:
        out.append(finding(
            "lr_too_low", "warning",
            f"Learning rate too low: the training loss fell only {100 * (first - last) / max(first, 1e-12):.1f} % "
            f"in {len(loss)} epochs",
            {"lr": lr, "first_train_loss": first, "last_train_loss": last, "epochs": len(loss)}))
    return out


def check_fit(history: pd.DataFrame, stopped_because: str, early_stopping: bool) -> list[dict]:
    """Overfitting (validation loss rising while training loss falls) and underfitting (still improving)."""
    out = []
    if history.empty or "val_loss" not in history or history["val_loss"].isna().all():
        return out
    h = history[np.isfinite(history["train_loss"]) & np.isfinite(history["val_loss"])]
    if len(h) < 5:
        return out
    val, tr, ep = h["val_loss"].to_numpy(), h["train_loss"].to_numpy(), h["epoch"].to_numpy()
    b = int(np.argmin(val))
    best_epoch = int(ep[b])
    after = len(h) - 1 - b
    rise = (val[-1] - val[b]) / max(abs(val[b]), 1e-12)
    train_fell = tr[-1] < tr[b] * 0.9
    # with early stopping + restore_best the delivered model is the best epoch's: report only a steep rise
    limit = OVERFIT_RISE_CAUGHT if early_stopping else OVERFIT_RISE
    if after >= 3 and rise > limit and train_fell:
        severity = "info" if early_stopping else "warning"
        out.append(finding(
            "overfitting", severity,
            f"Overfitting: validation loss was best in epoch {best_epoch} and rose {rise:.0%} while the "
            f"training loss kept falling",
            {"best_epoch": best_epoch, "best_val_loss": val[b], "last_val_loss": val[-1],
             "train_loss_at_best": tr[b], "last_train_loss": tr[-1], "epochs_after_best": after,
             "last_epoch": int(ep[-1]), "early_stopping": early_stopping}))
    elif stopped_because.startswith("reached the epoch budget") and after <= max(1, len(h) // 20):
        tail = max(2, len(h) // 5)
        drop = (val[-tail] - val[-1]) / max(abs(val[-tail]), 1e-12)
        if drop > 0.02:
            out.append(finding(
                "underfitting", "info",
                f"Underfitting: the validation loss was still falling ({drop:.0%} over the last {tail} epochs) "
                f"when the epoch budget ran out",
                {"epochs_run": int(ep[-1]), "best_epoch": best_epoch, "val_loss_drop_last_epochs": drop,
                 "last_epochs": tail}))
    return out


def check_depth(arch: dict) -> list[dict]:
    """Deep tanh/sigmoid nets without batch norm or residual blocks train badly (docs/practices/depth.md)."""
    hidden = arch.get("hidden") or []
    depth = len(hidden) if isinstance(hidden, list) else 0
    act = str(arch.get("activation", ""))
    bn, res = bool(arch.get("batchnorm")), bool(arch.get("residual"))
    ev = {"hidden_layers": depth, "activation": act, "init": arch.get("init"), "batchnorm": bn, "residual": res}
    if depth > 3 and act in ("tanh", "sigmoid", "softsign") and not (bn or res):
        return [finding("depth_recipe", "warning",
                        f"{depth} {act} layers without batch norm or residual blocks (docs/practices/depth.md: beyond 3 layers use "
                        f"ReLU + he_uniform, beyond 8 residual + batch norm)", ev)]
    if depth > 8 and not (bn and res):
        return [finding("depth_recipe", "info",
                        f"{depth} hidden layers without residual blocks + batch norm (docs/practices/depth.md: the recipe for 9-25 layers)",
                        ev)]
    return []


def check_leakage(metrics: dict) -> list[dict]:
    """Feature columns that reproduced the target on the training rows (data/leakage.py): the scores of this run
    may not hold on the rows the model is meant for."""
    leakage = metrics.get("leakage") or {}
    columns = leakage.get("columns") or {}
    if not columns:
        return []
    listed = "; ".join(f"{name} ({why})" for name, why in columns.items())
    return [finding("target_leakage", "warning",
                    f"Possible target leakage: {listed}, so these scores may not hold on new data (Kaufman et al. "
                    f"2012, https://doi.org/10.1145/2382577.2382579)", {"columns": columns},
                    f"If {'it' if len(columns) == 1 else 'they'} will not be known when predicting, train again "
                    f"without: --set \"{leakage.get('setting', 'data.drop_columns=[...]')}\" (docs/data.md)")]


def majority_error(metrics: dict) -> float | None:
    """The training error of always predicting the most frequent class (from the training confusion
    matrix; None without one): the error any classifier that learned something beats."""
    cm = metrics.get("train", {}).get("confusion_matrix")
    if not cm:
        return None
    counts = np.asarray(cm, dtype=float).sum(axis=1)
    return float(1.0 - counts.max() / counts.sum()) if counts.sum() > 0 else None


def check_bias_variance(metrics: dict, bayes_error: float | None, bayes_given: bool = True) -> list[dict]:
    """High bias and high variance (Ng 2018). Bias needs the error no model can beat: with an estimate
    (``bayes_given``) the verdict is a warning; without one it is counted from 0 %, which on real tables
    (label noise, overlapping classes) flags nearly every run, so it stays an info unless the network is
    no better than predicting the most frequent class, which is high bias whatever the Bayes error."""
    task = metrics.get("task")
    if task not in ("binary", "multiclass", "multilabel") or bayes_error is None:
        return []
    tr, va = metrics.get("train", {}).get("accuracy"), metrics.get("val", {}).get("accuracy")
    if tr is None or va is None:
        return []
    bv = bias_variance(1 - tr, 1 - va, bayes_error)
    out = []
    ev = {k: bv[k] for k in ("train_error", "val_error", "bayes_error", "bias", "variance", "verdict")}
    if bv["verdict"] in ("high bias", "both"):
        out.append(_high_bias(bv, metrics, bayes_error, bayes_given, ev))
    if bv["verdict"] in ("high variance", "both"):
        out.append(_high_variance(bv, metrics, ev))
    return out


def _high_variance(bv: dict, metrics: dict, ev: dict) -> dict:
    """A validation error above the training error, a warning unless the gap is within twice the standard
    error of an error rate measured on the validation rows (sqrt(e(1-e)/n)): on 30 rows that is 13 points."""
    cm = metrics.get("val", {}).get("confusion_matrix")
    rows = float(np.asarray(cm, dtype=float).sum()) if cm else 0.0
    noise = 2 * math.sqrt(bv["val_error"] * (1 - bv["val_error"]) / rows) if rows else 0.0
    if bv["variance"] > noise:
        return finding("high_variance", "warning", f"High variance: validation error {bv['val_error']:.1%} is "
                       f"{bv['variance']:.1%} above the training error (verdict: {bv['verdict']})", ev)
    return finding("high_variance", "info", f"Validation error {bv['val_error']:.1%} is {bv['variance']:.1%} above the "
                   f"training error, within the noise of {rows:.0f} validation rows (2 standard errors: "
                   f"{noise:.1%})", {**ev, "validation_rows": rows, "two_standard_errors": noise})


def _high_bias(bv: dict, metrics: dict, bayes_error: float, bayes_given: bool, ev: dict) -> dict:
    if bayes_given:
        return finding("high_bias", "warning", f"High bias: training error {bv['train_error']:.1%} is "
                       f"{bv['bias']:.1%} above the Bayes error {bayes_error:.1%} (verdict: {bv['verdict']})", ev)
    trivial = majority_error(metrics)
    if trivial is not None and bv["train_error"] >= trivial:
        return finding("high_bias", "warning", f"High bias: training error {bv['train_error']:.1%}, no better "
                       f"than predicting the most frequent class ({trivial:.1%}) (verdict: {bv['verdict']})",
                       {**ev, "majority_error": trivial})
    return finding("high_bias", "info", f"Training error {bv['train_error']:.1%}: high bias only if a model can "
                   f"do better on these data; with no estimate of the error no model can beat it is counted from "
                   f"0 % (trainwell diagnose RUN --bayes-error E judges it)", ev)


def diagnose_parts(history: pd.DataFrame | None, diagnostics: pd.DataFrame | None, arch: dict, spec: Any,
                   metrics: dict | None = None, stopped_because: str = "", bayes_error: float | None = 0.0,
                   bayes_given: bool = True) -> dict:
    """All rules on the raw parts of a run; returns ``{"findings": [...], "bias_variance": {...}}``.
    ``bayes_given`` False: ``bayes_error`` is not the user's estimate but the 0 % assumed without one."""
    history = history if history is not None else pd.DataFrame()
    diag = diagnostics if diagnostics is not None else pd.DataFrame()
    metrics = metrics or {}
    lr = float(spec.optim.lr) if spec is not None else math.nan
    early = bool(spec.stop.enabled and spec.stop.restore_best) if spec is not None else True
    findings = check_gradients(diag, history, stopped_because, lr) if not history.empty or not diag.empty else []
    findings += check_activations(diag)
    explained = any(f["id"] in ("vanishing_gradients", "saturation", "dead_units", "exploding_gradients")
                    for f in findings)
    if not any(f["id"] == "exploding_gradients" and "nan_epoch" in f["evidence"] for f in findings):
        findings += check_lr(history, lr, explained)
    findings += check_fit(history, stopped_because, early)
    findings += check_depth(arch)
    findings += check_bias_variance(metrics, bayes_error, bayes_given)
    findings += check_leakage(metrics)
    result: dict[str, Any] = {"findings": findings}
    tr = metrics.get("train", {}).get("accuracy")
    va = metrics.get("val", {}).get("accuracy")
    if tr is not None and va is not None and bayes_error is not None:
        result["bias_variance"] = _clean({**bias_variance(1 - tr, 1 - va, bayes_error), "bayes_error_given": bayes_given})
    return result

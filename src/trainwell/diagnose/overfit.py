"""Babysitting checks before a long run (docs/practices/gradients.md): accuracy before training, and
"can the model overfit a small batch?" (Bengio 2012: if not, change the model or make it larger).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from trainwell.build import assemble, spec_for
from trainwell.core.errors import check_range
from trainwell.core.spec import Spec
from trainwell.data.batches import Tensors
from trainwell.train.loop import evaluate_tensors, fit_loop


def overfit_check(data: str | None = None, X: Any = None, y: Any = None, spec: Any = None, *,
                  sets: list[str] | None = None, n: int = 32, steps: int = 300, **overrides: Any) -> dict:
    """Train the spec's model full-batch on ``n`` training samples for ``steps`` steps.

    Returns ``{"n", "steps", "loss_before", "loss_after", "metric", "metric_before", "metric_after",
    "passed", "verdict"}``. Passed: accuracy 100 % (classification) or the loss fell below 1 % of its start
    (regression) -- the model has the capacity to fit the data and the training machinery works.
    """
    check_range("n", n, 1, meaning="how many training samples to overfit")
    check_range("steps", steps, 1, meaning="full-batch training steps")
    spec = Spec.build(spec_for(data, spec, sets, overrides),
                      sets=[f"train.epochs={int(steps)}", "train.batch_size=full", "stop.enabled=false",
                            "stop.restore_best=false", "train.monitor=false", "regularize.l1=0",
                            "regularize.l2=0", "model.dropout=0", "regularize.noise=0",
                            "model.crossfit=false"])   # every packed member fits the whole batch
    built = assemble(spec, X, y, streaming=False)
    spec, state, prep = built.spec, built.state, built.prep
    d = state.data
    k = min(int(n), d.X_train.shape[0])
    idx = torch.randperm(d.X_train.shape[0], generator=torch.Generator().manual_seed(spec.train.seed))[:k]
    idx = idx.to(d.X_train.device)
    Xs, ys = d.X_train[idx], d.y_train[idx]
    state.data = Tensors(Xs, ys, Xs, ys, Xs[:0], ys[:0])     # validate on the same small batch
    loss0, metric0 = evaluate_tensors(state.model, state.head, Xs, ys)
    fit_loop(state)
    loss1, metric1 = evaluate_tensors(state.model, state.head, Xs, ys)
    metric = state.head.metric
    if prep.pre.task == "regression":
        passed = math.isfinite(loss1) and loss1 < 0.01 * loss0
    else:
        passed = metric1 >= 1.0 - 1e-9
    verdict = (f"the model can overfit {k} samples ({metric} {metric1:.3f}, loss {loss0:.3g} -> {loss1:.3g})"
               if passed else
               f"the model could NOT overfit {k} samples in {steps} steps ({metric} {metric1:.3f}, loss "
               f"{loss0:.3g} -> {loss1:.3g}): check the data/labels, raise the lr, or make the model larger "
               "(Bengio 2012)")
    return {"n": k, "steps": int(steps), "loss_before": loss0, "loss_after": loss1, "metric": metric,
            "metric_before": metric0, "metric_after": metric1, "passed": bool(passed), "verdict": verdict}

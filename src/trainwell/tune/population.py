"""Population training: P models of one architecture trained at once as one batched computation.

docs/performance.md: "many small models (a search, an ensemble, MC dropout samples) train
together as one batched computation rather than one after another". On a small
network the cost of a step is per-operation dispatch, not arithmetic, so
stacking P networks' weights as ``[P, in, out]`` tensors and running every layer
as one ``torch.baddbmm`` makes a step for P models cost little more than a step
for one (docs/performance.md has the figures).

What each member has of its own (``[P]`` tensors or per-member Python objects):

* hyperparameters: ``optim.lr``, ``weight_decay``, ``momentum``, ``beta1``,
  ``beta2``, ``eps``; ``model.dropout``; the initializer and its scale
  (``model.init``, ``init_std``, ``init_limit``, ``bias_init``); ``train.seed``;
  ``train.epochs``; the whole ``stop`` section;
* its own batches: a per-member permutation drawn from a generator seeded with
  the member's seed, exactly as a lone run draws it, so each member sees the
  same batches in the same order as when trained alone;
* its own optimizer state, history, early stopping and best weights. A member
  that stops leaves the population (its slices are dropped), so the others run
  faster.

The optimizer is a batched re-implementation, with torch ops on the stacked
tensors, of torch's update rules: each optimizer's ``stacked`` update in the registry
(optim/optimizers.py; the same formulas as torch's fused CPU kernels), so a member ends with the
same weights as the same configuration trained alone by ``trainwell.fit`` to
float tolerance (tests/test_population.py checks 1e-5). Dropout masks are drawn
per member from the member's seed but not from the same stream as a lone run,
so members with dropout match lone runs in distribution, not bit for bit.

Everything that needs a per-member code path is refused with a reason by
:func:`unsupported` (batch norm, schedules other than ``none``, the
``regularize`` section, optimizers without a stacked update); callers train those members alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trainwell.data.pipeline import Prepared
from trainwell.nn.heads import Head, make_head
from trainwell.train.batch_size import resolve_batch
from trainwell.nn.models import build_model, initialize
from trainwell.optim.optimizers import OPTIMIZERS
from trainwell.spec import Spec
from trainwell.train.early_stopping import EarlyStopping, loss_tiebreak, resolve_mode, resolve_monitor, resolve_patience
from trainwell.train.loop import EVAL_CHUNK
from trainwell.train.memory import check_memory
from trainwell.tune.population_resume import PopulationCheckpoints, mark
from trainwell.tune.stacked import StackedMLP, StackedOptimizer, member_losses, member_terms

POPULATION_OPTIMIZERS = tuple(name for name, o in OPTIMIZERS.items() if o.stacked)   # with a stacked update
STRUCTURE_PATHS = ("model.hidden", "model.units", "model.layers", "model.activation", "model.type",
                   "train.batch_size", "optim.name", "model.batchnorm", "model.residual")   # see structure_key


def one_network(spec: Spec, arch: dict) -> dict:
    """``arch`` as one network: a population is itself many networks, so ``model.ensemble: auto`` (which
    would pack several into each member, nn/ensemble.py) means one here; an explicit size is refused by
    ``unsupported``."""
    return {**arch, "members": 1} if spec.model.ensemble == "auto" else arch


def unsupported(spec: Spec, arch: dict) -> str | None:
    """Why this configuration cannot join a population (None when it can)."""
    if int(arch.get("members", 1)) > 1:
        return f"model.ensemble={arch['members']} (a packed ensemble per member)"
    if arch.get("type", "mlp") != "mlp":
        return f"model.type={arch.get('type')}"
    if arch.get("batchnorm"):
        return "batch norm (per-member running statistics)"
    if arch.get("residual"):
        return "residual blocks"
    if arch.get("activation") == "prelu":
        return "prelu (a learned activation parameter)"
    if arch.get("activation") == "selu" and arch.get("dropout", 0.0) > 0:
        return "selu with alpha dropout"
    if spec.optim.name not in POPULATION_OPTIMIZERS:
        return f"optim.name={spec.optim.name} (population optimizers: {', '.join(POPULATION_OPTIMIZERS)})"
    if spec.schedule.name not in ("none", "auto"):     # auto: a population trains at a constant lr
        return f"schedule.name={spec.schedule.name}"
    reg = spec.regularize
    if any((reg.l1, reg.l2, reg.bias_l1, reg.bias_l2, reg.activity_l1, reg.activity_l2, reg.noise,
            reg.clip_norm, reg.clip_value)):
        return "the regularize section (train those members alone)"
    augment = getattr(spec.data, "augment", None)
    if augment is not None and any(bool(v) for v in augment.model_dump().values() if not isinstance(v, str)):
        return "data.augment"
    return None


def structure_key(spec: Spec, arch: dict) -> tuple:
    """Members that share this key can be trained in one population."""
    return (tuple(arch["hidden"]), arch["activation"], arch.get("residual", False), arch["n_inputs"],
            arch["n_outputs"], arch.get("loss"), arch.get("output_activation"), spec.optim.name,
            str(spec.train.batch_size))


@dataclass
class MemberResult:
    """One member's outcome, shaped like a lone run's TrainState fields."""

    spec: Spec
    arch: dict
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    stopper: EarlyStopping | None = None
    epochs_run: int = 0
    stopped_because: str = ""
    seconds: float = 0.0


def _hyper(specs: list[Spec]) -> dict[str, torch.Tensor]:
    f = lambda key: torch.tensor([float(getattr(s.optim, key)) for s in specs], dtype=torch.float64)  # noqa: E731
    return {k: f(k) for k in ("lr", "weight_decay", "momentum", "beta1", "beta2", "eps")}


def _batch_size(spec: Spec, n: int) -> int:
    b = spec.train.batch_size
    return n if b == "full" else min(int(b), n)   # "auto" is resolved by train_population (train/batch_size.py)


def train_population(specs: list[Spec], prep: Prepared, archs: list[dict], device: torch.device | str = "cpu",
                     on_epoch: Callable[[int, dict], bool] | None = None,
                     checkpoints: PopulationCheckpoints | None = None) -> list[MemberResult]:
    """Train ``specs`` (one architecture, see :func:`structure_key`) as one population.

    ``archs[i]`` is member i's resolved architecture dict (as ``resolve_architecture``
    gives). ``on_epoch(i, row)`` is called after each of member i's epochs with its
    history row; returning True stops that member (a pruner). Returns one
    :class:`MemberResult` per member, in order, with the member's best weights
    restored when its ``stop.restore_best`` is on. ``checkpoints``: the loop's state saved at every
    epoch's end, and resumed from when one is there (tune/population_resume.py).
    """
    from trainwell.api import seed_everything
    device = torch.device(device)
    archs = [one_network(s, a) for s, a in zip(specs, archs)]
    P = len(specs)
    head = make_head(prep.pre.task, archs[0]["loss"], archs[0]["output_activation"])
    metric = head.metric
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    X, y, Xv, yv = as_t(prep.X_train), as_t(prep.y_train), as_t(prep.X_val), as_t(prep.y_val)
    if X.dim() > 2:
        X, Xv = X.flatten(1), Xv.flatten(1)
    n = X.shape[0]
    specs = [resolve_batch(s, n)[0] for s in specs]      # batch_size auto (and its lr), as build_state does
    b = _batch_size(specs[0], n)
    check_memory({**archs[0], "members": P}, b, device)     # P networks side by side: refused before allocating
    models, results = [], []
    for spec, arch in zip(specs, archs):
        seed_everything(spec.train.seed)                 # as build_state does for a lone run
        model = build_model(arch)
        initialize(model, arch, spec.train.seed)
        models.append(model)
        st = spec.stop
        monitor = resolve_monitor(st.monitor, prep.pre.task, metric)
        monitor = monitor if monitor in ("val_loss", "train_loss", f"val_{metric}", f"train_{metric}") else "val_loss"
        stopper = EarlyStopping(monitor=monitor, mode=resolve_mode(monitor, st.mode),
                                patience=resolve_patience(st.patience, math.ceil(n / b)),
                                min_delta=st.min_delta, target=st.target, delta=st.delta, enabled=st.enabled,
                                tiebreak=loss_tiebreak(monitor))
        results.append(MemberResult(spec=spec, arch=arch, model=model, stopper=stopper))
    net = StackedMLP(models, archs[0], torch.tensor([float(a.get("dropout", 0.0)) for a in archs])).to(device)
    perm_gens, drop_gens = [], []
    for spec in specs:
        g = torch.Generator(device=device)
        g.manual_seed(spec.train.seed)
        perm_gens.append(g)
        d = torch.Generator(device=device)
        d.manual_seed(spec.train.seed + 1_000_003)
        drop_gens.append(d)
    net.generators = drop_gens
    opt = StackedOptimizer(specs[0].optim.name, _hyper(specs), device)
    manual = net.manual(head)          # backward written out (tune/stacked.py), else autograd on the flat tensor
    active = list(range(P))                               # member index of each population slot
    best: dict[int, dict[str, torch.Tensor]] = {}
    epochs = [s.train.epochs for s in specs]
    t_start = time.perf_counter()
    epoch = 0
    loop = SimpleNamespace(net=net, opt=opt, perm_gens=perm_gens, drop_gens=drop_gens, results=results, best=best,
                           active=active, epoch=epoch)
    if checkpoints is not None and checkpoints.resume and checkpoints.restore(loop):
        active, epoch = loop.active, loop.epoch
    grad = torch.empty_like(net.flat)
    while active:
        t0 = time.perf_counter()
        A = len(active)
        perms = torch.stack([torch.randperm(n, generator=perm_gens[m], device=device) for m in active])
        loss_sum = torch.zeros(A, device=device)
        terms = None
        # multiclass: each step's predicted classes go to one buffer, scored once per epoch
        predicted = torch.empty(A, n, dtype=torch.long, device=device) if head.task == "multiclass" else None
        for start in range(0, n, b):
            idx = perms[:, start:start + b]
            xb, yb = X[idx], y[idx]
            if manual:
                losses, out = net.gradients(xb, yb, head, grad)
            else:
                flat = net.flat.detach().requires_grad_()
                out = net.forward(xb, True, flat)
                losses = member_losses(head, out, yb)
                (grad,) = torch.autograd.grad(losses.sum(), flat)
                out, losses = out.detach(), losses.detach()
            opt.step(net.flat, grad)
            if checkpoints is not None:
                checkpoints.on_step(opt.steps)
            loss_sum.add_(losses, alpha=idx.shape[1])
            if predicted is not None:
                predicted[:, start:start + b] = out.argmax(-1)
            else:
                t = member_terms(head, out, yb)
                terms = t if terms is None else terms.add_(t)
        if predicted is not None:
            correct = (predicted == y[perms]).sum(1).to(loss_sum.dtype)
            terms = torch.stack([correct, torch.full_like(correct, float(n))], 1)
        epoch += 1
        val_loss, val_terms = _evaluate(net, head, Xv, yv, A)
        stats = torch.cat([loss_sum[:, None], terms, val_loss[:, None], val_terms], 1).cpu().numpy()
        k = terms.shape[1]
        seconds = time.perf_counter() - t0
        keep = []
        lrs = opt.hp["lr"].cpu().numpy()
        for slot, m in enumerate(active):
            r = results[m]
            s = stats[slot]
            train_loss = float(s[0] / n)
            row = {"epoch": epoch, "lr": float(lrs[slot]), "train_loss": train_loss,
                   "val_loss": float(s[1 + k]) if Xv.shape[0] else math.nan,
                   f"train_{metric}": head.metric_value(s[1:1 + k]),
                   f"val_{metric}": head.metric_value(s[2 + k:]) if Xv.shape[0] else math.nan,
                   "seconds": seconds / A}
            r.history.append(row)
            r.epochs_run = epoch
            stop = False
            if not math.isfinite(train_loss):
                stop, r.stopped_because = True, "nan"
            else:
                monitored = row.get(r.stopper.monitor, row["val_loss"])
                if r.stopper.update(epoch, monitored, row.get(r.stopper.tiebreak, math.nan)):
                    stop, r.stopped_because = True, r.stopper.reason
                if r.stopper.best_epoch == epoch and r.spec.stop.restore_best:
                    best[m] = net.member_state(slot, r.model)
            if not stop and on_epoch is not None and on_epoch(m, row):
                stop, r.stopped_because = True, r.stopped_because or "stopped by the caller"
            if not stop and epoch >= epochs[m]:
                stop, r.stopped_because = True, f"reached the epoch budget ({epochs[m]})"
            if stop:
                r.model.load_state_dict(net.member_state(slot, r.model))
                r.seconds = time.perf_counter() - t_start
            else:
                keep.append(slot)
        if len(keep) < A:
            if keep:
                sel = torch.tensor(keep, device=device)
                net.select(sel)
                net.generators = [drop_gens[active[s]] for s in keep]
                opt.select(sel)
                grad = torch.empty_like(net.flat)
            active = [active[s] for s in keep]
        if checkpoints is not None:
            loop.active, loop.epoch = active, epoch
            checkpoints.save(loop)
    for m, r in enumerate(results):
        if r.spec.stop.restore_best and m in best and r.stopped_because != "nan":
            r.model.load_state_dict(best[m])
        r.model.to(device)
    return results


@torch.no_grad()
def _evaluate(net: StackedMLP, head: Head, Xv: torch.Tensor, yv: torch.Tensor, A: int):
    """Each member's mean loss and metric terms on the validation split, in chunks."""
    if Xv.shape[0] == 0:
        k = 4 if head.task == "regression" else 2
        return torch.zeros(A, device=Xv.device), torch.zeros(A, k, device=Xv.device)
    loss_sum, terms = torch.zeros(A, device=Xv.device), None
    for i in range(0, Xv.shape[0], EVAL_CHUNK):
        xb, yb = Xv[i:i + EVAL_CHUNK], yv[i:i + EVAL_CHUNK]
        out = net.forward(xb.expand(A, *xb.shape), train=False)
        ybe = yb.expand(A, *yb.shape)
        loss_sum += member_losses(head, out, ybe) * xb.shape[0]
        t = member_terms(head, out, ybe)
        terms = t if terms is None else terms + t
    return loss_sum / Xv.shape[0], terms


class Ensemble(nn.Module):
    """A deep ensemble: the average of its members' probabilities, returned as logits of that average.

    ``Run.predict``/``predict_proba`` apply the head's softmax / sigmoid to the output,
    which gives back exactly the mean of the members' probabilities; regression
    returns the mean of the members' outputs.
    """

    def __init__(self, members: list[nn.Module], task: str):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x).float() for m in self.members])
        if self.task == "multiclass":
            return torch.log(torch.softmax(outs, -1).mean(0).clamp_min(1e-30))
        if self.task in ("binary", "multilabel"):
            return torch.logit(torch.sigmoid(outs).mean(0), eps=1e-7)
        return outs.mean(0)


# -- helpers shared by ``tune --population`` and ``fit(ensemble=P)`` ------------------
def _prepare_cached(spec: Spec, X, y, cache: dict):
    """Prepared data for ``spec`` (split, scaling), shared by members whose data settings agree."""
    import json

    from trainwell.api import load_prepared
    key = json.dumps([spec.to_dict().get("data"), spec.train.seed, spec.task], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = load_prepared(spec, X, y)[1]
    return key, cache[key]


def member_run(result: MemberResult, prep: Prepared, device: torch.device, seconds: float | None = None,
               full: bool = True):
    """A trainwell Run for one member, with the metrics ``trainwell.fit`` would give it.

    ``full=False``: per split only the loss and the head's metric (accuracy or r2),
    computed in torch; the search fills in the full set for its best trial.
    """
    import pandas as pd

    from trainwell.api import split_metrics
    from trainwell.run import Run
    from trainwell.train.loop import Tensors
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    data = Tensors(*(as_t(a) for a in (prep.X_train, prep.y_train, prep.X_val, prep.y_val, prep.X_test, prep.y_test)))
    run = Run(result.model, result.arch, prep.pre, result.spec, pd.DataFrame(result.history), directory=None)
    run.metrics = {"task": prep.pre.task, "best_epoch": result.stopper.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_because": result.stopped_because,
                   "seconds": result.seconds if seconds is None else seconds,
                   **(split_metrics(run, prep, _scored(data, run.spec)) if full else _quick_metrics(run, data))}
    return run


def _scored(data: Any, spec: Spec) -> SimpleNamespace:
    """What ``api.split_metrics`` reads of a training state: the data, and the batch size that sizes its threads."""
    n = int(data.X_train.shape[0])
    return SimpleNamespace(data=data, batch_size=_batch_size(resolve_batch(spec, n)[0], n))


@torch.no_grad()
def _quick_metrics(run, data) -> dict:
    out = {}
    run.model.eval()
    for split, (X, y) in {"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val),
                          "test": (data.X_test, data.y_test)}.items():
        if X.shape[0] == 0:
            out[split] = {}
            continue
        logits = torch.cat([run.model(X[i:i + EVAL_CHUNK]).float() for i in range(0, X.shape[0], EVAL_CHUNK)])
        terms = run.head.metric_terms(logits, y).cpu().numpy()
        out[split] = {run.head.metric: run.head.metric_value(terms), "loss": float(run.head.loss_fn(logits, y))}
    return out


def run_population_trials(cfg, space, study, budget: int, X=None, y=None, say=print) -> int:
    """``tune --population P``: ask P trials, train them as populations, tell the results; repeat.

    Members are grouped by prepared data (data section, seed) and by architecture
    (:func:`structure_key`); a member that cannot join a population (see
    :func:`unsupported`) is trained alone by ``trainwell.fit``, as without
    ``--population``. Per-epoch validation scores go to the pruner; a pruned member
    leaves its population at once.
    """
    import json
    from pathlib import Path

    import optuna
    from optuna.trial import TrialState

    from trainwell.api import resolve_architecture, resolve_device
    from trainwell.tune.bulk import add_trials
    from trainwell.tune.search import _consumed, _Report, _short
    from trainwell.tune.space import apply_values
    P = int(cfg.population)
    splitting = [p.path for p in space if p.path in STRUCTURE_PATHS]
    if splitting:
        say(f"note: {', '.join(splitting)} change(s) the network's structure or batches, so members train in "
            f"one population per distinct value; keep them fixed (outside the space) for one population of {P}")
    cache: dict = {}
    ran = 0
    prune = cfg.pruner != "none"
    # The trials run in an in-memory copy of the study and are written to the shared storage
    # once per round, in one transaction (tune/bulk.py), instead of one commit per reported
    # epoch and attribute (SQLite commits cost ~20 ms each on a busy disk).
    shared = study
    study = optuna.create_study(study_name=shared.study_name, direction=shared.direction, sampler=shared.sampler,
                                pruner=shared.pruner)   # the same name: Hyperband hashes it to pick brackets
    study.add_trials(shared.get_trials(deepcopy=True))
    left = budget - len(_consumed(shared.get_trials(deepcopy=False)))
    best = None
    while True:
        n_before = len(study.get_trials(deepcopy=False))
        k = min(P, left)
        if k <= 0:
            break
        left -= k
        trials, members = [], []
        for _ in range(k):
            trial = study.ask()
            values = space.suggest(trial)
            tree = apply_values(json.loads(json.dumps(cfg.base)), values)
            tree.setdefault("train", {})["progress"] = False
            spec = Spec.from_dict(tree)
            trial.set_user_attr("run_dir", f"trial-{trial.number:04d}")
            trial.set_user_attr("values", json.loads(json.dumps(values)))
            trial.set_user_attr("worker", 0)
            trials.append(trial)
            members.append((trial, values, spec))
        groups: dict[tuple, list] = {}
        alone = []
        for trial, values, spec in members:
            pkey, prep = _prepare_cached(spec, X, y, cache)
            arch = one_network(spec, resolve_architecture(spec, prep)[0])
            why = unsupported(spec, arch)
            if why:
                alone.append((trial, values, spec, why))
            else:
                groups.setdefault((pkey, structure_key(spec, arch)), []).append((trial, values, spec, arch, prep))
        for (pkey, _), group in groups.items():
            prep = group[0][4]
            head = make_head(prep.pre.task, group[0][3]["loss"], group[0][3]["output_activation"])
            key = f"val_{head.metric}" if cfg.objective == "auto" else cfg.objective
            pruned: set[int] = set()

            def on_epoch(i: int, row: dict, group=group, key=key, pruned=pruned) -> bool:
                value = row.get(key)
                if value is None or not math.isfinite(value):
                    return False
                t = group[i][0]
                t.report(float(value), row["epoch"])
                if prune and t.should_prune():
                    pruned.add(i)
                    return True
                return False

            device = resolve_device(group[0][2].train.device)
            t0 = time.perf_counter()
            results = train_population([g[2] for g in group], prep, [g[3] for g in group], device, on_epoch)
            wall = time.perf_counter() - t0
            for i, ((trial, values, spec, arch, _), r) in enumerate(zip(group, results)):
                shown = ", ".join(f"{kk}={_short(v)}" for kk, v in values.items())
                if i in pruned:
                    r.stopped_because = f"pruned by the {cfg.pruner} pruner at epoch {r.epochs_run}"
                run = member_run(r, prep, device, seconds=wall / len(group), full=False)
                run.save(Path(cfg.directory) / f"trial-{trial.number:04d}")
                for kk in ("epochs_run", "best_epoch", "stopped_because", "seconds"):
                    trial.set_user_attr(kk, run.metrics.get(kk))
                trial.set_user_attr("objective", key)
                trial.set_user_attr("population", len(group))
                name = "loss" if key == "val_loss" else key[4:]
                value = float(run.metrics["val"].get(name, math.nan))
                if i in pruned or r.stopped_because == "nan" or not math.isfinite(value):
                    if r.stopped_because == "nan":
                        trial.set_user_attr("stopped_because", "diverged (loss NaN/inf)")
                    _tell(study, trial, state=TrialState.PRUNED)
                    say(f"trial {trial.number:>4}: {shown} -> pruned/diverged at epoch {r.epochs_run}")
                else:
                    _tell(study, trial, value)
                    sign = 1.0 if study.direction.name == "MINIMIZE" else -1.0
                    if best is None or sign * value < sign * best[0]:
                        best = (value, run, prep, trial.number)
                    say(f"trial {trial.number:>4}: {shown} -> {key} {value:.4f} "
                        f"(epoch {r.stopper.best_epoch}/{r.epochs_run}; population of {len(group)})")
                ran += 1
        for trial, values, spec, why in alone:
            from trainwell.api import fit
            say(f"trial {trial.number:>4}: trained alone ({why})")
            report = _Report(trial, cfg.objective, prune, cfg.pruner)
            try:
                run = fit(spec=spec, X=X, y=y, save=False, verbose=False, callbacks=[report])
            except Exception as exc:   # noqa: BLE001 - a failed trial must not end the study
                trial.set_user_attr("error", str(exc))
                _tell(study, trial, state=TrialState.FAIL)
                continue
            run.save(Path(cfg.directory) / f"trial-{trial.number:04d}")
            for kk in ("epochs_run", "best_epoch", "stopped_because", "seconds"):
                trial.set_user_attr(kk, run.metrics.get(kk))
            trial.set_user_attr("objective", report.key)
            name = "loss" if report.key == "val_loss" else report.key[4:]
            value = float(run.metrics["val"].get(name, math.nan))
            if report.pruned or not math.isfinite(value):
                _tell(study, trial, state=TrialState.PRUNED)
            else:
                _tell(study, trial, value)
            ran += 1
        add_trials(shared, study.get_trials(deepcopy=True)[n_before:])   # this round, to the shared study
    if best is not None:   # the best population trial gets the full metrics a lone run writes
        from trainwell.api import split_metrics
        from trainwell.train.loop import Tensors
        _, run, prep, number = best
        dev = next(run.model.parameters()).device
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
        data = Tensors(*(as_t(a) for a in (prep.X_train, prep.y_train, prep.X_val, prep.y_val, prep.X_test,
                                           prep.y_test)))
        run.metrics.update(split_metrics(run, prep, _scored(data, run.spec)))
        run.save(Path(cfg.directory) / f"trial-{number:04d}")
    del optuna
    return ran


def _tell(study, trial, value=None, state=None) -> None:
    """study.tell; optuna's GridSampler calls study.stop() once the grid is used up, which
    raises outside study.optimize after the trial has been recorded: that is the end, not an error."""
    try:
        if state is None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def fit_ensemble(spec: Spec, members: int, X=None, y=None, device: str | None = None,
                 checkpoints: PopulationCheckpoints | None = None):
    """A deep ensemble of ``members`` networks (seeds seed, seed+1, ...) trained as one population.

    All members share the data split of ``spec.train.seed``; member i's
    initialization, batch order and dropout masks come from seed + i. Returns
    ``(run, member_runs)``: ``run.model`` is an :class:`Ensemble` whose output,
    after the head's softmax / sigmoid, is the mean of the members' probabilities.
    """
    import pandas as pd

    from trainwell.api import resolve_architecture, resolve_device, split_metrics
    from trainwell.errors import UserError
    from trainwell.run import Run
    from trainwell.train.loop import Tensors
    _, prep = _prepare_cached(spec, X, y, {})
    if X is not None:
        spec = Spec.build(spec, sets=["data.source=arrays"])
    arch = one_network(spec, resolve_architecture(spec, prep)[0])
    why = unsupported(spec, arch)
    if why:
        raise UserError(f"fit(ensemble={members}) trains the members as one population, which does not "
                        f"support {why} yet. Remove it, or train the members one by one.")
    seed = spec.train.seed
    specs = []
    for i in range(members):
        tree = spec.to_dict()
        tree["train"]["seed"] = seed + i
        specs.append(Spec.from_dict(tree))
    dev = resolve_device(device or spec.train.device)
    t0 = time.perf_counter()
    results = train_population(specs, prep, [arch] * members, dev, checkpoints=checkpoints)
    seconds = time.perf_counter() - t0
    member_runs = [member_run(r, prep, dev, seconds) for r in results]
    ensemble = Ensemble([r.model for r in results], prep.pre.task).to(dev)
    frames = pd.concat([pd.DataFrame(r.history) for r in results])
    history = frames.groupby("epoch", as_index=False).mean(numeric_only=True)
    run = Run(ensemble, {**arch, "ensemble": members}, prep.pre, spec, history, directory=None)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
    data = Tensors(*(as_t(a) for a in (prep.X_train, prep.y_train, prep.X_val, prep.y_val, prep.X_test, prep.y_test)))
    run.metrics = {"task": prep.pre.task, "ensemble": members,
                   "best_epoch": max(r.stopper.best_epoch for r in results),
                   "epochs_run": max(r.epochs_run for r in results),
                   "stopped_because": "; ".join(sorted({r.stopped_because for r in results})),
                   "seconds": seconds, **split_metrics(run, prep, _scored(data, run.spec)),
                   "members": [{"seed": s.train.seed, "epochs_run": r.epochs_run,
                                "best_epoch": r.stopper.best_epoch,
                                "test": m.metrics.get("test", {})} for s, r, m in zip(specs, results, member_runs)]}
    return run, member_runs


def fit_ensemble_run(spec: Spec, members: int, X=None, y=None, *, out=None, save: bool = True,
                     verbose: bool = True, resume: bool = False):
    """``trainwell.fit(..., ensemble=P)``: train, report, and write the run directory.

    The directory holds ``spec.yaml``, ``history.csv`` (members' mean per epoch),
    ``metrics.json`` (the ensemble's scores, and each member's) and one ordinary,
    loadable run directory per member under ``members/NN/``; while training, ``checkpoints/`` holds the
    population's state at each epoch's end, from which ``fit(resume=DIR)`` continues exactly.
    """
    import json
    from pathlib import Path

    from rich.console import Console

    from trainwell.api import new_run_dir, summary_table
    from trainwell.core.io import atomic_write
    from trainwell.run import _json_safe
    from trainwell.train.checkpoint import write_spec_atomically
    console = Console(quiet=not verbose, highlight=False)
    d = (Path(out) if out is not None else new_run_dir("ensemble")) if save else None
    checkpoints = None
    if d is not None:                   # spec.yaml and the member count first: a killed run can be resumed
        mark(d, members)
        write_spec_atomically(spec, d / "spec.yaml")
        checkpoints = PopulationCheckpoints(d, spec, resume=resume)
    run, member_runs = fit_ensemble(spec, members, X, y, checkpoints=checkpoints)
    console.print(f"[dim]·[/dim] deep ensemble: {members} members (seeds {spec.train.seed}..{spec.train.seed + members - 1})"
                  f" trained as one population in {run.metrics['seconds']:.1f} s; predictions average their "
                  f"probabilities")
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        run.spec.to_yaml(d / "spec.yaml")
        atomic_write(d / "history.csv", run.history.to_csv(index=False))
        atomic_write(d / "metrics.json", json.dumps(_json_safe(run.metrics), indent=2))
        for i, m in enumerate(member_runs):
            m.save(d / "members" / f"{i:02d}")
        run.directory = d
        console.print(f"[dim]·[/dim] run directory: {d} (members in {d / 'members'})")
    if verbose:
        console.print(summary_table({k: v for k, v in run.metrics.items() if k != "members"}))
    return run

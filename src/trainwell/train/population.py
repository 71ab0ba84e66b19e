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
(optim/optimizers.py; the same formulas as torch's fused CPU kernels; the stacked network and
optimizer are train/stacked.py), so a member ends with the
same weights as the same configuration trained alone by ``trainwell.fit`` to
float tolerance (tests/test_population.py checks 1e-5). Dropout masks are drawn
per member from the member's seed but not from the same stream as a lone run,
so members with dropout match lone runs in distribution, not bit for bit.

Everything that needs a per-member code path is refused with a reason by
:func:`unsupported` (batch norm, schedules other than ``none``, the
``regularize`` section, optimizers without a stacked update); callers train those members alone.

Each epoch's history row, the NaN check, the early-stopping rule and restore-best are train/loop.py's
(``epoch_row``, ``judge_epoch``, ``restore_best``), so a member stops for the same reasons a lone run does.
Callers: ``fit(ensemble=P)`` (trainwell/ensemble.py) and ``tune --population`` (tune/population.py).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from trainwell.core.seeding import seed_everything
from trainwell.data.pipeline import Prepared
from trainwell.nn.heads import Head, make_head
from trainwell.nn.models import initialize
from trainwell.nn.topologies import build_model
from trainwell.optim.optimizers import OPTIMIZERS
from trainwell.core.spec import Spec
from trainwell.train.batch_size import resolve_batch
from trainwell.train.early_stopping import EarlyStopping, resolve_monitor, resolve_patience, stopper_for
from trainwell.train.epoch_budget import resolve_epochs
from trainwell.data.batches import EVAL_CHUNK
from trainwell.train.loop import epoch_row, judge_epoch, restore_best
from trainwell.train.memory import check_memory
from trainwell.train.population_resume import PopulationCheckpoints
from trainwell.train.stacked import StackedMLP, StackedOptimizer, member_losses, member_terms

POPULATION_OPTIMIZERS = tuple(name for name, o in OPTIMIZERS.items() if o.stacked)   # with a stacked update
STRUCTURE_PATHS = ("model.hidden", "model.units", "model.layers", "model.activation", "model.type",
                   "train.batch_size", "optim.name", "model.batchnorm", "model.residual")   # see structure_key


def one_network(spec: Spec, arch: dict) -> dict:
    """``arch`` as one network: a population is itself many networks, so ``model.ensemble: auto`` (which
    would pack several into each member, nn/ensemble.py) means one here; an explicit size is refused by
    ``unsupported``."""
    if spec.model.ensemble != "auto":
        return arch
    one = {**arch, "members": 1, "crossfit": False}
    if one.pop("member_widths", None):                   # members of two widths (nn/member_widths.py)
        one.pop("summary", None)
    return one


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


def batch_size(spec: Spec, n: int) -> int:
    """The batch size of ``spec`` on ``n`` training rows (``auto`` is resolved before: train/batch_size.py)."""
    b = spec.train.batch_size
    return n if b == "full" else min(int(b), n)


@dataclass
class Population:
    """The loop's state between epochs: what train/population_resume.py saves and puts back."""

    net: StackedMLP
    opt: StackedOptimizer
    perm_gens: list[torch.Generator]       # each member's batch order, seeded as a lone run's
    drop_gens: list[torch.Generator]       # each member's dropout masks
    results: list[MemberResult]
    active: list[int]                      # member index of each population slot
    best: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    epoch: int = 0
    started: float = field(default_factory=time.perf_counter)


def _members(specs: list[Spec], archs: list[dict], task: str, metric: str, steps: int,
             val_rows: int) -> list[MemberResult]:
    """Each member's network, initialised and early-stopped as ``build_state`` does for a lone run."""
    results = []
    for spec, arch in zip(specs, archs):
        seed_everything(spec.train.seed)                 # as build_state does for a lone run
        model = build_model(arch)
        initialize(model, arch, spec.train.seed)
        monitor = resolve_monitor(spec.stop.monitor, task, metric, val_rows, spec.stop.target)
        monitor = monitor if monitor in ("val_loss", "train_loss", f"val_{metric}", f"train_{metric}") else "val_loss"
        stopper = stopper_for(spec.stop, monitor, resolve_patience(spec.stop.patience, steps, task))
        if spec.train.epochs == "auto":                  # as build_state resolves it (train/epoch_budget.py)
            spec = Spec.build(spec, sets=[f"train.epochs={resolve_epochs('auto', steps)}"])
        results.append(MemberResult(spec=spec, arch=arch, model=model, stopper=stopper))
    return results


def _generators(specs: list[Spec], device: torch.device, offset: int) -> list[torch.Generator]:
    gens = []
    for spec in specs:
        g = torch.Generator(device=device)
        g.manual_seed(spec.train.seed + offset)
        gens.append(g)
    return gens


def _start(specs: list[Spec], archs: list[dict], head: Head, n: int, b: int, device: torch.device,
           val_rows: int) -> Population:
    """The population at its first epoch: members stacked, generators seeded, optimizer state empty."""
    results = _members(specs, archs, head.task, head.metric, math.ceil(n / b), val_rows)
    net = StackedMLP([r.model for r in results], archs[0],
                     torch.tensor([float(a.get("dropout", 0.0)) for a in archs])).to(device)
    perm_gens, drop_gens = _generators(specs, device, 0), _generators(specs, device, 1_000_003)
    net.generators = drop_gens
    opt = StackedOptimizer(specs[0].optim.name, _hyper(specs), device)
    return Population(net=net, opt=opt, perm_gens=perm_gens, drop_gens=drop_gens, results=results,
                      active=list(range(len(specs))))


def _device_tensors(prep: Prepared, device: torch.device) -> tuple[torch.Tensor, ...]:
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    X, y, Xv, yv = as_t(prep.X_train), as_t(prep.y_train), as_t(prep.X_val), as_t(prep.y_val)
    if X.dim() > 2:
        X, Xv = X.flatten(1), Xv.flatten(1)
    return X, y, Xv, yv


def train_population(specs: list[Spec], prep: Prepared, archs: list[dict], device: torch.device | str = "cpu",
                     on_epoch: Callable[[int, dict], bool] | None = None,
                     checkpoints: PopulationCheckpoints | None = None) -> list[MemberResult]:
    """Train ``specs`` (one architecture, see :func:`structure_key`) as one population.

    ``archs[i]`` is member i's resolved architecture dict (as ``resolve_architecture``
    gives). ``on_epoch(i, row)`` is called after each of member i's epochs with its
    history row; returning True stops that member (a pruner). Returns one
    :class:`MemberResult` per member, in order, with the member's best weights
    restored when its ``stop.restore_best`` is on. ``checkpoints``: the loop's state saved at every
    epoch's end, and resumed from when one is there (train/population_resume.py).
    """
    device = torch.device(device)
    archs = [one_network(s, a) for s, a in zip(specs, archs)]
    head = make_head(prep.pre.task, archs[0]["loss"], archs[0]["output_activation"])
    X, y, Xv, yv = _device_tensors(prep, device)
    n = X.shape[0]
    specs = [resolve_batch(s, n)[0] for s in specs]      # batch_size auto (and its lr), as build_state does
    b = batch_size(specs[0], n)
    check_memory({**archs[0], "members": len(specs)}, b, device)   # P networks side by side: refused before allocating
    pop = _start(specs, archs, head, n, b, device, Xv.shape[0])
    if checkpoints is not None and checkpoints.resume:
        checkpoints.restore(pop)
    while pop.active:
        t0 = time.perf_counter()
        loss_sum, terms = _train_epoch(pop, head, X, y, b, checkpoints)
        pop.epoch += 1
        val_loss, val_terms = _evaluate(pop.net, head, Xv, yv, len(pop.active))
        stats = torch.cat([loss_sum[:, None], terms, val_loss[:, None], val_terms], 1).cpu().numpy()
        rows = _rows(pop, head, stats, terms.shape[1], n, Xv.shape[0] > 0, time.perf_counter() - t0)
        keep = [slot for slot, (m, row) in enumerate(zip(pop.active, rows)) if not _judge(pop, slot, m, row, on_epoch)]
        if len(keep) < len(pop.active):
            _shrink(pop, keep, device)
        if checkpoints is not None:
            checkpoints.save(pop)
    for m, r in enumerate(pop.results):
        restore_best(r.model, pop.best.get(m), r.spec.stop.restore_best, r.stopped_because, keep_final=("nan",))
        r.model.to(device)
    return pop.results


def _train_epoch(pop: Population, head: Head, X: torch.Tensor, y: torch.Tensor, b: int,
                 checkpoints: PopulationCheckpoints | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of every active member over its own permutation: (loss sums [A], metric terms [A, k])."""
    net, opt, n, device = pop.net, pop.opt, X.shape[0], X.device
    A = len(pop.active)
    manual = net.manual(head)          # backward written out (train/stacked.py), else autograd on the flat tensor
    grad = torch.empty_like(net.flat)
    perms = torch.stack([torch.randperm(n, generator=pop.perm_gens[m], device=device) for m in pop.active])
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
    return loss_sum, terms


def _rows(pop: Population, head: Head, stats: np.ndarray, k: int, n: int, has_val: bool,
          seconds: float) -> list[dict]:
    """Each active member's history row for this epoch, from the one host copy of the epoch's sums."""
    lrs = pop.opt.hp["lr"].cpu().numpy()
    A = len(pop.active)
    return [epoch_row(pop.epoch, float(lrs[slot]), float(s[0] / n), float(s[1 + k]) if has_val else math.nan,
                      head.metric, head.metric_value(s[1:1 + k]),
                      head.metric_value(s[2 + k:]) if has_val else math.nan, seconds / A)
            for slot, s in enumerate(stats)]


def _judge(pop: Population, slot: int, m: int, row: dict, on_epoch: Callable[[int, dict], bool] | None) -> bool:
    """Record member ``m``'s row and decide, as the loop does, whether it stops; True when it does."""
    r = pop.results[m]
    r.history.append(row)
    r.epochs_run = pop.epoch
    reason = judge_epoch(r.stopper, row)
    if reason != "nan" and r.stopper.best_epoch == pop.epoch and r.spec.stop.restore_best:
        pop.best[m] = pop.net.member_state(slot, r.model)
    if not reason and on_epoch is not None and on_epoch(m, row):
        reason = r.stopped_because or "stopped by the caller"
    if not reason and pop.epoch >= r.spec.train.epochs:
        reason = f"reached the epoch budget ({r.spec.train.epochs})"
    if reason:
        r.stopped_because = reason
        r.model.load_state_dict(pop.net.member_state(slot, r.model))
        r.seconds = time.perf_counter() - pop.started
    return bool(reason)


def _shrink(pop: Population, keep: list[int], device: torch.device) -> None:
    """Drop the stopped members' slices: the rest of the population runs faster."""
    if keep:
        sel = torch.tensor(keep, device=device)
        pop.net.select(sel)
        pop.net.generators = [pop.drop_gens[pop.active[s]] for s in keep]
        pop.opt.select(sel)
    pop.active = [pop.active[s] for s in keep]


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

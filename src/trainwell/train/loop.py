"""The training loop: lean, on-device, with metrics read once per epoch.

Performance principles (docs/performance.md): the data already lives as tensors on the
training device; a batch is an index slice of a per-epoch permutation; loss and
metric terms accumulate on the device and are read once per epoch (no
``.item()`` inside the step). Everything else — early stopping, schedules,
checkpoints, monitors — runs between epochs through plain callbacks.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import torch
from torch import nn

from trainwell.data.batches import BatchSource, tensor_chunks
from trainwell.nn.heads import Head
from trainwell.optim.regularizers import activity_penalty, clip_gradients, weight_penalty
from trainwell.optim.schedules import LRSchedule
from trainwell.core.spec import Spec
from trainwell.train.early_stopping import EarlyStopping
from trainwell.train.fast import analytic_step
from trainwell.train.graphs import GraphedStep, graphable

_NO_TERMS = {"regression": torch.full((4,), math.nan), "multiclass": torch.full((2,), math.nan)}


@dataclass
class LoopContext:
    """What the loop and its helpers (checkpoints, data-parallel, graphs, NaN replay) share during a run.

    Each field has one writer: ``forward``, ``all_reduce`` and ``shard`` train/distributed.py;
    ``graph`` make_step; ``epoch_loss``/``epoch_terms`` the epoch (and a checkpoint restore);
    ``step_hooks`` fit_loop (swapped by the NaN replay); ``nan_*`` and ``keep_best`` train/checkpoint.py.
    """

    forward: nn.Module | None = None          # the DDP wrapper when data-parallel, else the model is called
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None   # sums over all ranks (data-parallel)
    shard: tuple[int, int] | None = None      # (rank, world): this rank's slice of each in-memory batch
    graph: str | None = None                  # why the step is not a CUDA graph, or that it was captured
    epoch_loss: torch.Tensor | None = None    # on-device sum of the epoch's batch losses so far
    epoch_terms: torch.Tensor | None = None   # on-device sums of the epoch metric's terms so far
    step_hooks: list[Callable] | None = None  # callbacks' on_step_end, run after every step
    nan_epoch: int | None = None              # the epoch whose loss became NaN / inf
    nan_rollbacks: int = 0                    # rollbacks to a checkpoint after a NaN (train/checkpoint.py)
    nan_diagnosis: str | None = None          # the replay's finding, raised by fit as a UserError
    keep_best: bool = False                   # keep the best weights in memory even without stop.restore_best


@dataclass
class TrainState:
    """Everything a callback may read or change between epochs."""

    spec: Spec
    model: nn.Module
    head: Head
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    data: BatchSource
    stopper: EarlyStopping
    generator: torch.Generator
    epoch: int = 0                 # epochs completed
    step: int = 0                  # optimizer steps taken
    batch_in_epoch: int = 0        # position inside the current epoch's permutation
    permutation: torch.Tensor | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    stop: bool = False
    stopped_because: str = ""
    ctx: LoopContext = field(default_factory=LoopContext)

    @property
    def batch_size(self) -> int:
        b = self.spec.train.batch_size
        n = self.data.X_train.shape[0]
        return n if b == "full" else min(int(b), n)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.data.X_train.shape[0] / self.batch_size)


class Callback(Protocol):
    """Any of these methods may be defined; all are optional."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


def _call(callbacks: list, hook: str, state: TrainState) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)


@torch.no_grad()
def evaluate_batches(model: nn.Module, head: Head, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     device: torch.device, wide: bool = False,
                     reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     n_outputs: int = 1) -> tuple[float, float]:
    """Mean loss and epoch metric over (X, y) batches, in evaluation mode.

    ``wide``: sums in float64 (rows streamed from disk: many of them); ``reduce``: the sums of all
    data-parallel ranks (each scored its shard), with ``n_outputs`` for a rank that has no rows.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64 if wide else torch.float32)
    terms, n = None, 0
    for xb, yb in batches:
        out = model(xb).float()
        loss, t = head.loss_fn(out, yb), head.metric_terms(out, yb)
        if wide:
            loss, t = loss.double(), t.double()
        loss_sum += loss * xb.shape[0]
        terms = t if terms is None else terms + t
        n += xb.shape[0]
    model.train(was_training)
    if reduce is None:
        if n == 0:
            return math.nan, math.nan
        values = torch.cat([loss_sum.reshape(1), terms]).cpu().numpy()
        return float(values[0] / n), head.metric_value(values[1:])
    if terms is None:
        terms = head.metric_terms(torch.zeros(0, n_outputs, device=device), torch.zeros(0, device=device))
        terms = terms.to(loss_sum.dtype)
    stats = reduce(torch.cat([loss_sum.reshape(1), terms, torch.tensor([float(n)], dtype=loss_sum.dtype, device=device)]))
    v = stats.cpu().numpy()
    if v[-1] == 0:
        return math.nan, math.nan
    return float(v[0] / v[-1]), head.metric_value(v[1:-1])


def evaluate_tensors(model: nn.Module, head: Head, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean loss and epoch metric over (X, y), in evaluation mode, chunked."""
    if X.shape[0] == 0:
        return math.nan, math.nan
    return evaluate_batches(model, head, tensor_chunks(X, y), X.device)


def evaluate(state: TrainState, split: str = "val") -> tuple[float, float]:
    """Mean loss and epoch metric of one split of ``state.data``, whichever source holds it."""
    data, streamed = state.data, state.data.streamed(split)
    reduce = state.ctx.all_reduce if streamed else None
    return evaluate_batches(state.model, state.head, data.eval_batches(split), data.X_train.device,
                            wide=streamed, reduce=reduce, n_outputs=getattr(data, "n_outputs", 1))


def make_step(state: TrainState) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The per-batch update, with only the practices that are switched on."""
    model, head, opt, reg = state.model, state.head, state.optimizer, state.spec.regularize
    has_weight_pen = any((reg.l1, reg.l2, reg.bias_l1, reg.bias_l2))
    has_activity = bool(reg.activity_l1 or reg.activity_l2)
    clipping = reg.clip_norm is not None or reg.clip_value is not None
    noise = reg.noise
    params = [p for p in model.parameters() if p.requires_grad]
    if has_activity:
        model.record_activity = True
    forward = state.ctx.forward or model    # the DDP wrapper when data-parallel
    fast = bool(getattr(state.spec.train, "fast", False))   # train.fast: docs/performance.md
    autocast = fast and next(model.parameters()).device.type == "cuda"

    def step(xb: torch.Tensor, yb: torch.Tensor, weight: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if noise > 0:
            xb = xb + noise * torch.randn_like(xb)
        if autocast:   # bf16 matmuls on the GPU; the loss in float32
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = forward(xb)
            out = out.float()
        else:
            out = forward(xb)
        loss = head.loss_fn(out, yb)
        total = loss
        if has_weight_pen:
            total = total + weight_penalty(model, reg)
        if has_activity and model.activity:
            total = total + activity_penalty(model.activity, reg)
        if weight is not None and weight != 1.0:   # data-parallel: local rows / (global rows / world)
            total = total * weight
        opt.zero_grad(set_to_none=True)
        total.backward()
        if clipping:
            clip_gradients(params, reg)
        opt.step()
        if fast:       # no per-step metric work: train_<metric> is left out of the history (NaN)
            return loss.detach(), _NO_TERMS.get(head.task, _NO_TERMS["multiclass"]).to(out.device)
        return loss.detach(), head.metric_terms(out.detach(), yb)

    if not autocast:   # CPU plain MLPs: the backward by hand (train/fast.py, train.backward=auto), else autograd
        return analytic_step(state, step, with_metric=not fast) or step
    why = graphable(state)     # train.fast on CUDA: the step as a CUDA graph (train/graphs.py)
    state.ctx.graph = why or "captured after the first steps"
    return step if why else GraphedStep(state, step)


def run_epoch(state: TrainState, step_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the epoch's batches (from ``state.batch_in_epoch`` on when resuming mid-epoch);
    returns on-device (loss_sum, metric terms), both accumulated in place."""
    data, ctx = state.data, state.ctx
    if state.permutation is None or state.batch_in_epoch == 0:
        state.permutation = data.epoch_order(state.epoch, state.generator)
        ctx.epoch_loss = torch.zeros((), device=data.X_train.device)
        ctx.epoch_terms = None
    loss_sum, terms = ctx.epoch_loss.clone(), ctx.epoch_terms
    terms = None if terms is None else terms.clone()
    per_batch = state.schedule.per == "batch"
    step_hooks = ctx.step_hooks or []
    batches = data.epoch_batches(state.permutation, state.epoch, state.batch_size, state.batch_in_epoch, ctx.shard)
    try:
        for xb, yb, count, weight in batches:
            loss, t = step_fn(xb, yb) if weight is None else step_fn(xb, yb, weight)
            loss_sum.add_(loss, alpha=count)
            if count == 0:                  # a data-parallel rank without rows this step
                t = t * 0
            terms = t.clone() if terms is None else terms.add_(t)
            if after_step(state, loss_sum, terms, per_batch, step_hooks):
                break
    finally:
        batches.close()                     # a streamed epoch stops its reader thread
    ctx.epoch_loss, ctx.epoch_terms = loss_sum, terms
    return loss_sum, terms


def after_step(state: TrainState, loss_sum: torch.Tensor, terms: torch.Tensor, per_batch: bool,
               step_hooks: list) -> bool:
    """Bookkeeping after each optimizer step (counters, batch schedules, step hooks); True to stop."""
    state.step += 1
    state.batch_in_epoch += 1
    if per_batch:
        state.schedule.step_batch()
    if step_hooks:
        state.ctx.epoch_loss, state.ctx.epoch_terms = loss_sum, terms
        for hook in step_hooks:
            hook(state)
    return state.stop


def fit_loop(state: TrainState, callbacks: list | None = None,
             on_epoch: Callable[[TrainState, dict], None] | None = None) -> TrainState:
    """Train until the epoch budget or early stopping; restore the best weights."""
    callbacks = callbacks or []
    spec = state.spec
    state.stopper.enabled = spec.stop.enabled
    if state.ctx.step_hooks is None:
        state.ctx.step_hooks = [cb.on_step_end for cb in callbacks if hasattr(cb, "on_step_end")]
    step_fn = make_step(state)
    flush = bool(getattr(spec.train, "fast", False)) and state.data.X_train.device.type == "cpu"
    if flush:          # train.fast on CPU: denormals flushed to zero (Adam's tiny moments slow x86 FP)
        torch.set_flush_denormal(True)
    state.model.train()
    _call(callbacks, "on_train_begin", state)
    n = state.data.X_train.shape[0]
    while state.epoch < spec.train.epochs and not state.stop:
        t0 = time.perf_counter()
        loss_sum, terms = run_epoch(state, step_fn)
        if state.stop:                       # interrupted mid-epoch by a step hook
            break
        lr = state.optimizer.param_groups[0]["lr"]
        train_stats = torch.cat([loss_sum.reshape(1), terms])
        if state.ctx.all_reduce is not None:     # data-parallel: sums over all ranks
            train_stats = state.ctx.all_reduce(train_stats)
        train_stats = train_stats.cpu().numpy()   # the one sync per epoch
        train_loss = float(train_stats[0] / n)
        val_loss, val_metric = evaluate(state, "val")
        row = epoch_row(state.epoch + 1, lr, train_loss, val_loss, state.head.metric,
                        state.head.metric_value(train_stats[1:]), val_metric, time.perf_counter() - t0)
        state.history.append(row)
        state.epoch += 1
        state.batch_in_epoch = 0
        reason = judge_epoch(state.stopper, row)
        if reason:
            state.stop = True
            state.stopped_because = reason
        if reason == "nan":
            state.ctx.nan_epoch = state.epoch
        else:
            monitored = monitored_value(state.stopper, row)
            if state.stopper.best_epoch == state.epoch and (spec.stop.restore_best or state.ctx.keep_best):
                # the best weights are kept in memory (a copy, no disk write); the Checkpointer writes
                # them as checkpoints/best once, at the end, and stores them in every checkpoint
                state.best_state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
            if state.schedule.per == "epoch":   # plateau expects lower-is-better
                if state.stopper.tiebreak:      # progress as early stopping counts it (ties broken by the loss):
                    state.schedule.step_epoch(-float(state.stopper.best_epoch))   # falls at each improvement
                else:
                    state.schedule.step_epoch(monitored if state.stopper.mode == "min" else -monitored)
        if on_epoch is not None:
            on_epoch(state, row)
        _call(callbacks, "on_epoch_end", state)
    if not state.stopped_because:
        state.stopped_because = "interrupted" if state.stop else f"reached the epoch budget ({spec.train.epochs})"
    restore_best(state.model, state.best_state, spec.stop.restore_best, state.stopped_because)
    if flush:
        torch.set_flush_denormal(False)
    _call(callbacks, "on_train_end", state)
    return state


def epoch_row(epoch: int, lr: float, train_loss: float, val_loss: float, metric: str, train_metric: float,
              val_metric: float, seconds: float) -> dict[str, float]:
    """One epoch's history row, the columns of ``history.csv`` in their order (a lone run's and a
    population member's alike: train/population.py)."""
    return {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss,
            f"train_{metric}": train_metric, f"val_{metric}": val_metric, "seconds": seconds}


def monitored_value(stopper: EarlyStopping, row: dict[str, float]) -> float:
    """The row's value that early stopping watches (the validation loss when the row lacks it)."""
    return row.get(stopper.monitor, row["val_loss"])


def judge_epoch(stopper: EarlyStopping, row: dict[str, float]) -> str:
    """Why training stops after this epoch, or ``""`` to go on.

    ``"nan"`` when the training loss is not finite: the weights are lost and every later epoch would be
    too (docs/practices/early_stopping.md); otherwise the early-stopping rule on the monitored value
    (``stopper.update`` records the best epoch as it goes).
    """
    if not math.isfinite(row["train_loss"]):
        return "nan"
    if stopper.update(row["epoch"], monitored_value(stopper, row), row.get(stopper.tiebreak, math.nan)):
        return stopper.reason
    return ""


def restore_best(model: nn.Module, best_state: dict[str, torch.Tensor] | None, enabled: bool,
                 stopped_because: str, keep_final: tuple[str, ...] = ("interrupted",)) -> None:
    """Load the best epoch's weights into ``model`` (``stop.restore_best``), unless training ended for a
    reason in ``keep_final``: an interrupted run resumes from its final weights; a population keeps a
    diverged member's final weights (train/population.py)."""
    if enabled and best_state is not None and stopped_because not in keep_final:
        model.load_state_dict(best_state)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy({k: v.detach() for k, v in model.state_dict().items()})

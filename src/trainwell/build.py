"""The one assembly chain: spec -> table -> prepared data -> architecture -> training state.

``trainwell.fit``, the LR range test, the overfit check and population training all build what they train
here, so the same arguments give each of them the same rows, scaling, defaults and network
(docs/architecture.md). Each ``auto`` choice made on the way leaves a one-line note with its reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainwell.core.seeding import seed_everything
from trainwell.data.loading import load_table
from trainwell.data.batches import Tensors
from trainwell.data.pipeline import Prepared, prepare
from trainwell.data.streaming import prepare_streaming, wants_streaming
from trainwell.data.validation import mark_validation
from trainwell.data.weights import add_class_weight
from trainwell.core.errors import UserError
from trainwell.nn.heads import EPOCH_METRIC, make_head
from trainwell.nn.models import initialize
from trainwell.nn.topologies import build_model, resolve_architecture, topology, topology_defaults
from trainwell.core.unread import KeysRead, warn_unread_conditional
from trainwell.optim.optimizers import make_optimizer, warn_unread_optim
from trainwell.optim.schedules import make_schedule, warn_unread_schedule
from trainwell.core.spec import Spec
from trainwell.train.batch_size import first_batch, resolve_batch
from trainwell.nn.crossfit import crossfitted, pools_test_rows
from trainwell.train.crossfit import pooled
from trainwell.train.distributed import Distributed
from trainwell.train.epoch_budget import BUDGET_STEPS, EPOCHS, resolve_epochs
from trainwell.train.early_stopping import (ACCURACY_VAL_ROWS, PATIENCE_EPOCHS, PATIENCE_STEPS, REGRESSION_PATIENCE_EPOCHS,
                                             resolve_monitor, resolve_patience, stopper_for)
from trainwell.train.loop import TrainState
from trainwell.train.memory import check_memory


@dataclass
class Assembly:
    """What :func:`assemble` built: the resolved spec (what spec.yaml records), the prepared data, the
    architecture, the training state on its device, and the notes of the choices made, in order."""
    spec: Spec
    prep: Any                   # Prepared, or data/streaming/'s StreamPrepared
    arch: dict
    state: TrainState
    device: torch.device
    notes: list[str] = field(default_factory=list)


def assemble(spec: Spec, X: Any = None, y: Any = None, *, val_rows: Any = None, module: Any = None,
             dist: Distributed | None = None, streaming: bool = True, notes: list[str] | None = None) -> Assembly:
    """The whole chain for one network. ``module``: an ``nn.Module`` instance to train as it is (fit(module=));
    ``dist``: torchrun ranks (train/distributed.py; the model is wrapped for DDP); ``streaming=False`` keeps the
    data in memory whatever ``data.streaming`` says (the LR range test and the overfit check index X_train);
    ``notes``: decisions made before (the topology's defaults), listed after the data's."""
    dist = dist or Distributed()
    spec, prep, early = prepare_data(spec, X, y, val_rows=val_rows, rank=dist.rank, world=dist.world,
                                     streaming=streaming)
    warn_unread_conditional(spec, prep.pre.task)       # e.g. data.target_transform on a classifier
    arch, arch_notes = resolve_architecture(spec, prep)
    arch_notes += add_class_weight(arch, spec, prep)      # data.class_weight: a class-weighted loss
    if module is not None and not isinstance(module, (str, type)):
        arch["_instance"] = module                       # train the very object the user passed
    device = dist.device(resolve_device(spec.train.device))
    state = build_state(spec, prep, arch, device)
    dist.wrap(state)
    return Assembly(state.spec, prep, arch, state, device, [*early, *prep.notes, *(notes or []), *arch_notes])


def prepare_data(spec: Spec, X: Any = None, y: Any = None, *, val_rows: Any = None, rank: int = 0, world: int = 1,
                 streaming: bool = True) -> tuple[Spec, Any, list[str]]:
    """Spec -> table -> prepared data (split, scaling): in memory, or streamed from disk when the data is larger
    than memory (data/streaming/). Returns the spec (arrays mark the source as ``arrays``; a topology may fix what
    it cannot train without, e.g. the perceptron its loss and optimizer), the prepared data and the notes of these choices."""
    notes: list[str] = []
    stream, why = wants_streaming(spec) if streaming and X is None else (False, "")
    table = None if stream else load_table(spec, X, y)
    if val_rows is not None:
        mark_validation(table, val_rows)
    if X is not None:
        spec = Spec.build(spec, sets=["data.source=arrays"])
    changes, fixed = topology(spec.model.type).spec_changes(spec)   # e.g. the perceptron rule: plain SGD
    if changes:
        spec = Spec.build(spec, **changes)
    notes += fixed
    if stream:
        notes.append(why)
        return spec, prepare_streaming(spec, rank=rank, world=world), notes
    return spec, prepare(table, spec, topology(spec.model.type).inputs), notes


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda was requested but no CUDA GPU is available. Use train.device=auto or cpu.")
    return torch.device(name)


def spec_for(data: Any, spec: Any, sets: list[str] | None, overrides: dict, notes: list[str] | None = None) -> Spec:
    """The run's Spec: a base spec, then ``data`` (a name, a path, or the whole data section),
    keyword sections, then ``--set`` overrides, then the topology's defaults where the user set
    nothing (nn/topologies/; their explanations are appended to ``notes``). fit, tune, lr-find
    and the overfit check all start here, so a CNN gets the same defaults in each."""
    if isinstance(data, dict):
        overrides["data"] = data
    elif data is not None:
        section = overrides.get("data", {})
        overrides["data"] = {**(section if isinstance(section, dict) else {}), "source": str(data)}
    spec, topo_notes = topology_defaults(Spec.build(spec, sets=sets, **overrides))
    if notes is not None:
        notes.extend(topo_notes)
    return spec


def load_prepared(spec: Spec, X: Any = None, y: Any = None) -> tuple[Spec, Prepared]:
    """Load and prepare in-memory data (split, scaling); arrays mark the spec's source as ``arrays``."""
    table = load_table(spec, X, y)
    if X is not None:
        spec = Spec.build(spec, sets=["data.source=arrays"])
    return spec, prepare(table, spec, topology(spec.model.type).inputs)


def training_rows(prep: Prepared) -> int:
    """Rows in the training split (a streamed one counts them on disk)."""
    counts = getattr(prep, "counts", None)
    return int(counts[0]) if counts is not None else int(prep.X_train.shape[0])


def epoch_rows(prep: Prepared, crossfit: bool, with_test: bool = False) -> int:
    """Rows one epoch steps through: the training split, or with cross-fitted members the training and
    validation rows pooled (nn/crossfit.py), and the test rows when they join the folds
    (``model.crossfit_test``), so the batch and patience notes count the steps training takes."""
    pooled_test = int(prep.X_test.shape[0]) if crossfit and with_test else 0
    return training_rows(prep) + (validation_rows(prep) if crossfit else 0) + pooled_test


def resolve_training_defaults(spec: Spec, prep: Prepared, crossfit: bool = False, with_test: bool = False) -> Spec:
    """The spec with its data-dependent ``auto`` values made concrete: batch size (and the lr that goes with
    it), stop monitor and patience, the epoch budget. Notes for the choices made are appended to
    ``prep.notes``. ``crossfit``: the members are cross-fitted (a classifier's batch then starts at 128,
    train/batch_size.py); ``with_test``: the test rows are pooled too (train/crossfit.py)."""
    rows = epoch_rows(prep, crossfit, with_test)
    pooled_rows = ("training, validation and test" if with_test else "training and validation") if crossfit else ""
    spec, batch_note = resolve_batch(spec, rows, first_batch(prep.pre.task, crossfit), pooled=pooled_rows)
    if batch_note:
        prep.notes.append(batch_note)
    stop, sets = spec.stop, []
    if stop.monitor == "auto":
        metric = EPOCH_METRIC.get(prep.pre.task, "accuracy")
        val_rows = validation_rows(prep)
        monitor = resolve_monitor("auto", prep.pre.task, metric, val_rows, stop.target)
        sets.append(f"stop.monitor={monitor}")
        if monitor != resolve_monitor("auto", prep.pre.task, metric):
            prep.notes.append(f"stop on val_loss (stop.monitor=auto: {val_rows:,} validation rows, fewer "
                              f"than {ACCURACY_VAL_ROWS:,}: the log-loss is steadier than the accuracy there)")
    if stop.patience == "auto":
        b = spec.train.batch_size
        steps = math.ceil(rows / b) if isinstance(b, int) else 1
        patience = resolve_patience("auto", steps, prep.pre.task)
        sets.append(f"stop.patience={patience}")
        epochs = REGRESSION_PATIENCE_EPOCHS if prep.pre.task == "regression" else PATIENCE_EPOCHS
        if patience > PATIENCE_EPOCHS:
            which = " for a regression" if epochs != PATIENCE_EPOCHS else ""
            prep.notes.append(f"patience {patience} epochs (stop.patience=auto: {epochs} epochs{which}, or "
                              f"{PATIENCE_STEPS:,} steps when an epoch is only {steps} steps)")
    if spec.train.epochs == "auto":
        sets += auto_epochs(spec, rows, prep.notes)
    if spec.schedule.name == "auto":
        sets += auto_schedule(spec, prep, sets)
    return Spec.build(spec, sets=sets) if sets else spec


def auto_epochs(spec: Spec, rows: int, notes: list[str]) -> list[str]:
    """``train.epochs: auto``: 200, or as many as make 10,000 steps when an epoch is short
    (train/epoch_budget.py); a note says so when the table is small enough for that to count."""
    b = spec.train.batch_size
    steps = math.ceil(rows / b) if isinstance(b, int) else 1
    epochs = resolve_epochs("auto", steps)
    if epochs > EPOCHS:
        notes.append(f"epochs up to {epochs:,} (train.epochs=auto: {EPOCHS}, or {BUDGET_STEPS:,} steps when an epoch is "
                     f"only {steps} steps; early stopping ends it sooner)")
    return [f"train.epochs={epochs}"]


def validation_rows(prep: Prepared) -> int:
    """Rows in the validation split (a streamed one counts them on disk)."""
    counts = getattr(prep, "counts", None)
    return int(counts[1]) if counts is not None else int(prep.X_val.shape[0])


def auto_schedule(spec: Spec, prep: Prepared, sets: list[str]) -> list[str]:
    """``schedule.name: auto``: halve the lr when the monitored value has not improved for a third of the
    stop patience (Keras' ReduceLROnPlateau beside EarlyStopping), so training gets a few smaller steps
    before it stops; a constant lr leaves Adam's last epochs noisy (MNIST 784-256-128-10: 97.4 % test
    accuracy at a constant lr, 98.3 % with it). No validation rows: no schedule."""
    if validation_rows(prep) == 0:
        return ["schedule.name=none"]
    patience = next((int(x.split("=", 1)[1]) for x in sets if x.startswith("stop.patience=")), None)
    patience = patience if patience is not None else int(spec.stop.patience)
    prep.notes.append(f"schedule: plateau, lr x {spec.schedule.factor:g} after {max(1, patience // 3)} epochs without "
                      f"progress (schedule.name=auto: a third of the stop patience; none keeps the lr constant)")
    return ["schedule.name=plateau", f"schedule.patience={max(1, patience // 3)}"]


def _resolved_batch(spec: Spec, prep: Prepared, crossfit: bool, with_test: bool) -> int:
    """The batch size training will use (``full``: every row of an epoch)."""
    b, rows = spec.train.batch_size, epoch_rows(prep, crossfit, with_test)
    return rows if b == "full" else min(int(b), rows)


def build_state(spec: Spec, prep: Prepared, arch: dict, device: torch.device) -> TrainState:
    """Model, optimizer, schedule and early stopping, seeded, with data on the device.

    ``auto`` batch size (and the lr that goes with it) and stop monitor are resolved here, where the
    rows and the task are known; ``state.spec`` is the resolved spec (what spec.yaml records).
    """
    crossfit, with_test = crossfitted(arch), pools_test_rows(arch)
    spec = resolve_training_defaults(spec, prep, crossfit, with_test)
    seed_everything(spec.train.seed)
    check_memory(arch, _resolved_batch(spec, prep, crossfit, with_test), device)   # before allocating: a message, not an allocator's crash
    instance = arch.pop("_instance", None)               # fit(module=an nn.Module instance)
    model = instance if instance is not None else build_model(arch)
    if arch.get("init") != "keep":                       # "keep": a user module's own initialisation
        initialize(model, arch, spec.train.seed)
    model.to(device)
    head = make_head(prep.pre.task, arch["loss"], arch["output_activation"], arch.get("members", 1),
                     class_weight=arch.get("class_weight"))
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    data = prep.tensors(device) if hasattr(prep, "tensors") else Tensors(as_t(prep.X_train), as_t(prep.y_train), as_t(prep.X_val), as_t(prep.y_val),
                   as_t(prep.X_test), as_t(prep.y_test))
    if crossfit:                                         # members hold out a fold each (nn/crossfit.py)
        data = pooled(data, prep.pre.task in ("binary", "multiclass"), int(arch["members"]), spec.train.seed,
                      with_test)
    optim_keys = KeysRead(spec.optim)          # what the optimizer reads (a changed key it does not: a warning)
    optimizer = make_optimizer(model.parameters(), optim_keys, device_type=device.type)  # type: ignore[arg-type]
    gen = torch.Generator(device=device)
    gen.manual_seed(spec.train.seed)
    stop = spec.stop
    monitor = stop.monitor
    metric = head.metric
    if monitor not in ("val_loss", "train_loss", f"val_{metric}", f"train_{metric}"):
        raise UserError(
            f'stop.monitor="{monitor}" is not tracked for a {head.task} task. '
            f"Use one of: val_loss, train_loss, val_{metric}, train_{metric}."
        )
    stopper = stopper_for(stop, monitor, int(stop.patience))   # as a population member's (train/population.py)
    state = TrainState(spec=spec, model=model, head=head, optimizer=optimizer, schedule=None,  # type: ignore[arg-type]
                       data=data, stopper=stopper, generator=gen)
    schedule_keys = KeysRead(spec.schedule)
    state.schedule = make_schedule(optimizer, schedule_keys, epochs=spec.train.epochs,  # type: ignore[arg-type]
                                   steps_per_epoch=state.steps_per_epoch)
    warn_unread_optim(optim_keys)
    warn_unread_schedule(schedule_keys)
    return state

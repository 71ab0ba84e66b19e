"""``trainwell.fit``: data in, a well-trained model, its scores, curves and run directory out.

Reads top to bottom like the data path (README.md, Layout): source -> split -> scale ->
tensors on the device -> model -> loop -> history -> metrics -> run directory.
Each decision is printed in one line with its reason.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table as RichTable

from trainwell.core.io import json_safe
from trainwell.core.seeding import seed_everything
from trainwell.data.columns import refuse_beyond_float32
from trainwell.data.pipeline import Prepared, prepare
from trainwell.data.validation import join_validation, mark_validation
from trainwell.data.weights import add_class_weight, weighted_accuracy, with_weight_column
from trainwell.data.sources import Table, load_source
from trainwell.errors import UserError
from trainwell.nn.custom import copy_module
from trainwell.nn.heads import EPOCH_METRIC, make_head
from trainwell.nn.init import resolve_init
from trainwell.nn.models import auto_hidden, build_model, count_parameters, default_hidden, initialize
from trainwell.optim.optimizers import make_optimizer
from trainwell.optim.schedules import make_schedule
from trainwell.run import Run
from trainwell.run.rundir import claims_run_dir, next_run_dir
from trainwell.spec import Spec
from trainwell.train.batch_size import resolve_batch
from trainwell.train.memory import check_memory
from trainwell.train.early_stopping import (PATIENCE_EPOCHS, PATIENCE_STEPS, EarlyStopping, loss_tiebreak,
                                             resolve_mode, resolve_monitor, resolve_patience)
from trainwell.train.calibration import calibrate_run
from trainwell.track.mlflow import tracker_for
from trainwell.train.loop import Tensors, TrainState
from trainwell.train.progress import epoch_log, fit_console, note
from trainwell.train.threads import threads_for
from trainwell.train.metrics import classification_metrics, regression_metrics


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda was requested but no CUDA GPU is available. Use train.device=auto or cpu.")
    return torch.device(name)


def load_table(spec: Spec, X: Any = None, y: Any = None) -> Table:
    """The data as a Table: from arrays or a DataFrame when given, else from ``spec.data.source``.

    A DataFrame is typed column by column like a CSV file (data/columns.py: booleans, numbers written
    as text, dates, categories; identifiers dropped); rows whose target is missing are dropped
    (data.drop_missing_target) and NaN features pass through to ``data.impute`` unless it is ``none``.
    """
    d = spec.data
    reconstruct = spec.task == "reconstruction" or spec.model.type == "autoencoder"
    missing = d.impute != "none" and not reconstruct   # NaN allowed through: prepare fills it (data/impute.py)
    if X is None:
        return load_source(d.source, d.target, seed=spec.train.seed, allow_missing=missing, data=d)
    if y is None:
        raise UserError("fit(X=...) needs y as well: pass the targets as y=.")
    ya = np.asarray(y)
    if isinstance(X, pd.DataFrame):
        from trainwell.data.sources import _weights, refuse_duplicate_columns, table_from_frame
        frame = X.rename(columns=str).reset_index(drop=True)
        refuse_duplicate_columns(list(frame.columns), "the X DataFrame")
        if len(ya) != len(frame):
            raise UserError(f"X has {len(frame)} rows but y has {len(ya)}; they must match row for row.")
        where = "the X DataFrame"
        ya, keep, notes = _drop_missing_array(ya, d)
        if keep is not None:
            frame = frame.loc[keep].reset_index(drop=True)
        weights = _weights(frame, d.weight, where)
        features = [c for c in frame.columns if c != d.weight]
        return table_from_frame(frame, ya, "arrays", where, missing, d, features, notes, weights)
    Xa = np.asarray(X)
    if Xa.dtype == object or not (np.issubdtype(Xa.dtype, np.number) or Xa.dtype == bool):
        raise UserError("X must be numeric; encode or drop non-numeric columns before fitting "
                        "(or pass a pandas DataFrame: its text and date columns are encoded for you).")
    if Xa.ndim < 2 or Xa.shape[0] == 0:
        raise UserError(f"X must be a 2-D array with at least one row; got shape {list(Xa.shape)}.")
    if len(ya) != len(Xa):
        raise UserError(f"X has {len(Xa)} rows but y has {len(ya)}; they must match row for row.")
    ya, keep, notes = _drop_missing_array(ya, d)
    if keep is not None:
        Xa = Xa[keep]
    refuse_beyond_float32(Xa, [f"x{i}" for i in range(Xa.shape[1])], "X")
    Xa = Xa.astype(np.float32, copy=False)      # the caller's float32 array is not copied
    if (np.isinf(Xa) if missing else ~np.isfinite(Xa)).any():
        raise UserError("X contains NaN or inf values; drop or impute them before fitting"
                        + (" (inf cannot be imputed)." if missing else " (or pass data.impute='auto')."))
    names = [f"x{i}" for i in range(Xa.shape[1])] if Xa.ndim == 2 else []
    return Table(X=Xa, y=ya, feature_names=names, name="arrays", notes=notes)


def _drop_missing_array(ya: np.ndarray, d: Any) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Targets given as an array: rows without a value dropped (data.drop_missing_target), with a note."""
    if not d.drop_missing_target or ya.size == 0:
        return ya, None, []
    flat = ya.reshape(len(ya), -1)
    missing = pd.isna(pd.DataFrame(flat)).any(axis=1).to_numpy()
    if not missing.any() or missing.all():
        return ya, None, []
    keep = ~missing
    note = (f"target: {int(missing.sum())} of {len(ya)} row(s) without a target value dropped (data.drop_missing_target"
            f"=false refuses them instead)")
    return ya[keep], keep, [note]


def spec_for(data: Any, spec: Any, sets: list[str] | None, overrides: dict, notes: list[str] | None = None) -> Spec:
    """The run's Spec: a base spec, then ``data`` (a name, a path, or the whole data section),
    keyword sections, then ``--set`` overrides, then the topology's defaults where the user set
    nothing (nn/topology.py; their explanations are appended to ``notes``). fit, tune, lr-find
    and the overfit check all start here, so a CNN gets the same defaults in each."""
    from trainwell.nn.topology import topology_defaults
    if isinstance(data, dict):
        overrides["data"] = data
    elif data is not None:
        section = overrides.get("data", {})
        overrides["data"] = {**(section if isinstance(section, dict) else {}), "source": str(data)}
    spec, topo_notes = topology_defaults(Spec.build(spec, sets=sets, **overrides))
    if notes is not None:
        notes.extend(topo_notes)
    return spec


def given_rows(spec: Spec, X: Any, y: Any, class_weight: Any, sample_weight: Any, validation_data: Any,
               ensemble: int) -> tuple[Spec, Any, Any, Any]:
    """fit's class_weight, sample_weight and validation_data: into the spec (data.class_weight, data.weight)
    and the rows (validation rows appended and marked, data/validation.py; weights as a column)."""
    if ensemble > 1 and (class_weight is not None or validation_data is not None):
        raise UserError("fit(ensemble=P) takes neither class_weight nor validation_data yet. Train one network "
                        "(ensemble=1), or use model.ensemble (packed members) with them.")
    if class_weight is not None:
        given = class_weight if isinstance(class_weight, str) else {str(k): v for k, v in dict(class_weight).items()}
        spec = Spec.build(spec, data={"class_weight": given})
    val_rows = None
    if validation_data is not None:
        X, y, val_rows = join_validation(X, y, validation_data, spec.data.target)
    if sample_weight is not None:
        if X is None:
            raise UserError("sample_weight= goes with X and y; for a file, name its weight column with data.weight.")
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if val_rows is not None and len(w) == len(X) - len(val_rows):
            w = np.concatenate([w, np.ones(len(val_rows))])          # validation rows weigh 1
        X, column = with_weight_column(X, w)
        spec = Spec.build(spec, data={"weight": column})
    return spec, X, y, val_rows


def load_prepared(spec: Spec, X: Any = None, y: Any = None) -> tuple[Spec, Prepared]:
    """Load and prepare in-memory data (split, scaling); arrays mark the spec's source as ``arrays``."""
    table = load_table(spec, X, y)
    if X is not None:
        spec = Spec.build(spec, sets=["data.source=arrays"])
    return spec, prepare(table, spec)


def resolve_architecture(spec: Spec, prep: Prepared) -> tuple[dict, list[str]]:
    """Fill in ``auto`` choices (width, init) and say why."""
    m = spec.model
    if m.type in ("cnn", "rnn", "autoencoder"):          # nn/topology.py: conv, recurrent, autoencoder
        from trainwell.nn.topology import resolve_topology
        return resolve_topology(spec, prep)
    if m.type == "custom":                                # the user's own nn.Module (nn/custom.py)
        from trainwell.nn.custom import custom_arch
        return custom_arch(spec, prep)
    n_inputs = int(np.prod(prep.X_train.shape[1:]))
    n_outputs = prep.pre.coder.n_outputs
    notes = []
    if m.hidden in ("auto", "heuristic"):
        hidden, why = (auto_hidden if m.hidden == "heuristic" else default_hidden)(prep.X_train.shape[0], n_inputs,
                                                                                   n_outputs)
        notes.append(why)
    else:
        hidden = list(m.hidden)
    init, why_init = resolve_init(m.init, m.activation)
    notes.append(f"init: {why_init}")
    members, why_members = packed_members(spec, prep, n_inputs, hidden, n_outputs)
    if why_members:
        notes.append(why_members)
    arch = {"members": members, "type": m.type, "n_inputs": n_inputs, "input_shape": list(prep.X_train.shape[1:]),
            "hidden": hidden, "n_outputs": n_outputs, "activation": m.activation, "init": init,
            "init_std": m.init_std, "init_limit": m.init_limit, "init_value": m.init_value,
            "bias_init": m.bias_init, "dropout": m.dropout, "batchnorm": m.batchnorm,
            "residual": m.residual, "loss": m.loss, "output_activation": m.output_activation,
            "task": prep.pre.task}
    from trainwell.nn.presets import finish_architecture   # perceptron, self_normalizing, residual notes
    return finish_architecture(spec, arch, notes), notes


def packed_members(spec: Spec, prep: Prepared, n_inputs: int, hidden: list[int], n_outputs: int) -> tuple[int, str]:
    """``model.ensemble`` for a plain MLP: how many members train at once (nn/ensemble.py), and why."""
    from trainwell.nn.ensemble import ensemble_size
    m = spec.model
    packable = (m.type == "mlp" and not m.batchnorm and not m.residual and m.preset == "none"
                and not getattr(prep, "streaming", False))
    if not packable:
        if isinstance(m.ensemble, int) and m.ensemble > 1:
            raise UserError(f"model.ensemble={m.ensemble} packs plain MLPs (no batch norm, residual blocks, presets "
                            "or streaming); this spec has one of those. Set model.ensemble=1, or use "
                            "fit(ensemble=P) / tune --population for other models.")
        return 1, ""
    widths = [n_inputs, *hidden, n_outputs]
    params = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    return ensemble_size(m.ensemble, int(prep.X_train.shape[0]), params)


def training_rows(prep: Prepared) -> int:
    """Rows in the training split (a streamed one counts them on disk)."""
    counts = getattr(prep, "counts", None)
    return int(counts[0]) if counts is not None else int(prep.X_train.shape[0])


def new_run_dir(name: str, root: str | Path = "runs", create: bool = True) -> Path:
    """``runs/NAME``, then ``runs/NAME-2``, ... (run/rundir.py), created empty; ``create=False``: only the name."""
    return next_run_dir(name, root) if create else Path(root) / name


def step_note(state: TrainState) -> str:
    """One line saying how each training step runs (docs/performance.md)."""
    from trainwell.train.fast import eligible
    fast = state.spec.train.fast
    device = next(state.model.parameters()).device.type
    if device == "cuda" and fast:
        from trainwell.train.graphs import graphable
        why = graphable(state)
        return ("step: bf16 autocast, the whole step as a CUDA graph (train.fast)" if why is None
                else f"step: bf16 autocast (train.fast); no CUDA graph because of {why}")
    if eligible(state):
        return ("step: MLP backward written out, no autograd graph (train.backward=auto; "
                "weights equal autograd's to float tolerance)" + ("; train.fast: no per-step train metric, "
                                                                  "denormals flushed" if fast else ""))
    return "step: autograd" + (" (train.fast: no per-step train metric, denormals flushed)" if fast else "")


def resolve_training_defaults(spec: Spec, prep: Prepared) -> Spec:
    """The spec with its data-dependent ``auto`` values made concrete: batch size (and the lr that goes with
    it), stop monitor and patience. Notes for the choices made are appended to ``prep.notes``."""
    rows = training_rows(prep)
    spec, batch_note = resolve_batch(spec, rows)
    if batch_note:
        prep.notes.append(batch_note)
    stop, sets = spec.stop, []
    if stop.monitor == "auto":
        sets.append(f"stop.monitor={resolve_monitor('auto', prep.pre.task, EPOCH_METRIC.get(prep.pre.task, 'accuracy'))}")
    if stop.patience == "auto":
        b = spec.train.batch_size
        steps = math.ceil(rows / b) if isinstance(b, int) else 1
        patience = resolve_patience("auto", steps)
        sets.append(f"stop.patience={patience}")
        if patience > PATIENCE_EPOCHS:
            prep.notes.append(f"patience {patience} epochs (stop.patience=auto: 10 epochs, or {PATIENCE_STEPS:,} steps "
                              f"when an epoch is only {steps} steps)")
    if spec.schedule.name == "auto":
        sets += auto_schedule(spec, prep, sets)
    return Spec.build(spec, sets=sets) if sets else spec


def auto_schedule(spec: Spec, prep: Prepared, sets: list[str]) -> list[str]:
    """``schedule.name: auto``: halve the lr when the monitored value has not improved for a third of the
    stop patience (Keras' ReduceLROnPlateau beside EarlyStopping), so training gets a few smaller steps
    before it stops; a constant lr leaves Adam's last epochs noisy (MNIST 784-256-128-10: 97.4 % test
    accuracy at a constant lr, 98.3 % with it). No validation rows: no schedule."""
    counts = getattr(prep, "counts", None)
    val_rows = int(counts[1]) if counts is not None else int(prep.X_val.shape[0])
    if val_rows == 0:
        return ["schedule.name=none"]
    patience = next((int(x.split("=", 1)[1]) for x in sets if x.startswith("stop.patience=")), None)
    patience = patience if patience is not None else int(spec.stop.patience)
    prep.notes.append(f"schedule: plateau, lr x {spec.schedule.factor:g} after {max(1, patience // 3)} epochs without "
                      f"progress (schedule.name=auto: a third of the stop patience; none keeps the lr constant)")
    return ["schedule.name=plateau", f"schedule.patience={max(1, patience // 3)}"]


def _resolved_batch(spec: Spec, prep: Prepared) -> int:
    """The batch size training will use (``full``: every training row)."""
    b, rows = spec.train.batch_size, training_rows(prep)
    return rows if b == "full" else min(int(b), rows)


def build_state(spec: Spec, prep: Prepared, arch: dict, device: torch.device) -> TrainState:
    """Model, optimizer, schedule and early stopping, seeded, with data on the device.

    ``auto`` batch size (and the lr that goes with it) and stop monitor are resolved here, where the
    rows and the task are known; ``state.spec`` is the resolved spec (what spec.yaml records).
    """
    spec = resolve_training_defaults(spec, prep)
    seed_everything(spec.train.seed)
    check_memory(arch, _resolved_batch(spec, prep), device)   # before allocating: a message, not an allocator's crash
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
    optimizer = make_optimizer(model.parameters(), spec.optim, device_type=device.type)
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
    stopper = EarlyStopping(monitor=monitor, mode=resolve_mode(monitor, stop.mode), patience=int(stop.patience),
                            min_delta=stop.min_delta, target=stop.target, delta=stop.delta, enabled=stop.enabled,
                            tiebreak=loss_tiebreak(monitor))
    state = TrainState(spec=spec, model=model, head=head, optimizer=optimizer, schedule=None,  # type: ignore[arg-type]
                       data=data, stopper=stopper, generator=gen)
    state.schedule = make_schedule(optimizer, spec.schedule, epochs=spec.train.epochs,
                                   steps_per_epoch=state.steps_per_epoch)
    return state


def split_metrics(run: Run, prep: Prepared, state: TrainState) -> dict:
    """Full metrics on train and validation, and once on the held-out test split."""
    if getattr(prep, "streaming", False):      # splits on disk: scored by streaming
        from trainwell.data.streaming import stream_split_metrics
        return stream_split_metrics(run, prep, state)
    out = {}
    d = state.data
    run.model.eval()
    for split, (X, y) in {"train": (d.X_train, d.y_train), "val": (d.X_val, d.y_val),
                          "test": (d.X_test, d.y_test)}.items():
        if X.shape[0] == 0:
            out[split] = {}
            continue
        with torch.no_grad():
            logits = torch.cat([run.model(X[i:i + 8192]).float() for i in range(0, X.shape[0], 8192)])
            loss = float(run.head.loss_fn(logits, y))
            o = run.head.transform(logits).cpu().numpy()
        yn = y.cpu().numpy()
        if prep.pre.task == "reconstruction":
            from trainwell.nn.autoencoder import reconstruction_metrics
            out[split] = reconstruction_metrics(yn, o)
        elif prep.pre.task == "regression":
            out[split] = regression_metrics(prep.pre.decode_regression(yn, clip=False), prep.pre.decode_regression(o))
        else:
            out[split] = classification_metrics(prep.pre.task, yn, o)
            if run.head.class_weight is not None:
                out[split]["weighted_accuracy"] = weighted_accuracy(prep.pre.task, yn, o, run.head.class_weight)
        out[split]["loss"] = loss
    return out


def arrays_first(data: Any, X: Any, y: Any) -> tuple[Any, Any, Any]:
    """``fit(X, y)`` as scikit-learn users write it: arrays or a DataFrame in the first two places are the
    features and the targets (the first place is otherwise the data's name or path)."""
    if data is None or isinstance(data, (str, Path, dict)):
        return data, X, y
    if X is None or y is not None:
        raise UserError("fit's first argument is a data name or path, or the features X followed by the targets y: "
                        "call tw.fit(X, y) or tw.fit(X=X, y=y).")
    return None, data, X


@claims_run_dir        # out/resume: refused if it holds a run (unless overwrite=True), locked while training
def fit(data: str | dict | None = None, X: Any = None, y: Any = None, spec: Spec | dict | str | None = None,
        *, sets: list[str] | None = None, out: str | Path | None = None, save: bool = True,
        verbose: bool = True, callbacks: list | None = None, resume: str | Path | None = None,
        module: Any = None, module_kwargs: dict | None = None, ensemble: int = 1, overwrite: bool = False,
        trust_module: bool = False, class_weight: Any = None, sample_weight: Any = None,
        validation_data: Any = None, **overrides: Any) -> Run:
    """Train a model well and return the Run.

    ``data`` is a built-in name or a path (or a dict: the whole ``data`` section);
    or pass arrays as ``X``/``y``.
    ``spec`` is a Spec, dict or YAML path; keyword sections (``model={...}``,
    ``optim={...}``, ``task="binary"``, ...) and ``sets=["a.b=value"]`` override it.
    ``resume=RUN_DIR`` continues a stopped run from its spec.yaml and newest good checkpoint.
    ``module=`` trains your own ``torch.nn.Module`` (an instance, a class, or "file.py:ClassName";
    ``module_kwargs=`` are its constructor arguments, saved so ``load`` can rebuild it).
    ``ensemble=P`` trains a deep ensemble of P networks (seeds seed..seed+P-1) as one batched
    population; ``Run.predict`` averages the members' probabilities.
    ``out`` that already holds a run is refused unless ``overwrite=True``, which replaces it only once
    the new run has finished (docs/checkpoints.md); ``trust_module=True`` lets ``resume`` run the
    custom module copied into the run directory.
    ``class_weight`` ("balanced" or {class: weight}) weights the loss by class (data.class_weight);
    ``sample_weight`` (one weight per row of X) resamples rows in proportion (data.weight);
    ``validation_data=(X_val, y_val)`` (or a DataFrame with the target column) is the validation split.
    """
    data, X, y = arrays_first(data, X, y)
    if resume is not None:   # the saved spec, the same folder; arrays-trained runs pass X, y again
        from trainwell.run.resume import resume_spec, trust_resumed_module
        spec, out = resume_spec(resume, data, spec, sets, overrides), resume
        data, sets = None, None
        from trainwell.train.population_resume import saved_members   # lazy: only a resumed run reads the marker
        ensemble = saved_members(resume, ensemble)     # a fit(ensemble=P) run: P from its directory
        if spec.model.type == "custom":     # its copy in the run directory, checked, only if trusted
            trust_resumed_module(resume, trust_module)
    topo_notes: list[str] = []
    spec = spec_for(data, spec, sets, overrides, notes=topo_notes)
    spec, X, y, val_rows = given_rows(spec, X, y, class_weight, sample_weight, validation_data, ensemble)
    if ensemble > 1:   # P members as one batched computation (train/population.py)
        from trainwell.deep_ensemble import fit_ensemble_run   # lazy: it imports this module (until build.py)
        return fit_ensemble_run(spec, ensemble, X, y, out=out, save=save, verbose=verbose, resume=resume is not None)
    if module is not None:
        from trainwell.nn.custom import module_spec
        spec = module_spec(spec, module, module_kwargs)
    from trainwell.nn.topology import topology_defaults   # batch 128 for conv/recurrent nets, rnn clipping
    spec, more = topology_defaults(spec)
    topo_notes += more
    console = fit_console(verbose)
    from trainwell.train.distributed import Distributed   # torchrun ranks: DDP; only rank 0 writes
    dist = Distributed.from_env(spec)
    if dist.rank != 0:
        console, verbose = Console(quiet=True), False
    from trainwell.data.streaming import wants_streaming
    streaming, stream_why = (False, "") if X is not None else wants_streaming(spec)
    table = None if streaming else load_table(spec, X, y)
    if val_rows is not None:
        mark_validation(table, val_rows)
    if X is not None:
        spec = Spec.build(spec, sets=["data.source=arrays"])
    if spec.model.type == "perceptron":   # the perceptron rule = plain SGD on the perceptron criterion
        from trainwell.nn.perceptron import perceptron_spec_changes
        changes, notes = perceptron_spec_changes(spec)
        spec = Spec.build(spec, **changes)
        for text in notes:
            note(console, text)
    if streaming:                          # larger than memory: data/streaming.py
        from trainwell.data.streaming import prepare_streaming
        console.print(f"[dim]·[/dim] {stream_why}")
        prep = prepare_streaming(spec, rank=dist.rank, world=dist.world)
    else:
        prep = prepare(table, spec)
    del table                              # the splits are copies: the loaded table is not needed any more
    arch, arch_notes = resolve_architecture(spec, prep)
    arch_notes += add_class_weight(arch, spec, prep)      # data.class_weight: a class-weighted loss
    if module is not None and not isinstance(module, (str, type)):
        arch["_instance"] = module                       # train the very object the user passed
    device = dist.device(resolve_device(spec.train.device))
    state = build_state(spec, prep, arch, device)
    spec = state.spec                      # batch size, lr and stop monitor resolved
    dist.wrap(state)
    for text in [*prep.notes, *topo_notes, *arch_notes]:
        note(console, text)
    note(console, "model: " + (arch.get("summary") or
                  f"{arch['n_inputs']}-{'-'.join(map(str, arch['hidden']))}-{arch['n_outputs']}")
                  + f" {arch['activation']}, {count_parameters(state.model):,} parameters, on {device.type};"
                  f" {spec.optim.name} lr {spec.optim.lr:g}, batch {state.batch_size}"
                  f" ({state.steps_per_epoch} steps/epoch)")
    note(console, step_note(state))
    run_dir = dist.same_path(Path(out) if out is not None else new_run_dir(prep.name, create=save and dist.rank == 0))
    if save and dist.rank == 0 and arch.get("type") == "custom":   # module.py + its sha256, before any checkpoint
        copy_module(arch, run_dir)
    from trainwell.diagnose.session import attach, diagnose_failure, make_callbacks
    monitor, doctor_callbacks = make_callbacks(spec)      # babysitting monitors (+ TensorBoard)
    tracker = tracker_for(spec, prep.name) if dist.rank == 0 else None   # track.mlflow (track/mlflow.py)
    callbacks = [*(callbacks or []), *doctor_callbacks, *([tracker] if tracker else [])]
    from trainwell.run.resume import make_checkpointer   # saves, resumes, signals, NaN rollback
    ckpt = dist.checkpointer(make_checkpointer, state, run_dir if save else None, arch, prep.pre, console,
                             resume=resume is not None)
    t0 = time.perf_counter()
    with threads_for(state.model, state.batch_size, device):   # small nets: one thread (train/threads.py)
        if verbose and spec.train.progress:
            with epoch_log(console, spec.train.epochs, state.head.metric) as bar:
                ckpt.train(state, callbacks, on_epoch=bar)
        else:
            ckpt.train(state, callbacks)
    seconds = time.perf_counter() - t0
    history = pd.DataFrame(state.history)
    run = Run(state.model, arch, prep.pre, spec, history, directory=None)
    run.sample_inputs = (state.data.X_test if state.data.X_test.shape[0] else state.data.X_val)[:8].cpu()
    if state.stopped_because == "nan":
        if tracker:
            tracker.fail()
        diagnosis = diagnose_failure(run, state, prep, monitor, run_dir if save else None)
        titles = "; ".join(f["title"] for f in diagnosis["findings"])
        raise UserError(
            (state.extra.get("nan_diagnosis") or   # checkpoint replay: step, layer, causes, what is kept
             f"Training diverged: the loss became NaN or inf in epoch {state.extra.get('nan_epoch')}. "
             f"Likely causes: a learning rate too high (optim.lr={spec.optim.lr:g}; try 10x lower), "
             f"exploding gradients (set regularize.clip_norm=1.0), or extreme input values.")
            + (f" Diagnosis: {titles}" if titles else "")
            + (f" (written to {run_dir / 'diagnosis.json'})." if save else "")
        )
    best = state.stopper.best_epoch
    with threads_for(state.model, state.batch_size, device):   # scoring a small net: one thread, as in training
        cal_note, cal = (None, None) if getattr(prep, "streaming", False) else \
            calibrate_run(run, state.data, spec.train.calibrate)
        run.metrics = {"task": prep.pre.task, "best_epoch": best, "epochs_run": state.epoch,
                       "stopped_because": state.stopped_because, "seconds": seconds,
                       **split_metrics(run, prep, state), **({"calibration": cal} if cal else {})}
        attach(run, state, prep, monitor)                      # run.diagnosis: the doctor's findings
    if cal_note:
        console.print(f"[dim]·[/dim] {cal_note}")
    restored = f"; restored epoch {best}" if spec.stop.restore_best and best > 0 else ""
    note(console, f"stopped at epoch {state.epoch}: {state.stopped_because}{restored} ({seconds:.1f} s)")
    if save and dist.rank == 0:
        write_run_directory(run, run_dir, best)
    if tracker:
        tracker.finish(run, run_dir if save else None)
    if verbose:
        console.print(summary_table(run.metrics))
        from trainwell.diagnose.report_cli import doctor_lines   # beside the other diagnose imports of fit
        head, *problems = doctor_lines(run.diagnosis, run_dir if save else None)
        note(console, head)
        for line in problems:
            note(console, line, bullet=" ")
        if save and dist.rank == 0:
            note(console, f"run directory: {run_dir}; report: {run_dir / 'report.html'}")
    dist.finish()
    return run


def write_run_directory(run: Run, run_dir: Path, best_epoch: int) -> None:
    run.save(run_dir)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    if not run.history.empty:
        from trainwell.report.plots import plot_curves   # late import: the report sits above the loop
        plot_curves(run.history, run.head.metric, run_dir / "curves.svg", best_epoch)
    from trainwell.diagnose.session import write_files
    write_files(run, run_dir)                         # diagnostics.csv, diagnosis.json, data.json
    if run.arch.get("type") == "autoencoder" and getattr(run, "sample_inputs", None) is not None:
        from trainwell.nn.autoencoder import plot_reconstructions   # inputs / noisy / reconstructions
        plot_reconstructions(run, run.sample_inputs, run_dir / "reconstructions.png")
    run.seal(run_dir)                                 # model.json: checksums of every file written above
    from trainwell.report.html import write_report   # late import: the report sits above the loop
    write_report(run, run_dir)


def summary_table(metrics: dict) -> RichTable:
    table = RichTable(title="scores", show_lines=False)
    splits = [s for s in ("train", "val", "test") if metrics.get(s)]
    keys = [k for k, v in metrics[splits[0]].items() if isinstance(v, (int, float))] if splits else []
    table.add_column("metric")
    for s in splits:
        table.add_column(s, justify="right")
    for k in keys:
        table.add_row(k, *[f"{metrics[s].get(k):.4f}" if metrics[s].get(k) is not None else "-" for s in splits])
    return table


def dump_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2)

"""``trainwell.fit(..., ensemble=P)``: a deep ensemble whose P members train as one population.

Averaging the predictions of independently initialised networks makes them better and better
calibrated (Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty Estimation using Deep
Ensembles", NeurIPS 2017). The members are trained side by side by train/population.py; this module
assembles them (prepared data, architecture), scores them as ``fit`` scores a lone run, and writes the
run directory. :func:`assemble_member` and :func:`member_run` also serve ``tune --population``
(tune/population.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from trainwell.build import load_prepared, resolve_architecture, resolve_device
from trainwell.core.io import atomic_write, json_safe
from trainwell.data.pipeline import Prepared
from trainwell.core.errors import UserError
from trainwell.nn.ensemble import Ensemble
from trainwell.run import Run
from trainwell.run.rundir import next_run_dir
from trainwell.core.spec import Spec
from trainwell.train.batch_size import resolve_batch
from trainwell.data.batches import Tensors
from trainwell.train.loop import evaluate_tensors
from trainwell.train.population import MemberResult, batch_size, one_network, train_population, unsupported
from trainwell.train.population_resume import PopulationCheckpoints, mark
from trainwell.train.progress import summary_table
from trainwell.train.scoring import split_metrics


def assemble_member(spec: Spec, X, y, cache: dict) -> tuple[str, Prepared, dict, str | None]:
    """A population member through build.py's chain: its prepared data (split, scaling; shared through
    ``cache`` by members whose data settings agree, under the returned key), its architecture as one
    network, and why it cannot join a population (None when it can)."""
    key = json.dumps([spec.to_dict().get("data"), spec.train.seed, spec.task], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = load_prepared(spec, X, y)[1]
    prep = cache[key]
    arch = one_network(spec, resolve_architecture(spec, prep)[0])
    return key, prep, arch, unsupported(spec, arch)


def device_tensors(prep: Prepared, device: torch.device) -> Tensors:
    """The prepared splits as tensors on ``device``."""
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    return Tensors(*(as_t(a) for a in (prep.X_train, prep.y_train, prep.X_val, prep.y_val, prep.X_test,
                                       prep.y_test)))


def scored(data: Tensors, spec: Spec) -> SimpleNamespace:
    """What ``train.scoring.split_metrics`` reads of a training state: the data, and the batch size that sizes its threads."""
    n = int(data.X_train.shape[0])
    return SimpleNamespace(data=data, batch_size=batch_size(resolve_batch(spec, n)[0], n))


def member_run(result: MemberResult, prep: Prepared, device: torch.device, seconds: float | None = None,
               full: bool = True) -> Run:
    """A trainwell Run for one member, with the metrics ``trainwell.fit`` would give it.

    ``full=False``: per split only the loss and the head's metric (accuracy or r2),
    computed in torch; the search fills in the full set for its best trial.
    """
    data = device_tensors(prep, device)
    run = Run(result.model, result.arch, prep.pre, result.spec, pd.DataFrame(result.history), directory=None)
    run.seen_rows = getattr(prep, "seen_rows", None)
    run.metrics = {"task": prep.pre.task, "best_epoch": result.stopper.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_because": result.stopped_because,
                   "seconds": result.seconds if seconds is None else seconds,
                   **(split_metrics(run, prep, scored(data, run.spec)) if full else _quick_metrics(run, data))}
    return run


def _quick_metrics(run: Run, data: Tensors) -> dict:
    """Per split, the loss and the head's metric, as the loop scores an epoch (train/loop.py)."""
    run.model.eval()
    out: dict[str, dict] = {}
    for split, (X, y) in {"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val),
                          "test": (data.X_test, data.y_test)}.items():
        if X.shape[0] == 0:
            out[split] = {}
            continue
        loss, metric = evaluate_tensors(run.model, run.head, X, y)
        out[split] = {run.head.metric: metric, "loss": loss}
    return out


def fit_ensemble(spec: Spec, members: int, X=None, y=None, device: str | None = None,
                 checkpoints: PopulationCheckpoints | None = None) -> tuple[Run, list[Run]]:
    """A deep ensemble of ``members`` networks (seeds seed, seed+1, ...) trained as one population.

    All members share the data split of ``spec.train.seed``; member i's
    initialization, batch order and dropout masks come from seed + i. Returns
    ``(run, member_runs)``: ``run.model`` is an :class:`Ensemble` whose output,
    after the head's softmax / sigmoid, is the mean of the members' probabilities.
    """
    _, prep, arch, why = assemble_member(spec, X, y, {})
    if X is not None:
        spec = Spec.build(spec, sets=["data.source=arrays"])
    if why:
        raise UserError(f"fit(ensemble={members}) trains the members as one population, which does not "
                        f"support {why} yet. Remove it, or train the members one by one.")
    specs = [_with_seed(spec, spec.train.seed + i) for i in range(members)]
    dev = resolve_device(device or spec.train.device)
    t0 = time.perf_counter()
    results = train_population(specs, prep, [arch] * members, dev, checkpoints=checkpoints)
    seconds = time.perf_counter() - t0
    member_runs = [member_run(r, prep, dev, seconds) for r in results]
    ensemble = Ensemble([r.model for r in results], prep.pre.task).to(dev)
    frames = pd.concat([pd.DataFrame(r.history) for r in results])
    history = frames.groupby("epoch", as_index=False).mean(numeric_only=True)
    run = Run(ensemble, {**arch, "ensemble": members}, prep.pre, spec, history, directory=None)
    run.seen_rows = getattr(prep, "seen_rows", None)
    run.metrics = {"task": prep.pre.task, "ensemble": members,
                   "best_epoch": max(r.stopper.best_epoch for r in results),
                   "epochs_run": max(r.epochs_run for r in results),
                   "stopped_because": "; ".join(sorted({r.stopped_because for r in results})),
                   "seconds": seconds, **split_metrics(run, prep, scored(device_tensors(prep, dev), run.spec)),
                   "members": [{"seed": s.train.seed, "epochs_run": r.epochs_run,
                                "best_epoch": r.stopper.best_epoch,
                                "test": m.metrics.get("test", {})} for s, r, m in zip(specs, results, member_runs)]}
    return run, member_runs


def _with_seed(spec: Spec, seed: int) -> Spec:
    tree = spec.to_dict()
    tree["train"]["seed"] = seed
    return Spec.from_dict(tree)


def fit_ensemble_run(spec: Spec, members: int, X=None, y=None, *, out=None, save: bool = True,
                     verbose: bool = True, resume: bool = False) -> Run:
    """``trainwell.fit(..., ensemble=P)``: train, report, and write the run directory.

    The directory holds ``spec.yaml``, ``history.csv`` (members' mean per epoch),
    ``metrics.json`` (the ensemble's scores, and each member's) and one ordinary,
    loadable run directory per member under ``members/NN/``; while training, ``checkpoints/`` holds the
    population's state at each epoch's end, from which ``fit(resume=DIR)`` continues exactly.
    """
    console = Console(quiet=not verbose, highlight=False)
    d = (Path(out) if out is not None else next_run_dir("ensemble")) if save else None
    checkpoints = None
    if d is not None:                   # spec.yaml and the member count first: a killed run can be resumed
        mark(d, members)
        spec.to_yaml(d / "spec.yaml")      # atomically (core/io.py)
        checkpoints = PopulationCheckpoints(d, spec, resume=resume)
    run, member_runs = fit_ensemble(spec, members, X, y, checkpoints=checkpoints)
    console.print(f"[dim]·[/dim] deep ensemble: {members} members (seeds {spec.train.seed}..{spec.train.seed + members - 1})"
                  f" trained as one population in {run.metrics['seconds']:.1f} s; predictions average their "
                  f"probabilities")
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        run.spec.to_yaml(d / "spec.yaml")
        atomic_write(d / "history.csv", run.history.to_csv(index=False))
        atomic_write(d / "metrics.json", json.dumps(json_safe(run.metrics), indent=2))
        for i, m in enumerate(member_runs):
            m.save(d / "members" / f"{i:02d}")
        run.directory = d
        console.print(f"[dim]·[/dim] run directory: {d} (members in {d / 'members'})")
    if verbose:
        console.print(summary_table({k: v for k, v in run.metrics.items() if k != "members"}))
    return run

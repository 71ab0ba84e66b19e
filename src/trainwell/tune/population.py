"""``tune --population P``: ask P trials, train them as populations, tell the results; repeat.

The training is train/population.py's (P networks of one architecture as one batched computation); this is
the search side: which trials can share a population, the pruner's per-epoch decisions, and each trial's
bookkeeping through tune/trials.py, as a sequential search records it. Members are grouped by prepared
data (data section, seed) and by architecture (``structure_key``); a member that cannot join a population
(``unsupported``) is trained alone by ``trainwell.fit``, as without ``--population``.

The trials run in an in-memory copy of the study and are written to the shared storage once per round,
in one transaction (tune/bulk.py), instead of one commit per reported epoch and attribute (SQLite commits
cost ~20 ms each on a busy disk).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

from trainwell.build import resolve_device
from trainwell.deep_ensemble import assemble_member, device_tensors, member_run, scored
from trainwell.nn.heads import make_head
from trainwell.core.spec import Spec
from trainwell.train.population import STRUCTURE_PATHS, structure_key, train_population
from trainwell.train.scoring import split_metrics
from trainwell.tune.bulk import add_trials
from trainwell.tune.storage import quiet_optuna
from trainwell.tune.trials import consumed, fit_trial, objective_key, record_trial, start_trial, tell


def run_population_trials(cfg: Any, space: Any, study: Any, budget: int, X=None, y=None,
                          say: Callable[[str], None] = print) -> int:
    """Run the study's remaining trials ``cfg.population`` at a time; returns how many ran.

    Per-epoch validation scores go to the pruner; a pruned member leaves its population at once.
    """
    P = int(cfg.population)
    splitting = [p.path for p in space if p.path in STRUCTURE_PATHS]
    if splitting:
        say(f"note: {', '.join(splitting)} change(s) the network's structure or batches, so members train in "
            f"one population per distinct value; keep them fixed (outside the space) for one population of {P}")
    optuna = quiet_optuna()
    shared = study
    study = optuna.create_study(study_name=shared.study_name, direction=shared.direction, sampler=shared.sampler,
                                pruner=shared.pruner)   # the same name: Hyperband hashes it to pick brackets
    study.add_trials(shared.get_trials(deepcopy=True))
    search = _PopulationSearch(cfg, study, X, y, say)
    left = budget - len(consumed(shared.get_trials(deepcopy=False)))
    while left > 0:
        n_before = len(study.get_trials(deepcopy=False))
        k = min(P, left)
        left -= k
        members = []
        for _ in range(k):
            trial = study.ask()
            values, tree = start_trial(trial, space, cfg.base, 0)
            members.append((trial, values, Spec.from_dict(tree)))
        search.round(members)
        add_trials(shared, study.get_trials(deepcopy=True)[n_before:])   # this round, to the shared study
    search.finish()
    return search.ran


class _PopulationSearch:
    """One search's rounds: the prepared-data cache, the trials run, and the best trial so far."""

    def __init__(self, cfg: Any, study: Any, X: Any, y: Any, say: Callable[[str], None]):
        self.cfg, self.study, self.X, self.y, self.say = cfg, study, X, y, say
        self.cache: dict = {}
        self.ran = 0
        self.best: tuple | None = None     # (value, run, prep, trial number)

    def round(self, members: list[tuple]) -> None:
        """Train one round's trials: in populations where they can, alone where they cannot."""
        groups: dict[tuple, list] = {}
        alone = []
        for trial, values, spec in members:
            pkey, prep, arch, why = assemble_member(spec, self.X, self.y, self.cache)
            if why:
                alone.append((trial, values, spec, why))
            else:
                groups.setdefault((pkey, structure_key(spec, arch)), []).append((trial, values, spec, arch, prep))
        for group in groups.values():
            self.train_group(group)
        for trial, values, spec, why in alone:
            self.say(f"trial {trial.number:>4}: trained alone ({why})")
            try:
                value = fit_trial(trial, values, spec, self.cfg, self.X, self.y, say=self.say)
            except Exception as exc:   # noqa: BLE001 - a failed trial must not end the study
                trial.set_user_attr("error", str(exc))
                tell(self.study, trial, None, failed=True)
                continue
            tell(self.study, trial, value)
            self.ran += 1

    def train_group(self, group: list[tuple]) -> None:
        """Train one population and record each member as its trial."""
        prep, arch = group[0][4], group[0][3]
        key = objective_key(self.cfg.objective, make_head(prep.pre.task, arch["loss"], arch["output_activation"]).metric)
        prune = self.cfg.pruner != "none"
        pruned: set[int] = set()

        def on_epoch(i: int, row: dict) -> bool:
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
        for i, ((trial, values, *_), r) in enumerate(zip(group, results)):
            if i in pruned:
                r.stopped_because = f"pruned by the {self.cfg.pruner} pruner at epoch {r.epochs_run}"
            diverged = r.stopped_because == "nan"
            run = member_run(r, prep, device, seconds=wall / len(group), full=False)
            attrs = {"population": len(group), **({"stopped_because": "diverged (loss NaN/inf)"} if diverged else {})}
            value = record_trial(trial, values, run, key, self.cfg.directory, run.metrics["seconds"], say=self.say,
                                 note=f"population of {len(group)}", pruned=i in pruned or diverged, attrs=attrs)
            tell(self.study, trial, value)
            sign = 1.0 if self.study.direction.name == "MINIMIZE" else -1.0
            if value is not None and (self.best is None or sign * value < sign * self.best[0]):
                self.best = (value, run, prep, trial.number)
            self.ran += 1

    def finish(self) -> None:
        """The best population trial gets the full metrics a lone run writes."""
        if self.best is None:
            return
        _, run, prep, number = self.best
        data = device_tensors(prep, next(run.model.parameters()).device)
        run.metrics.update(split_metrics(run, prep, scored(data, run.spec)))
        run.save(Path(self.cfg.directory) / f"trial-{number:04d}")

"""Population training that resumes exactly after a kill (``fit(ensemble=P)``, train/population.py's loop).

At the end of every epoch the loop's whole state goes to ``RUN/checkpoints`` through the checkpoint store of
train/checkpoint/ (atomic, checksummed, the same fault-injection points): the active members' stacked
weights and optimizer moments, the optimizer's step count and per-member hyperparameters, every member's
batch-order and dropout generators, histories, early-stopping state, best weights, and the final weights
of the members already stopped. Resuming rebuilds the population as at its start, takes the stopped members
out, and puts every tensor and counter back, so the rest of the run is the uninterrupted run, bit for bit
(tests/test_resume_paths.py). A kill mid-epoch resumes from the epoch's start: the epoch is replayed with
the same generators, so the result is the same.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from trainwell.core.io import atomic_write
from trainwell.core.spec import Spec
from trainwell.train.checkpoint import CheckpointStore, Checkpointer

MARKER = "population.json"     # written when the run starts: `fit --resume` knows it is a population
KEEP = 2                       # numbered checkpoints kept besides `last`


def mark(run_dir: Path, members: int) -> None:
    """Record, before training starts, that ``run_dir`` is a population of ``members`` networks."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / MARKER, json.dumps({"members": int(members)}))


def saved_members(run_dir: str | Path | None, members: int) -> int:
    """The member count a resumed run was started with (``members`` when it is no population)."""
    if run_dir is None or not (Path(run_dir) / MARKER).exists():
        return members
    return int(json.loads((Path(run_dir) / MARKER).read_text())["members"])


class PopulationCheckpoints:
    """Saves and restores the population loop's state in ``run_dir/checkpoints``."""

    def __init__(self, run_dir: str | Path, spec: Spec, resume: bool = False):
        ck = Checkpointer(spec, run_dir)          # its store and the TRAINWELL_FAULT hooks of the crash tests
        self.store: CheckpointStore = ck.store
        self.faults = ck.faults
        self.spec, self.resume = spec, resume

    def on_step(self, steps: int) -> None:
        """After each optimizer step: the crash tests' ``kill@step=N``."""
        if self.faults is not None:
            self.faults.on_step_end(SimpleNamespace(step=steps))

    def save(self, loop: Any) -> None:
        tensors: dict[str, torch.Tensor] = {"flat": loop.net.flat}
        tensors.update({f"opt.{i}": s for i, s in enumerate(loop.opt.state)})
        tensors.update({f"hp.{k}": v for k, v in loop.opt.hp.items()})
        for m, (p, d) in enumerate(zip(loop.perm_gens, loop.drop_gens)):
            tensors[f"gen.perm.{m}"], tensors[f"gen.drop.{m}"] = p.get_state(), d.get_state()
        for m, state in loop.best.items():
            tensors.update({f"best.{m}.{k}": v for k, v in state.items()})
        for m, r in enumerate(loop.results):
            if m not in loop.active:
                tensors.update({f"done.{m}.{k}": v for k, v in r.model.state_dict().items()})
        data = safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        members = [{"history": r.history, "columns": list(r.history[0]) if r.history else [],   # the JSON sorts keys
                    "epochs_run": r.epochs_run, "stopped_because": r.stopped_because, "seconds": r.seconds,
                    "stopper": r.stopper.state_dict()} for r in loop.results]
        body = {"kind": "population", "epoch": loop.epoch, "step": loop.opt.steps, "active": loop.active,
                "best": sorted(loop.best), "members": members, "spec": self.spec.to_dict()}
        self.store.write_many([(data, body, [f"epoch-{loop.epoch}", "last"])])
        self.store.prune(KEEP)

    def restore(self, loop: Any) -> bool:
        """Put the newest good checkpoint back into ``loop``; False when there is none."""
        self.store.recover()
        found = self.store.newest(exclude=("best",))
        if found is None:
            return False
        _, t, body = found
        device = loop.net.flat.device
        loop.active = list(body["active"])
        for m, (r, saved) in enumerate(zip(loop.results, body["members"])):
            r.history = [{c: row[c] for c in saved["columns"]} for row in saved["history"]]
            r.epochs_run, r.stopped_because = saved["epochs_run"], saved["stopped_because"]
            r.seconds = saved["seconds"]
            r.stopper.load_state_dict(saved["stopper"])
            loop.perm_gens[m].set_state(t[f"gen.perm.{m}"])
            loop.drop_gens[m].set_state(t[f"gen.drop.{m}"])
            if m not in loop.active:
                r.model.load_state_dict(_prefixed(t, f"done.{m}."))
        loop.best.update({m: _prefixed(t, f"best.{m}.") for m in body["best"]})
        keep = torch.tensor(loop.active, dtype=torch.long, device=device)
        loop.net.select(keep)
        loop.net.generators = [loop.drop_gens[m] for m in loop.active]
        loop.net.flat = t["flat"].to(device)
        loop.opt.load({k: t[f"hp.{k}"] for k in loop.opt.hp},
                      [t[f"opt.{i}"] for i in range(sum(k.startswith("opt.") for k in t))], int(body["step"]))
        loop.epoch = int(body["epoch"])
        return True


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

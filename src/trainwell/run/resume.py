"""Starting and continuing training in a run directory: spec.yaml first, checkpoints, ``--resume``.

``fit --resume DIR`` continues a run exactly as it was started: from its spec.yaml (an edit
made since the last checkpoint is refused, saying what differs), its copy of a custom module
(verified, only if trusted), and the newest good checkpoint (train/checkpoint/). See
docs/checkpoints.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwell.core.errors import UserError
from trainwell.nn.custom import trusted_class
from trainwell.run.manifest import read_manifest
from trainwell.run.rundir import has_files
from trainwell.core.spec import Spec
from trainwell.train.checkpoint.checkpointer import Checkpointer, describe_position
from trainwell.train.checkpoint.store import CheckpointStore, warner
from trainwell.train.loop import TrainState


def resume_spec(run_dir: str | Path, data: Any = None, spec: Any = None, sets: list[str] | None = None,
                overrides: dict | None = None) -> Spec:
    """The spec a run was started with (its spec.yaml); resuming takes no other settings."""
    d = Path(run_dir)
    if data is not None or spec is not None or sets or overrides:
        raise UserError("--resume continues a run exactly as it was started, from its spec.yaml; do not "
                        "pass data, --spec or --set with it (start a new run to change settings).")
    if not (d / "spec.yaml").exists() and d.is_dir() and not has_files(d):
        raise UserError(f"{d} holds no saved state: the run that wrote it stopped before saving its spec.yaml, so "
                        f"there is nothing to continue and nothing was lost. Start it again with the command that "
                        f"started it (trainwell fit DATA --out {d}).")
    if not (d / "spec.yaml").exists():
        raise UserError(f"Cannot resume {d}: it has no spec.yaml, so it is not a trainwell run directory. "
                        "Pass the folder given as --out to the run that stopped.")
    spec = Spec.from_yaml(d / "spec.yaml")
    found = CheckpointStore(d).newest(warn=warner(None), exclude=("best",))
    if found is not None and isinstance(found[2].get("spec"), dict):
        _same_spec(d, spec, Spec.from_dict(found[2]["spec"]), found[0])
    return spec


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _same_spec(d: Path, on_disk: Spec, saved: Spec, name: str) -> None:
    """A resumed run continues exactly as checkpointed: a spec.yaml edited since is refused, saying what differs."""
    a, b = _flat(on_disk.to_dict()), _flat(saved.to_dict())
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diff:
        shown = "; ".join(f"{k} is {a.get(k)!r} in spec.yaml but {b.get(k)!r} in the checkpoint" for k in diff[:5])
        raise UserError(f"{d / 'spec.yaml'} was edited after checkpoint {name} was saved ({shown}). --resume "
                        f"continues a run exactly as it was checkpointed: put the values back, or start a new run "
                        f"with the new settings (trainwell fit DATA --spec {d / 'spec.yaml'} --out NEW_DIR).")


def trust_resumed_module(run_dir: str | Path, trust: bool) -> None:
    """Resuming a run with a custom module runs its copy in the run directory: verified, and only if trusted."""
    d = Path(run_dir)
    found = CheckpointStore(d).newest(warn=warner(None), exclude=("best",))
    if found is not None:
        arch = found[2].get("architecture", {})
    else:
        arch = read_manifest(d)["architecture"] if (d / "model.json").exists() else {}
    trusted_class(d, arch, trust)


def make_checkpointer(state: TrainState, run_dir: str | Path | None, arch: dict, pre: Any,
                      console: Any | None = None, *, resume: bool = False) -> Checkpointer:
    """The Checkpointer of one ``fit``: writes spec.yaml first, restores on resume."""
    spec = state.spec
    meta = {"architecture": arch, "preprocessing": pre.to_json()}
    if run_dir is not None:
        d = Path(run_dir)        # created empty (or replaced) by run/rundir.py's Claim: fit never writes over a run
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"Cannot create the run directory {d}: {exc.strerror or exc}.") from None
        if not resume:
            spec.to_yaml(d / "spec.yaml")      # atomically (core/io.py), before any checkpoint
    ckpt = Checkpointer(spec, run_dir, meta, console)
    if resume:
        name = ckpt.resume(state)
        if console is not None:
            if name is None:
                console.print("[dim]·[/dim] resume: no checkpoint was saved yet; starting from the beginning")
            else:
                console.print(f"[dim]·[/dim] resumed from checkpoints/{name}: {describe_position(state)}")
    return ckpt

"""Reading a run directory back: the final model (``model.json`` verified) or any saved checkpoint.

Every file is checked against the sha256 that ``model.json`` (run/manifest.py) or the
checkpoint's ``state.json`` recorded before anything is parsed or built; nothing is
unpickled, and a custom module runs only if trusted (nn/custom.py). See docs/checkpoints.md.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from pydantic import ValidationError
from safetensors.torch import load as parse_tensors

from trainwell.data.batches import Tensors
from trainwell.data.fingerprints import SeenRows
from trainwell.data.pipeline import Preprocessor, prepare
from trainwell.data.sources import load_source
from trainwell.core.errors import UserError
from trainwell.nn.crossfit import pools_test_rows
from trainwell.nn.custom import construct, trusted_class
from trainwell.nn.topologies import build_model, topology
from trainwell.run.artifact import Run
from trainwell.run.manifest import SEEN_ROWS, Architecture, read_verified
from trainwell.core.spec import Spec
from trainwell.train.checkpoint.codec import decode, history_rows
from trainwell.train.checkpoint.store import CheckpointStore, CorruptCheckpoint, warner
from trainwell.train.crossfit import pooled
from trainwell.train.scoring import split_metrics


def load(directory: str | Path, device: str = "cpu", checkpoint: str | None = None,
         trust_module: bool = False) -> Run:
    """Load a run directory written by ``fit`` (weights from safetensors, no pickle), every file verified.

    ``checkpoint="epoch-12"`` (or ``step-340``, ``best``, ``last``) loads that saved
    point instead of the final model; it works on a run that was killed, too.
    ``trust_module=True`` allows running the copy of a custom module kept in the run
    directory (checked against its sha256); without it such a run is refused, saying
    which file would run. Nothing else in a run directory is ever executed.
    """
    d = Path(directory)
    if checkpoint is not None:
        return load_checkpoint_run(d, checkpoint, device, trust_module=trust_module)
    if not (d / "model.json").exists() or not (d / "model.safetensors").exists():
        _not_a_run(d)
    meta, blobs = read_verified(d)
    arch = meta["architecture"]
    try:
        state = parse_tensors(blobs["model.safetensors"])
    except Exception as exc:  # noqa: BLE001 -- safetensors raises its own types for a bad header
        raise UserError(f"{d / 'model.safetensors'} cannot be read as safetensors ({str(exc)[:120]}). Restore it "
                        f"from a copy of the run, or train again.") from None
    model = build_for_load(arch, state, d, trust_module).to(device).eval()
    pre = _preprocessor(meta["preprocessing"], d)
    spec = _parse(d / "spec.yaml", lambda: Spec.from_yaml(d / "spec.yaml"))
    history = _parse(d / "history.csv", lambda: pd.read_csv(io.BytesIO(blobs["history.csv"]))) \
        if "history.csv" in blobs else None
    metrics = _parse(d / "metrics.json", lambda: _object(json.loads(blobs["metrics.json"]))) \
        if "metrics.json" in blobs else {}
    diagnosis = _parse(d / "diagnosis.json", lambda: _object(json.loads(blobs["diagnosis.json"]))) \
        if "diagnosis.json" in blobs else None
    run = Run(model, arch, pre, spec, history, metrics, d, diagnosis)
    if SEEN_ROWS in blobs:
        run.seen_rows = _parse(d / SEEN_ROWS, lambda: SeenRows.from_bytes(blobs[SEEN_ROWS]))
    return run


def _not_a_run(d: Path) -> None:
    ckpts = d / "checkpoints"
    if ckpts.is_dir() and any(ckpts.iterdir()):
        raise UserError(f"{d} is an unfinished run: it has checkpoints but no final model (training was stopped "
                        f"before it ended). Continue it with: trainwell fit --resume {d} -- or use a saved point "
                        f"as it is with --checkpoint last (Python: load(..., checkpoint='last')).")
    raise UserError(f"{d} is not a trainwell run directory (model.json and model.safetensors are missing). "
                    f"Pass the folder that `trainwell fit` wrote, e.g. runs/digits.")


def _object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    return value


def _parse(path: Path, read: Callable[[], Any]) -> Any:
    """``read()`` of a verified file; a file trainwell wrote always parses, so failure means damage."""
    try:
        return read()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a parser's own error types
        raise UserError(f"{path} cannot be read ({str(exc)[:160]}). Restore it from a copy of the run, or train "
                        f"again.") from None


def _preprocessor(doc: dict, d: Path) -> Preprocessor:
    return _parse(d / "model.json", lambda: Preprocessor.from_json(doc))


def build_for_load(arch: dict, state: dict[str, torch.Tensor], run_dir: Path, trust_module: bool) -> torch.nn.Module:
    """The saved network with ``state`` loaded, built only after the architecture's fields were validated
    and its parameter shapes matched against the saved tensors on the meta device (no memory allocated
    for a model.json that asks for an impossible network). A custom module runs only if trusted."""
    where = run_dir / "model.json"
    try:
        Architecture.model_validate(arch)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{where} has an invalid architecture field {'.'.join(map(str, first['loc']))}: "
                        f"{first['msg']}. Restore the file, or train again.") from None
    cls = trusted_class(run_dir, arch, trust_module) if arch.get("type") == "custom" else None
    make = (lambda: construct(cls, arch)) if cls is not None else (lambda: build_model(arch))
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in make().state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != saved:
            diff = sorted(set(shapes.items()) ^ set(saved.items()))[:3]
            raise ValueError(f"the architecture and the saved tensors disagree (e.g. {diff})")
        model = make()
        model.load_state_dict(state)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever the builders raise for values they never wrote
        raise UserError(f"{where} and model.safetensors do not describe the same network ({str(exc)[:200]}). "
                        f"Restore the run from a copy, or train again.") from None
    return model


def _best_so_far(store: CheckpointStore) -> tuple[str, dict[str, torch.Tensor], dict] | None:
    """``best`` of a run that stopped before writing it (killed): the best weights kept in the newest
    full checkpoint (``best.*``), as a weights-only checkpoint of the best epoch."""
    found = store.newest(warn=warner(None), exclude=("best",))
    if found is None:
        return None
    _, tensors, body = found
    best = {f"model.{k[len('best.'):]}": v for k, v in tensors.items() if k.startswith("best.")}
    epoch = int(decode(body["stopper"], tensors).get("best_epoch", -1))
    if not best or epoch < 1:
        return None
    return "best", best, {**body, "epoch": epoch, "step": epoch * int(body["steps_per_epoch"]),
                          "batch_in_epoch": 0, "mid_epoch": False}


def load_checkpoint_run(run_dir: str | Path, name: str = "last", device: str = "cpu",
                        trust_module: bool = False) -> Any:
    """A :class:`Run` with the weights of checkpoint ``name`` (falls back if damaged)."""
    store = CheckpointStore(run_dir)
    found = None
    if name in ("best", "last") and not (store.path / name).is_dir():   # not written yet (a killed run)
        found = (_best_so_far(store) if name == "best" else    # the newest checkpoint's best weights
                 store.newest(warn=warner(None), exclude=("best",)))   # `last`: the newest checkpoint
    found = found or store.newest(prefer=name, warn=warner(None))
    if found is None:
        raise UserError(f"{Path(run_dir)} has no checkpoints (looked in {store.path}).")
    got, tensors, body = found
    arch = body["architecture"]
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model = build_for_load(arch, weights, Path(run_dir), trust_module).to(device).eval()
    try:
        pre = Preprocessor.from_json(body["preprocessing"])
        spec = Spec.from_dict(body["spec"])
    except Exception as exc:  # noqa: BLE001 -- a body that passed its checksum but not ours
        raise CorruptCheckpoint(f"checkpoint {store.path / got} is damaged: {str(exc)[:200]}") from None
    history = pd.DataFrame(history_rows(body, tensors)[:body["epoch"]])
    metrics = {"checkpoint": got, "epoch": body["epoch"], "step": body["step"]}
    run = Run(model, arch, pre, spec, history, metrics, Path(run_dir))
    run.checkpoint = got
    return run


def score_test_split(run: Any) -> dict:
    """Scores of ``run`` on its own held-out test split, rebuilt from its spec."""
    spec = run.spec
    if spec.data.source == "arrays":
        raise UserError("This run was trained on in-memory arrays, so its test split cannot be rebuilt. "
                        "Pass labelled data to score: trainwell evaluate RUN DATA --checkpoint NAME.")
    prep = prepare(load_source(spec.data.source, spec.data.target, seed=spec.train.seed,
                               allow_missing=spec.data.impute != "none"), spec, topology(spec.model.type).inputs)
    if prep.raw_test is None or len(prep.raw_test[0]) == 0:
        raise UserError("The run has no test split to score; pass labelled data: trainwell evaluate RUN DATA.")
    if pools_test_rows(run.arch):
        return held_out_test_scores(run, prep)
    return run.evaluate(*prep.raw_test)


def held_out_test_scores(run: Any, prep: Any) -> dict:
    """The test scores of a run whose cross-fitted members trained on the test rows (train/crossfit.py): the
    folds rebuilt from the run's seed, each test row scored by the member that holds it out, as ``fit``
    scored them. The whole ensemble would score rows seven of its eight members learned from."""
    device = next(run.model.parameters()).device
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    data = Tensors(*(as_t(a) for a in (prep.X_train, prep.y_train, prep.X_val, prep.y_val, prep.X_test, prep.y_test)))
    data = pooled(data, prep.pre.task in ("binary", "multiclass"), int(run.arch["members"]), run.spec.train.seed,
                  with_test=True)
    return split_metrics(run, prep, SimpleNamespace(data=data))["test"]

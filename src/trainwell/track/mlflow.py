"""MLflow tracking: every run (and every tuning study) visible to the team in an MLflow server.

``track.mlflow`` (``--set track.mlflow=URI`` or ``track: {mlflow: URI}`` in the spec) names the
tracking server: ``http://host:5000``, ``sqlite:///mlflow.db``; ``true`` means a local store,
``./mlflow.db`` with artifacts under ``./mlruns`` (MLflow 3 keeps its older ``./mlruns`` file store
in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``; its own recommended local
default is this SQLite file). ``fit`` then logs

- the resolved spec as parameters (``model.hidden``, ``optim.lr``, ... flattened with dots) and the
  architecture it resolved to (``architecture.hidden``, ``architecture.members``, ...),
- every epoch's history row as metrics with ``step = epoch`` (so MLflow draws the curves),
- the final split metrics (``final/test_accuracy``, ``final/val_loss``, ...) and the calibration,
- the doctor's findings as tags (``doctor.<id>`` = severity and title),
- the run directory's files as artifacts (the checkpoints/ folder excepted: it is for resuming);

``tune`` logs one parent run per study and one child run per trial (population trials too), each
child with its values, history and metrics, read from the trial's run directory once the study
ends. MLflow's client API is used directly (``MlflowClient``, https://mlflow.org/docs/latest/
python_api/mlflow.client.html), so no global "active run" is touched and a trainwell run inside
a user's own ``mlflow.start_run()`` does not interfere with it. MLflow is optional:
``pip install 'trainwell[mlflow]'``.
"""
from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from trainwell.core.errors import UserError

BATCH = 100            # MLflow's limit of parameters per log_batch call (metrics: 1,000)
TAG_CHARS = 5000
HEALTH_SECONDS = 5


def _reachable(uri: str) -> None:
    """An http(s) server answers its /health endpoint within seconds, or a UserError now (MLflow's own
    client retries a dead address for minutes before it gives up)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=HEALTH_SECONDS):
            return
    except urllib.error.HTTPError:
        return                           # it answered: a proxy or an older server without /health
    except (OSError, ValueError) as exc:
        raise UserError(f"The MLflow tracking server at {uri} (track.mlflow) does not answer: {exc}. Start it "
                        f"(mlflow server --host 127.0.0.1 --port 5000), fix the address, or remove "
                        f"track.mlflow (docs/tracking.md).") from None


def _client(uri: str):
    _reachable(uri)
    try:
        from mlflow import MlflowClient   # lazy: optional dependency, imported only when tracking is on
    except ImportError:
        raise UserError("track.mlflow is set but MLflow is not installed. Install it with "
                        "pip install 'trainwell[mlflow]' (or mlflow), or remove track.mlflow.") from None
    return MlflowClient(tracking_uri=uri)


def tracking_uri(setting: Any) -> str | None:
    """``track.mlflow`` -> a tracking URI (``True``: the local ./mlruns file store), None when off."""
    if setting in (None, False, "", "none", "false"):
        return None
    if setting is True or setting == "true":     # MLflow 3 refuses its old ./mlruns file store by default
        return f"sqlite:///{Path('mlflow.db').resolve()}"
    return str(setting)


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """Nested spec -> {"optim.lr": "0.001", ...} (lists and dicts as JSON)."""
    out: dict[str, str] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return out


def _metrics(values: dict[str, Any], step: int, now: int) -> list:
    from mlflow.entities import Metric   # lazy: optional dependency (mlflow)
    return [Metric(k, float(v), now, step) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]


def _log(client, run_id: str, params: dict | None = None, metrics: list | None = None,
         tags: dict | None = None) -> None:
    from mlflow.entities import Param, RunTag   # lazy: optional dependency (mlflow)
    params = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    tags = [RunTag(k, str(v)[:TAG_CHARS]) for k, v in (tags or {}).items()]
    metrics = metrics or []
    for i in range(0, max(len(params), len(metrics), len(tags), 1), BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH], params=params[i:i + BATCH], tags=tags[i:i + BATCH])


def _experiment(client, name: str) -> str:
    """The experiment's id (created on first use); an unreachable or refused store is a UserError."""
    from mlflow.exceptions import MlflowException   # lazy: optional dependency (mlflow)
    try:
        exp = client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None else client.create_experiment(name)
    except MlflowException as exc:
        raise UserError(f"MLflow tracking at {client.tracking_uri} failed: {str(exc).splitlines()[0][:300]}. "
                        f"Start the server (mlflow server --host 127.0.0.1 --port 5000) or fix track.mlflow "
                        f"(docs/tracking.md).") from None


def final_metrics(metrics: dict) -> dict[str, float]:
    """``{"test": {"accuracy": ...}}`` -> ``{"final/test_accuracy": ...}`` plus the calibration numbers
    (``final/``: the restored model's scores, apart from the per-epoch curves of the same names)."""
    out = {}
    for split in ("train", "val", "test"):
        for k, v in (metrics.get(split) or {}).items():
            out[f"final/{split}_{k}"] = v
    for k, v in (metrics.get("calibration") or {}).items():
        out[f"calibration/{k}"] = v
    for k in ("best_epoch", "epochs_run", "seconds"):
        out[k] = metrics.get(k)
    return out


def doctor_tags(diagnosis: dict | None) -> dict[str, str]:
    return {f"doctor.{f['id']}": f"{f.get('severity', '')}: {f.get('title', '')}"
            for f in (diagnosis or {}).get("findings", [])}


def log_directory(client, run_id: str, directory: Path) -> None:
    """The run directory's files as artifacts (not checkpoints/, which only serve a resume)."""
    for path in sorted(Path(directory).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            client.log_artifact(run_id, str(path))


class MlflowTracker:
    """A fit callback: opens the MLflow run at the first epoch, logs each epoch's row, and is
    closed by ``finish`` once the run directory is written (or ``fail`` when training fails)."""

    def __init__(self, uri: str, experiment: str, run_name: str, parent: str | None = None):
        self.client = _client(uri)
        self.experiment_id = _experiment(self.client, experiment)
        self.run_name, self.parent = run_name, parent
        self.run_id: str | None = None

    def start(self, spec_tree: dict) -> str:
        tags = {"mlflow.source.name": "trainwell", "mlflow.runName": self.run_name}
        if self.parent:
            tags["mlflow.parentRunId"] = self.parent
        run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        _log(self.client, self.run_id, params=flatten(spec_tree))
        return self.run_id

    def on_train_begin(self, state) -> None:
        if self.run_id is None:
            self.start(state.spec.to_dict())

    def on_epoch_end(self, state) -> None:
        row = state.history[-1] if state.history else {}
        _log(self.client, self.run_id, metrics=_metrics(
            {k: v for k, v in row.items() if k != "epoch"}, int(row.get("epoch", state.epoch)), _now()))

    def finish(self, run, directory: Path | None) -> None:
        """Final metrics, doctor's findings, artifacts; the MLflow run marked FINISHED."""
        step = int(run.metrics.get("epochs_run") or 0)
        arch = {k: v for k, v in run.arch.items() if not k.startswith("_")}    # the resolved model (hidden, members)
        _log(self.client, self.run_id, params=flatten({"architecture": arch}),
             metrics=_metrics(final_metrics(run.metrics), step, _now()), tags=doctor_tags(run.diagnosis))
        if directory is not None and Path(directory).is_dir():
            log_directory(self.client, self.run_id, Path(directory))
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")


def check_tracking(track) -> None:
    """Refuse a study up front when its tracking store cannot be used (it is written when the study ends)."""
    _client(tracking_uri(track.mlflow))


def tracker_for(spec, name: str) -> MlflowTracker | None:
    """The tracker ``fit`` attaches when ``track.mlflow`` is set (None otherwise)."""
    uri = tracking_uri(spec.track.mlflow)
    if uri is None:
        return None
    return MlflowTracker(uri, spec.track.experiment or name, name)


def _now() -> int:
    return int(time.time() * 1000)


def log_study(track, study_name: str, directory: Path, trials: pd.DataFrame, best: dict | None,
              searched: list[str]) -> str:
    """One parent run for the study and one child per trial, read from the trial run directories
    (``trial-NNNN/``: spec.yaml, history.csv, metrics.json) and the trials table (the ``searched``
    values as ``search.<path>`` parameters). Returns the parent's run id."""
    client = _client(tracking_uri(track.mlflow))
    exp = _experiment(client, track.experiment or study_name)
    parent = client.create_run(exp, run_name=f"study {study_name}",
                               tags={"mlflow.source.name": "trainwell", "trainwell.study": study_name})
    pid = parent.info.run_id
    for _, t in trials.iterrows():
        d = directory / str(t.get("run_dir") or f"trial-{int(t['trial']):04d}")
        child = client.create_run(exp, run_name=f"trial {int(t['trial'])}", tags={
            "mlflow.parentRunId": pid, "trainwell.state": str(t["state"]), "trainwell.trial": str(int(t["trial"]))})
        cid = child.info.run_id
        spec = yaml.safe_load((d / "spec.yaml").read_text()) if (d / "spec.yaml").exists() else {}
        values = {f"search.{p}": str(t[p]) for p in searched if p in t and not pd.isna(t[p])}
        _log(client, cid, params={**flatten(spec), **values})
        if (d / "history.csv").exists():
            hist = pd.read_csv(d / "history.csv")
            rows = [m for _, r in hist.iterrows() for m in _metrics(
                {k: v for k, v in r.items() if k != "epoch"}, int(r.get("epoch", 0)), _now())]
            for i in range(0, len(rows), 1000):
                client.log_batch(cid, metrics=rows[i:i + 1000])
        if (d / "metrics.json").exists():
            m = json.loads((d / "metrics.json").read_text())
            _log(client, cid, metrics=_metrics(final_metrics(m), int(m.get("epochs_run") or 0), _now()))
        client.set_terminated(cid, "FINISHED" if t["state"] in ("complete", "pruned") else "FAILED")
    if best:
        _log(client, pid, params={f"best.{k}": v for k, v in flatten(best.get("params") or {}).items()},
             metrics=_metrics({"best_value": best.get("value"), "best_trial": best.get("trial")}, 0, _now()))
    for name in ("trials.csv", "best.json", "best_spec.yaml", "study.html"):
        if (directory / name).exists():
            client.log_artifact(pid, str(directory / name))
    client.set_terminated(pid, "FINISHED")
    return pid

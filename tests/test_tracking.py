"""MLflow tracking (track/mlflow.py) against a real ``mlflow server`` started on 127.0.0.1 by the test:
fit logs the resolved spec, every epoch and the run directory; tune logs a parent run per study and a
child per trial. Everything is read back through MLflow's own client."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import trainwell as tw

from conftest import require_service, service_used

START_SECONDS = 120       # the server migrates its SQLite schema at start-up: ~30 s on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        import mlflow  # noqa: F401
    except ImportError:
        require_service("mlflow", "the mlflow package is not installed (pip install 'trainwell[mlflow]')")
    exe = Path(sys.executable).parent / "mlflow"
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    cmd = [str(exe) if exe.exists() else "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art"),
           "--workers", "1"]
    log = open(root / "server.log", "w")
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    except OSError as exc:
        require_service("mlflow", f"`mlflow server` could not start: {exc}")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        tail = (root / "server.log").read_text()[-800:]
        require_service("mlflow", f"`mlflow server` did not answer on {url} within {START_SECONDS} s: {tail}")
    service_used("mlflow")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_an_unreachable_server_is_refused_before_training(tmp_path):
    pytest.importorskip("mlflow")
    dead = f"http://127.0.0.1:{_free_port()}"
    for call in (lambda: tw.fit("iris", save=False, verbose=False, sets=["train.epochs=1", f"track.mlflow={dead}"]),
                 lambda: tw.tune("iris", trials=1, out=tmp_path / "s", verbose=False,
                                 sets=["train.epochs=1", f"track.mlflow={dead}"])):
        t0 = time.monotonic()
        with pytest.raises(tw.UserError, match="does not answer"):
            call()
        assert time.monotonic() - t0 < 60          # not MLflow's minutes of retries
    assert not (tmp_path / "s" / "trial-0000").exists()


def test_fit_logs_spec_epochs_metrics_and_artifacts(server, tmp_path):
    from mlflow import MlflowClient
    run = tw.fit("iris", out=tmp_path / "run", verbose=False,
                 sets=["train.epochs=4", f"track.mlflow={server}", "track.experiment=fit-test",
                       "train.calibrate=temperature"])    # a temperature to log (auto declines on cross-fitted iris)
    client = MlflowClient(server)
    exp = client.get_experiment_by_name("fit-test")
    (logged,) = client.search_runs([exp.experiment_id])
    assert logged.info.status == "FINISHED"
    params = logged.data.params
    assert params["train.epochs"] == "4" and params["optim.name"] == "adam"
    assert params["model.hidden"] == "auto" and params["architecture.hidden"] == str(run.arch["hidden"])
    assert float(params["optim.lr"]) == pytest.approx(run.spec.optim.lr)
    history = client.get_metric_history(logged.info.run_id, "val_loss")
    assert [m.step for m in history] == list(run.history["epoch"])
    assert [m.value for m in history] == pytest.approx(list(run.history["val_loss"]))
    assert logged.data.metrics["final/test_accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert logged.data.metrics["calibration/temperature"] == pytest.approx(run.metrics["calibration"]["temperature"])
    for f in run.diagnosis["findings"]:
        assert logged.data.tags[f"doctor.{f['id']}"].startswith(f["severity"])
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"model.json", "model.safetensors", "spec.yaml", "history.csv", "metrics.json"} <= artifacts
    local = client.download_artifacts(logged.info.run_id, "model.json", str(tmp_path))
    assert Path(local).read_bytes() == (tmp_path / "run" / "model.json").read_bytes()


def test_tune_logs_a_parent_per_study_and_a_child_per_trial(server, tmp_path):
    from mlflow import MlflowClient
    result = tw.tune("iris", trials=4, sampler="random", out=tmp_path / "study", verbose=False,
                     sets=["train.epochs=2", f"track.mlflow={server}", "track.experiment=tune-test"])
    client = MlflowClient(server)
    exp = client.get_experiment_by_name("tune-test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4          # trials are not logged twice by their own fit
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.data.metrics["best_trial"] == result.best_trial
    assert parent.data.metrics["best_value"] == pytest.approx(result.best_value)
    assert "trials.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    trials = result.trials.set_index("trial")
    for child in children:
        n = int(child.data.tags["trainwell.trial"])
        for path in (p.path for p in result.space):      # the trial's searched values
            assert child.data.params[f"search.{path}"] == str(trials.loc[n, path])
        assert child.data.params["optim.lr"] == str(trials.loc[n, "optim.lr"])    # and the spec they made
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert len(history) == int(trials.loc[n, "epochs"])

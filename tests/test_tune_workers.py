"""Several workers on one study: SQLite on one machine, PostgreSQL, and a worker killed mid-trial."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

import trainwell as tw
from conftest import require_service, service_used
from trainwell.tune.storage import make_storage

SETS = ["train.epochs=8", "model.hidden=[16]", "stop.patience=100"]
# digits, 60 epochs: the eight trials together outlast the second worker's start-up (~5 s), so both take part
SLOW_SETS = ["train.epochs=60", "stop.patience=100"]


def _states(study):
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_two_workers_sqlite_grid_no_duplicates(tmp_path):
    grid = {"optim.lr": [0.003, 0.03], "model.units": [8, 16], "train.batch_size": [32, 64]}
    res = tw.tune("digits", space=grid, sampler="grid", trials=100, workers=2, threads=1, sets=SLOW_SETS,
                  out=tmp_path, verbose=False)
    t = res.trials
    assert len(t) == 8 and (t["state"] == "complete").all(), t
    combos = list(zip(t["optim.lr"], t["model.units"], t["train.batch_size"]))
    assert len(set(combos)) == 8                                   # every point once, none twice
    assert set(t["worker"]) == {0, 1}                              # both processes ran trials
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tmp_path}/study.db")
    assert _states(study).count("COMPLETE") == 8
    # a worker that asked for a trial as the other took the last grid point created one more: it is
    # marked skipped (tune/search.py Objective) and trains nothing; nothing else may be left over
    extra = [t for t in study.trials if t.state.name != "COMPLETE"]
    assert all("skipped" in t.user_attrs for t in extra) and len(extra) <= 1, [t.user_attrs for t in extra]


@pytest.mark.slow
def test_two_workers_share_the_budget(tmp_path):
    space = {"optim.lr": {"log": [1e-3, 1e-1]}, "model.units": {"int": [4, 32]}}
    res = tw.tune("iris", space=space, sampler="tpe", trials=7, workers=2, threads=1, sets=SETS,
                  out=tmp_path, verbose=False)
    assert len(res.trials) == 7 and (res.trials["state"] == "complete").all()
    # the same command again (e.g. on another machine) finds the budget used up and runs nothing new
    res2 = tw.tune("iris", space=space, sampler="tpe", trials=7, threads=1, sets=SETS, out=tmp_path, verbose=False)
    assert list(res2.trials["trial"]) == list(res.trials["trial"])


@pytest.mark.slow
def test_killed_worker_trial_is_retried(tmp_path):
    """SIGKILL a worker mid-trial: its trial goes stale (heartbeat 1 s), is failed and re-run by another."""
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: [0.003]\nmodel.units: [32, 48, 64]\n")
    study_dir = tmp_path / "study"
    sets = ["train.epochs=150", "stop.patience=150"]     # about a second a trial: the kill lands inside one
    args = ["digits", "--space", str(space), "--sampler", "grid", "--trials", "3", "--heartbeat", "1",
            "--threads", "1", "--out", str(study_dir), *[x for s in sets for x in ("--set", s)]]
    victim = subprocess.Popen([sys.executable, "-m", "trainwell", "tune", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        storage = None
        deadline = time.time() + 120
        running = None
        while time.time() < deadline and running is None:
            time.sleep(0.1)
            try:
                storage = storage or make_storage(f"sqlite:///{study_dir}/study.db", heartbeat=None)
                trials = optuna.load_study(study_name="digits", storage=storage).get_trials(deepcopy=False)
            except Exception:      # the study does not exist yet
                continue
            running = next((t for t in trials if t.state.name == "RUNNING" and "values" in t.user_attrs), None)
        assert running is not None, "the first worker never started a trial"
        time.sleep(0.5)            # let the heartbeat thread record at least once
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    # the trial the worker was in when it died (the one seen starting may have finished during the sleep)
    in_flight = [t for t in optuna.load_study(study_name="digits", storage=storage).get_trials(deepcopy=False)
                 if t.state.name == "RUNNING"]
    assert len(in_flight) == 1, "the worker was killed between trials"
    running = in_flight[0]
    res = tw.tune("digits", space=str(space), sampler="grid", trials=3, heartbeat=1, threads=1, out=study_dir,
                  sets=sets, verbose=False)
    study = optuna.load_study(study_name="digits", storage=storage)
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [running.number]                 # the killed trial ...
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == running.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"          # ... was re-run to completion
    assert retry[0].params == running.params                              # with the same grid point
    done = res.trials[res.trials["state"] == "complete"]
    assert len(done) == 3 and done["model.units"].nunique() == 3
    note = res.trials.loc[res.trials["trial"] == running.number, "note"].item()
    assert "retried as trial" in note


def _pg_url() -> str:
    url = os.environ.get("TRAINWELL_TEST_PG_URL")
    if not url:
        require_service("postgres", "TRAINWELL_TEST_PG_URL is not set (.ci/run starts a server with .ci/postgres.sh)")
    try:
        import sqlalchemy as sa

        from trainwell.tune.storage import _driver
        with sa.create_engine(_driver(url)).connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001
        require_service("postgres", f"no server at TRAINWELL_TEST_PG_URL: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}")
    service_used("postgres")
    return url


@pytest.mark.slow
def test_two_workers_on_postgresql(tmp_path):
    url = _pg_url()
    name = f"pg-{uuid.uuid4().hex[:8]}"
    grid = {"optim.lr": [0.003, 0.03], "model.units": [8, 16], "train.batch_size": [32, 64]}
    res = tw.tune("digits", space=grid, sampler="grid", trials=100, workers=2, storage=url, study=name, threads=1,
                  sets=SLOW_SETS, out=tmp_path, verbose=False)
    t = res.trials
    assert len(t) == 8 and (t["state"] == "complete").all(), t
    assert len(set(zip(t["optim.lr"], t["model.units"], t["train.batch_size"]))) == 8
    assert set(t["worker"]) == {0, 1}
    study = optuna.load_study(study_name=name, storage=make_storage(url, heartbeat=None))
    # a worker may create one trial while the other takes the last grid point: it is marked failed and
    # "skipped", never run (tune/search.py, Objective); every other trial is one of the 8 grid points
    skipped = [s for s in study.trials if "skipped" in s.user_attrs]
    assert all(s.state == optuna.trial.TrialState.FAIL and "run_dir" not in s.user_attrs for s in skipped)
    assert len(study.trials) - len(skipped) == 8 and len(skipped) <= 1
    optuna.delete_study(study_name=name, storage=make_storage(url, heartbeat=None))

"""trainwell.tune end to end on tiny data: grid coverage, results files, resume, Hyperband pruning."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import trainwell as tw

FAST = ["train.epochs=6", "model.hidden=[16]", "train.batch_size=32"]


def test_grid_visits_every_combination_once(tmp_path):
    space = {"optim.lr": [0.003, 0.03], "model.units": [8, 16], "train.batch_size": [32, 64]}
    res = tw.tune("iris", space=space, sampler="grid", trials=50, sets=FAST, out=tmp_path, threads=1, verbose=False)
    t = res.trials
    assert len(t) == 8 and (t["state"] == "complete").all()          # budget capped at the grid size
    combos = set(zip(t["optim.lr"], t["model.units"], t["train.batch_size"]))
    assert combos == {(a, b, c) for a in (0.003, 0.03) for b in (8, 16) for c in (32, 64)}
    # each trial really trained with its configuration
    spec = tw.Spec.from_yaml(tmp_path / t.iloc[0]["run_dir"] / "spec.yaml")
    assert spec.model.hidden == [int(t.iloc[0]["model.units"])]
    assert spec.optim.lr == pytest.approx(t.iloc[0]["optim.lr"])


def test_results_files_best_and_resume(tmp_path):
    space = {"optim.lr": {"log": [1e-3, 1e-1]}, "model.hidden": {"choice": [[8], [16, 8]]}}
    res = tw.tune("iris", space=space, sampler="random", trials=3, sets=FAST, out=tmp_path, threads=1, verbose=False)
    assert res.objective == "val_accuracy" and res.direction == "maximize"
    csv = pd.read_csv(tmp_path / "trials.csv")
    done = csv[csv["state"] == "complete"]
    assert list(done["val_accuracy"]) == sorted(done["val_accuracy"], reverse=True)   # best first
    assert res.best_value == pytest.approx(done["val_accuracy"].max())
    assert res.best_trial == int(done.iloc[0]["trial"])
    assert {"accuracy", "loss"} <= set(res.test)                       # the best trial, once on test
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["trial"] == res.best_trial and "accuracy" in best["test"]
    assert (tmp_path / "best_spec.yaml").exists()
    for d in csv["run_dir"]:
        assert (tmp_path / d / "metrics.json").exists() and (tmp_path / d / "history.csv").exists()
    page = (tmp_path / "study.html").read_text()
    assert page.count("data:image/png;base64,") >= 3                  # history, importances, parallel coords
    assert not re.search(r"""(src|href)=["']?(http|//|[a-z_./-]+\.(png|js|css))""", page)   # self-contained
    assert "Parameter importances" in page and "Parallel coordinates" in page
    # running again resumes the study up to the new total
    res2 = tw.tune("iris", space=space, sampler="random", trials=5, sets=FAST, out=tmp_path, threads=1, verbose=False)
    assert len(res2.trials) == 5 and set(res.trials["trial"]) < set(res2.trials["trial"])


def test_regression_objective_is_val_r2(tmp_path):
    res = tw.tune("diabetes", space={"optim.lr": [0.01]}, sampler="grid", trials=1, out=tmp_path,
                  sets=["train.epochs=3", "model.hidden=[8]"], threads=1, verbose=False)
    assert res.objective == "val_r2" and "r2" in res.test


def test_hyperband_prunes_clearly_bad_trials_early(tmp_path):
    """Half the trials use a hopeless lr; Hyperband stops (most of) them after fewer epochs."""
    space = {"optim.lr": {"choice": [1e-7, 3e-2]}}
    res = tw.tune("iris", space=space, sampler="random", pruner="hyperband", trials=12, seed=3, out=tmp_path,
                  sets=["train.epochs=27", "model.hidden=[16]", "stop.patience=100", "train.batch_size=32"],
                  threads=1, verbose=False)
    t = res.trials
    pruned, complete = t[t["state"] == "pruned"], t[t["state"] == "complete"]
    assert len(pruned) >= 2, t[["trial", "state", "optim.lr", "epochs"]]
    assert pruned["epochs"].max() < 27 and (complete["epochs"] == 27).all()
    assert pruned["epochs"].mean() < complete["epochs"].mean()
    assert (pruned["optim.lr"] == 1e-7).mean() >= 0.75                 # it is the bad ones that stop
    assert res.best_params["optim.lr"] == 3e-2


def test_cli_tune_writes_table_and_csv(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {log: [1e-3, 1e-1]}\nmodel.units: {int: [4, 16]}\n")
    r = cli("tune", "iris", "--space", str(space), "--trials", "2", "--sampler", "tpe", "--pruner", "median",
            "--set", "train.epochs=4", "--out", str(tmp_path / "study"), "--seed", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "best trial" in r.stdout and "test accuracy" in r.stdout
    assert len(pd.read_csv(tmp_path / "study" / "trials.csv")) == 2


@pytest.mark.parametrize("sampler", ["cmaes", "nsga2"])
def test_other_samplers_run(sampler, tmp_path):
    space = {"optim.lr": {"log": [1e-3, 1e-1]}, "model.units": {"int": [4, 16]}}
    res = tw.tune("iris", space=space, sampler=sampler, trials=3, sets=["train.epochs=3"], out=tmp_path,
                  threads=1, verbose=False)
    assert len(res.trials) == 3 and res.best_trial is not None
    assert res.trials["optim.lr"].between(1e-3, 1e-1).all()

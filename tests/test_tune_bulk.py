"""Population rounds write their trials in one transaction: the same stored trials as optuna's add_trials."""
from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from trainwell.tune.bulk import add_trials

DISTS = {"lr": FloatDistribution(1e-7, 1.0, log=True), "units": IntDistribution(8, 64, log=True),
         "act": CategoricalDistribution(["relu", "tanh", None]), "drop": FloatDistribution(0.0, 0.5)}


def _trials():
    out = []
    for i in range(6):
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][i % 3]
        out.append(create_trial(
            state=state, value=0.5 + i / 100 if state == TrialState.COMPLETE else None,
            params={"lr": 10 ** -(i + 1), "units": 8 + i, "act": ["relu", "tanh", None][i % 3], "drop": i / 20},
            distributions=DISTS,
            user_attrs={"run_dir": f"trial-{i:04d}", "values": {"optim.lr": 10 ** -(i + 1), "nested": [1, {"a": None}]},
                        "seconds": 1.5 * i},
            system_attrs={"retry_history": [i]} if i == 2 else {},
            intermediate_values={e: (math.inf if (i, e) == (1, 2) else 0.1 * e + i) for e in range(1, 6)}))
    return out


def _load(url, name="s"):
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def _fields(t):
    return (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs,
            t.intermediate_values, t.datetime_start, t.datetime_complete)


def test_bulk_write_equals_optuna_add_trials(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    urls = {k: f"sqlite:///{tmp_path / k}.db" for k in ("bulk", "optuna")}
    studies = {k: optuna.create_study(study_name="s", storage=u, direction="maximize") for k, u in urls.items()}
    for s in studies.values():      # a trial already in the study: numbers continue after it
        s.optimize(lambda t: 0.0 * t.suggest_float("lr", 1e-7, 1.0, log=True), n_trials=1)
    trials = _trials()
    assert add_trials(studies["bulk"], trials) == "bulk"
    studies["optuna"].add_trials(trials)
    a, b = _load(urls["bulk"]), _load(urls["optuna"])
    assert len(a) == len(b) == 7
    assert [t.number for t in a] == list(range(7))
    for x, y in zip(a[1:], b[1:]):
        assert _fields(x) == _fields(y)
    assert [t.number for t in studies["bulk"].get_trials(deepcopy=False)] == list(range(7))   # the same study object sees them
    assert studies["bulk"].best_value == pytest.approx(max(t.value for t in trials if t.value is not None))


def test_other_storages_and_unfinished_trials_take_optunas_path(tmp_path):
    mem = optuna.create_study()
    assert add_trials(mem, _trials()[:2]) == "optuna"
    assert len(mem.get_trials()) == 2
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/x.db")
    running = create_trial(state=TrialState.WAITING, params={}, distributions={})
    assert add_trials(study, [_trials()[0], running]) == "optuna"      # rolled back, then written by optuna
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.WAITING]


def test_bulk_write_on_postgresql():
    """The same comparison on PostgreSQL (the multi-machine storage), when .ci/run started a server."""
    import uuid

    from test_tune_workers import _pg_url

    from trainwell.tune.storage import make_storage
    url = _pg_url()
    storage = make_storage(url, heartbeat=None)
    names = {k: f"bulk-{k}-{uuid.uuid4().hex[:8]}" for k in ("bulk", "optuna")}
    try:
        studies = {k: optuna.create_study(study_name=n, storage=storage, direction="maximize")
                   for k, n in names.items()}
        trials = _trials()
        assert add_trials(studies["bulk"], trials) == "bulk"
        studies["optuna"].add_trials(trials)
        a, b = _load(storage, names["bulk"]), _load(storage, names["optuna"])
        assert len(a) == len(b) == 6
        for x, y in zip(a, b):
            assert _fields(x) == _fields(y)
    finally:
        for n in names.values():
            try:
                optuna.delete_study(study_name=n, storage=storage)
            except KeyError:
                pass

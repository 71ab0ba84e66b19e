"""Search spaces: parsing, validation, and the distributions samplers draw from (no training)."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from scipy import stats

from trainwell.core.errors import UserError
from trainwell.core.spec import Spec
from trainwell.tune.space import apply_values, default_space, parse_space

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = {
    "optim.lr": {"log": [1e-5, 1]},
    "optim.beta1": {"one_minus_log": [1e-4, 1e-1]},
    "model.units": {"int": [16, 512], "log": True},
    "model.layers": {"int": [1, 3]},
    "model.dropout": {"float": [0.0, 0.5]},
    "train.batch_size": {"choice": [32, 64, 128]},
}


def _draw(sampler, space, n, objective=None):
    """Sample the space directly with a cheap objective; returns the list of value dicts."""
    study = optuna.create_study(sampler=sampler, direction="maximize")
    seen = []

    def f(trial):
        v = space.suggest(trial)
        seen.append(v)
        return objective(v) if objective else 0.0

    study.optimize(f, n_trials=n)
    return seen, study


def test_parse_kinds_and_yaml_scientific_notation(tmp_path):
    p = tmp_path / "space.yaml"
    p.write_text("optim.lr: {log: [1e-5, 1]}\noptim.beta1: {one_minus_log: [1e-4, 1e-1]}\n"
                 "model.hidden: {choice: [[64], [128, 64]]}\noptim.name: [adam, nadam]\n")
    space = parse_space(p)
    kinds = {q.path: q.kind for q in space}
    assert kinds == {"optim.lr": "log", "optim.beta1": "one_minus_log", "model.hidden": "choice",
                     "optim.name": "grid"}
    lr = space.params[0]
    assert (lr.low, lr.high) == (1e-5, 1.0)     # "1e-5" is a string in YAML 1.1: read as a number


@pytest.mark.parametrize("entry, words", [
    ({"optim.lrr": {"log": [1e-5, 1]}}, 'Did you mean "optim.lr"'),
    ({"optimm.lr": {"log": [1e-5, 1]}}, 'Did you mean "optim"'),
    ({"optim.lr": {"log": [1, 1e-5]}}, "below"),
    ({"optim.lr": {"log": [0, 1]}}, "low > 0"),
    ({"optim.beta1": {"one_minus_log": [1e-4, 2]}}, "(0, 1]"),
    ({"model.units": {"int": [1.5, 4]}}, "integer"),
    ({"model.dropout": [0.1, 1.5]}, "model.dropout"),
    ({"optim.lr": {"lgo": [1e-5, 1]}}, 'Did you mean "log"'),
    ({"optim.lr": {"choice": []}}, "non-empty"),
    ({"optim.lr": 0.1}, "not a range"),
])
def test_invalid_space_is_a_user_error(entry, words):
    with pytest.raises(UserError) as exc:
        parse_space(entry)
    assert words in str(exc.value)


def test_grid_needs_discrete_values():
    with pytest.raises(UserError, match="Grid search needs discrete values"):
        parse_space({"optim.lr": {"log": [1e-5, 1]}}, sampler="grid")
    space = parse_space({"optim.lr": [1e-3, 1e-2], "model.layers": {"int": [1, 3]}}, sampler="grid")
    assert space.grid_size() == 6


def test_default_space_follows_s3_priorities():
    assert list(default_space(Spec())) == ["optim.lr", "optim.beta1", "train.batch_size", "model.units",
                                           "model.layers"]
    sgd = Spec.build(sets=["optim.name=momentum"])
    assert list(default_space(sgd))[:2] == ["optim.lr", "optim.momentum"]
    parse_space(None, sgd)                      # the default space is itself valid
    parse_space(None, Spec(), sampler="grid")


def test_units_and_layers_make_hidden():
    tree = apply_values(Spec().to_dict(), {"model.units": 48, "model.layers": 3, "optim.lr": 0.01})
    spec = Spec.from_dict(tree)
    assert spec.model.hidden == [48, 48, 48] and spec.optim.lr == 0.01


def test_random_sampler_distributions_ks():
    """log10(lr) and log10(1 - beta) are uniform on their exponent ranges; all draws in bounds."""
    space = parse_space(SPACE)
    draws, study = _draw(optuna.samplers.RandomSampler(seed=0), space, 1500)
    lr = np.array([d["optim.lr"] for d in draws])
    beta = np.array([d["optim.beta1"] for d in draws])
    assert lr.min() >= 1e-5 and lr.max() <= 1
    assert beta.min() >= 1 - 1e-1 - 1e-12 and beta.max() <= 1 - 1e-4 + 1e-12
    p_lr = stats.kstest(np.log10(lr), stats.uniform(loc=-5, scale=5).cdf).pvalue
    p_beta = stats.kstest(np.log10(1 - beta), stats.uniform(loc=-4, scale=3).cdf).pvalue
    assert p_lr > 0.01 and p_beta > 0.01, (p_lr, p_beta)
    # and they are clearly *not* uniform on the raw scale
    assert stats.kstest(lr, stats.uniform(loc=1e-5, scale=1).cdf).pvalue < 1e-6
    assert stats.kstest(beta, stats.uniform(loc=0.9, scale=0.0999).cdf).pvalue < 1e-6
    units = np.array([d["model.units"] for d in draws])
    assert units.min() >= 16 and units.max() <= 512 and np.median(units) < 150   # log-uniform median ~ 90
    assert {d["model.layers"] for d in draws} == {1, 2, 3}
    assert {d["train.batch_size"] for d in draws} == {32, 64, 128}
    dist = study.trials[0].distributions
    assert dist["optim.lr"].log and dist["1-optim.beta1"].log and not dist["model.dropout"].log


def test_tpe_stays_in_bounds_and_searches_in_log_space():
    space = parse_space(SPACE)

    def peak(v):   # best at lr = 1e-3, beta = 1 - 1e-2
        return -(math.log10(v["optim.lr"]) + 3) ** 2 - (math.log10(1 - v["optim.beta1"]) + 2) ** 2

    draws, study = _draw(optuna.samplers.TPESampler(seed=1, n_startup_trials=10), space, 80, peak)
    lr = np.array([d["optim.lr"] for d in draws])
    beta = np.array([d["optim.beta1"] for d in draws])
    assert lr.min() >= 1e-5 and lr.max() <= 1 and beta.min() >= 0.9 and beta.max() <= 1 - 1e-4
    late = np.log10(lr[-30:])
    assert abs(np.median(late) + 3) < 0.75          # homes in on the peak in exponent space
    assert abs(np.median(np.log10(1 - beta[-30:])) + 2) < 0.75
    for t in study.trials:
        assert t.distributions["optim.lr"].log and t.distributions["1-optim.beta1"].log


def test_cli_bad_space_exits_2(cli, tmp_path):
    p = tmp_path / "space.yaml"
    p.write_text("optim.lrr: {log: [1e-5, 1]}\n")
    r = cli("tune", "iris", "--space", str(p), "--trials", "2", "--out", str(tmp_path / "s"))
    assert r.returncode == 2, r.stderr
    assert 'Did you mean "optim.lr"' in r.stderr and "Traceback" not in r.stderr

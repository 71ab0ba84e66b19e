"""RAdam end to end: one registry entry (optim/optimizers.py) gives the formula, the CLI, populations and the list.

Its population update is checked against torch.optim.RAdam step by step with every other stacked update
(tests/test_optimizers.py, test_stacked_update_matches_torch_step_by_step) and over whole training runs
(tests/test_population.py, test_population_optimizers_match_torch).

The formula is Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR), Algorithm 2,
written out in numpy in tests/test_optimizers.py (``radam``); docs/practices/optimizers.md states it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainwell.optim.optimizers import make_optimizer
from trainwell.core.spec import OptimSpec

from test_optimizers import W0, radam

GRADS = np.random.default_rng(1).normal(size=(12, 4)) * np.array([1.0, 0.1, 3.0, 0.01])
SPEC = OptimSpec(name="radam", lr=0.05, beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.01)


def test_rho_t_crosses_the_threshold_within_the_test():
    """beta2 = 0.9: rho_inf = 19, rho_t = 1 at t = 1 and first above 5 at t = 6, so 12 steps check both branches."""
    b2 = SPEC.beta2
    rho = [2 / (1 - b2) - 1 - 2 * t * b2 ** t / (1 - b2 ** t) for t in range(1, 13)]
    assert rho[0] == pytest.approx(1.0) and max(rho[:5]) < 5 < min(rho[5:])


def test_radam_steps_match_the_formula_and_torch():
    """Every step of make_optimizer's RAdam equals Liu et al.'s update (numpy, float64) and torch.optim.RAdam."""
    p = torch.nn.Parameter(torch.tensor(W0))
    ref = torch.nn.Parameter(torch.tensor(W0))
    ours = make_optimizer([p], SPEC)
    theirs = torch.optim.RAdam([ref], lr=SPEC.lr, betas=(SPEC.beta1, SPEC.beta2), eps=SPEC.eps,
                               weight_decay=SPEC.weight_decay)
    assert isinstance(ours, torch.optim.RAdam)
    for t in range(1, len(GRADS) + 1):
        p.grad, ref.grad = torch.tensor(GRADS[t - 1]), torch.tensor(GRADS[t - 1])
        ours.step()
        theirs.step()
        want = radam(SPEC, t, grads=GRADS)
        np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-10, atol=0, err_msg=f"step {t}")
        np.testing.assert_allclose(ref.detach().numpy(), want, rtol=1e-10, atol=0, err_msg=f"torch step {t}")


def test_cli_fits_with_radam_and_lists_it(cli, tmp_path):
    res = cli("fit", "iris", "--set", "optim.name=radam", "--set", "optim.lr=0.01", "--set", "train.epochs=30",
              "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert "name: radam" in (tmp_path / "run" / "spec.yaml").read_text()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["accuracy"] > 0.6      # 3 classes (chance 1/3): RAdam trained the network
    res = cli("list")
    assert res.returncode == 0 and "radam" in res.stdout

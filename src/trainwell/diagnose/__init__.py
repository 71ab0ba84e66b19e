"""The training doctor: monitors (hooks), findings with remedies, the LR range test, the overfit check."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwell.core.callable_package import make_callable
from trainwell.diagnose.doctor import bias_variance, diagnose_parts
from trainwell.diagnose.lr_finder import LRFindResult, lr_find, lr_range_test
from trainwell.diagnose.monitors import Monitor
from trainwell.diagnose.overfit import overfit_check
from trainwell.diagnose.session import diagnose_run
from trainwell.core.errors import check_range
from trainwell.run import load


def diagnose(run: Any, bayes_error: float | None = None) -> dict:
    """Findings for a Run or a run directory: ``{"findings": [...], "bias_variance": {...}}``.
    ``bayes_error``: an estimate of the error no model can beat (e.g. human error), for the bias verdict."""
    if bayes_error is not None:
        check_range("bayes_error", bayes_error, 0.0, 0.999, meaning="the error rate no model can beat, as a fraction")
    if isinstance(run, (str, Path)):
        run = load(run)
    return diagnose_run(run, bayes_error)


__all__ = ["Monitor", "bias_variance", "diagnose", "diagnose_parts", "diagnose_run", "lr_find", "lr_range_test",
           "LRFindResult", "overfit_check"]

make_callable(__name__, diagnose)   # trainwell.diagnose(...) even once a submodule was imported (core/callable_package.py)

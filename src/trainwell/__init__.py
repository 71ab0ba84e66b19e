"""trainwell: train neural networks well — the field's practices built in, correct, explained and fast.

Public API only; see docs/ for the guide.
"""
from trainwell.api import fit
from trainwell.diagnose import diagnose, lr_find
from trainwell.errors import UserError
from trainwell.run import Run, load
from trainwell.spec import Spec
from trainwell.tune import TuneResult, tune

__all__ = ["fit", "lr_find", "diagnose", "load", "Run", "Spec", "Classifier", "Regressor", "UserError", "tune", "TuneResult"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``trainwell.Classifier`` / ``Regressor`` import scikit-learn only when asked for (import time)."""
    if name in ("Classifier", "Regressor"):
        from trainwell import sklearn as _sk
        return getattr(_sk, name)
    raise AttributeError(f"module 'trainwell' has no attribute {name!r}")

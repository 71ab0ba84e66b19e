"""trainwell: train neural networks well — the field's practices built in, correct, explained and fast.

Public API only; see docs/ for the guide.

The names below are imported on first use (PEP 562 module ``__getattr__``), so ``import trainwell``
and ``trainwell --help`` do not pay for torch, pandas and scikit-learn (about 2 s on two cores,
docs/performance.md "Start-up"); ``trainwell.fit`` imports them when it is first looked up.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from trainwell.core.errors import UserError

if TYPE_CHECKING:   # for type checkers and IDEs: the same names, resolved eagerly
    from trainwell.api import fit
    from trainwell.diagnose import diagnose, lr_find
    from trainwell.run import Run, load
    from trainwell.sklearn import Classifier, Regressor
    from trainwell.core.spec import Spec
    from trainwell.tune import TuneResult, tune

__all__ = ["fit", "lr_find", "diagnose", "load", "Run", "Spec", "Classifier", "Regressor", "UserError", "tune", "TuneResult"]
__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {"fit": "trainwell.api", "lr_find": "trainwell.diagnose", "diagnose": "trainwell.diagnose",
         "load": "trainwell.run", "Run": "trainwell.run", "Spec": "trainwell.core.spec",
         "Classifier": "trainwell.sklearn", "Regressor": "trainwell.sklearn",
         "tune": "trainwell.tune", "TuneResult": "trainwell.tune"}


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use and cache the name here."""
    if name not in _LAZY:
        raise AttributeError(f"module 'trainwell' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])

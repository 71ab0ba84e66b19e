"""Hyperparameter search: spaces keyed by spec paths, optuna samplers and pruners, shared studies."""
from trainwell.core.callable_package import make_callable
from trainwell.tune.results import TuneResult
from trainwell.tune.search import SAMPLERS, PRUNERS, tune
from trainwell.tune.space import Param, Space, parse_space

__all__ = ["tune", "TuneResult", "Space", "Param", "parse_space", "SAMPLERS", "PRUNERS"]

make_callable(__name__, tune)   # trainwell.tune(...) even once trainwell.tune.space was imported (core/callable_package.py)

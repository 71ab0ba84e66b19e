"""Hyperparameter search: spaces keyed by spec paths, optuna samplers and pruners, shared studies."""
from trainwell.tune.search import SAMPLERS, PRUNERS, TuneResult, tune
from trainwell.tune.space import Param, Space, parse_space

__all__ = ["tune", "TuneResult", "Space", "Param", "parse_space", "SAMPLERS", "PRUNERS"]

"""scikit-learn estimators: ``Classifier`` and ``Regressor`` for Pipelines and GridSearchCV.

They follow scikit-learn's conventions (parameters stored verbatim in
``__init__``, fitted attributes ending in ``_``, input validation through
``validate_data``) and train with trainwell's defaults: scaling, matched init,
Adam, early stopping on a held-out validation fraction with best weights
restored. No test split is held out: scoring is the caller's job here.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from trainwell.run import Run


class _Base(BaseEstimator):
    _task = "auto"

    def __init__(self, hidden: Any = "auto", activation: str = "relu", epochs: int = 200,
                 batch_size: Any = 32, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 dropout: float = 0.0, batchnorm: bool = False, patience: int = 10,
                 validation_fraction: float = 0.1, early_stopping: bool = True, random_state: int | None = 0,
                 device: str = "cpu", verbose: bool = False):
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _spec(self, task: str) -> dict:
        hidden = self.hidden if isinstance(self.hidden, str) else [int(h) for h in self.hidden]
        vf = float(self.validation_fraction)
        return {
            "task": task,
            "data": {"split": [1.0 - vf, vf, 0.0]},
            "model": {"hidden": hidden, "activation": self.activation, "dropout": self.dropout,
                      "batchnorm": self.batchnorm},
            "optim": {"name": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay},
            "train": {"epochs": self.epochs, "batch_size": self.batch_size, "device": self.device,
                      "seed": 0 if self.random_state is None else int(self.random_state),
                      "progress": False, "monitor": False},
            "stop": {"enabled": self.early_stopping, "patience": self.patience},
        }

    def _fit(self, X: Any, y: Any, task: str) -> "Run":
        from trainwell.api import fit
        self.run_ = fit(X=X, y=y, spec=self._spec(task), save=False, verbose=self.verbose)
        self.history_ = self.run_.history
        self.best_epoch_ = self.run_.metrics.get("best_epoch")
        return self.run_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class Classifier(ClassifierMixin, _Base):
    """Neural-network classifier (binary or multiclass) with trainwell's defaults.

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> Classifier(hidden=(16,), epochs=50).fit(X, y).score(X, y) > 0.8
    True
    """

    def fit(self, X: Any, y: Any) -> "Classifier":
        X, y = validate_data(self, X, y, dtype=np.float32)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"Classifier needs samples of at least 2 classes in the data; got 1 class "
                             f"({self.classes_[0]!r}).")
        task = "binary" if len(self.classes_) == 2 else "multiclass"
        self._fit(X, y, task)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "run_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self.run_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


class Regressor(RegressorMixin, _Base):
    """Neural-network regressor (one or several targets) with trainwell's defaults."""

    def fit(self, X: Any, y: Any) -> "Regressor":
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True)
        self._fit(X, np.asarray(y, dtype=np.float64), "regression")
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "run_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return np.asarray(self.run_.predict(X), dtype=np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

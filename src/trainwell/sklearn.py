"""scikit-learn estimators: ``Classifier`` and ``Regressor`` for Pipelines and GridSearchCV.

They follow scikit-learn's conventions (parameters stored verbatim in
``__init__``, fitted attributes ending in ``_``, input validation through
``validate_data``) and train with trainwell's defaults: scaling, matched init,
Adam, early stopping on a held-out validation fraction with best weights
restored (``early_stopping=False``: every epoch, the last weights kept, as scikit-learn's MLP).
No test split is held out: scoring is the caller's job here.

Raw tables work as they do for ``trainwell fit``: a pandas DataFrame with text, boolean or date
columns and missing values (NaN, None) is typed and encoded column by column (data/columns.py),
missing numbers are filled from the training split with missing indicators (data/impute.py),
and that preprocessing is stored with the model, so ``predict`` takes the same raw columns (by
name). Numeric arrays may hold NaN too (``allow_nan``); infinite values are refused.

``sample_weight`` resamples the training (and validation) rows in proportion to the weights
(systematic sampling: each row appears about weight / mean weight times, zero-weight rows not
at all), so the expected loss of an epoch is the weighted loss. It is not exactly equivalent to
repeating rows (the split and the mini-batches differ), as for scikit-learn's own MLP.
``class_weight`` ("balanced" or {label: weight}, Classifier) weights the loss by class instead
(data/weights.py). ``module=`` trains your own ``torch.nn.Module`` class, built with ``module_kwargs``
(docs/topologies/custom.md).
``device`` is "auto" (a GPU when there is one), as for ``trainwell.fit``.

Fitted attributes, named as scikit-learn's MLP names them: ``n_iter_`` (epochs run), ``loss_curve_``
(training loss per epoch), ``validation_scores_`` (validation accuracy or R^2 per epoch), plus
``history_`` (the whole per-epoch table), ``best_epoch_`` and ``run_`` (the trainwell Run).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted, column_or_1d, validate_data

from trainwell.api import fit as fit_run
from trainwell.run import Run
from trainwell.train.threads import threads_for

WEIGHT = "__trainwell_sample_weight__"


def _raw_table(X: Any) -> bool:
    """A DataFrame that needs column typing: some column is not plain numbers."""
    return isinstance(X, pd.DataFrame) and not all(
        pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in X.dtypes)


class _Base(BaseEstimator):
    _task = "auto"

    def __init__(self, hidden: Any = "auto", activation: str = "relu", epochs: Any = "auto",
                 batch_size: Any = "auto", optimizer: str = "adam", lr: float | None = None,
                 weight_decay: float = 0.0, dropout: float = 0.0, batchnorm: bool = False, patience: Any = "auto",
                 validation_fraction: float = 0.1, early_stopping: bool = True, random_state: int | None = 0,
                 device: str = "auto", verbose: bool = False, ensemble: Any = "auto", report: Any = False,
                 class_weight: Any = None, module: Any = None, module_kwargs: dict | None = None,
                 crossfit: Any = "auto"):
        self.hidden = hidden
        self.class_weight = class_weight
        self.module = module
        self.module_kwargs = module_kwargs
        self.report = report
        self.ensemble = ensemble
        self.crossfit = crossfit
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
            "data": {"split": [1.0 - vf, vf, 0.0], **self._class_weight()},
            "model": {"hidden": hidden, "activation": self.activation, "dropout": self.dropout,
                      "batchnorm": self.batchnorm, "ensemble": self.ensemble, "crossfit": self.crossfit},
            # lr None: trainwell's default, 1e-3 at batch 32, scaled with the auto batch size (train/batch_size.py)
            "optim": {"name": self.optimizer, "weight_decay": self.weight_decay,
                      **({} if self.lr is None else {"lr": self.lr})},
            "train": {"epochs": self.epochs, "batch_size": self.batch_size, "device": self.device,
                      "seed": 0 if self.random_state is None else int(self.random_state),
                      "progress": False, "monitor": False},
            # early_stopping=False: every epoch, and the last epoch's weights kept (as MLPClassifier does); a
            # best epoch restored from the validation rows would still be early stopping, only later
            "stop": {"enabled": self.early_stopping, "restore_best": self.early_stopping, "patience": self.patience},
        }

    def _validate_X(self, X: Any, reset: bool = False) -> Any:
        """A raw DataFrame passes as it is (names and width checked); anything else becomes float32
        (NaN allowed, inf refused)."""
        if _raw_table(X):
            return validate_data(self, X, reset=reset, skip_check_array=True)
        return validate_data(self, X, reset=reset, dtype=np.float32, ensure_all_finite="allow-nan")

    def _validate_Xy(self, X: Any, y: Any) -> tuple[Any, Any]:
        if y is None:            # scikit-learn's own message ("requires y to be passed")
            return validate_data(self, X, y, dtype=np.float32, ensure_all_finite="allow-nan")
        if _raw_table(X):
            return validate_data(self, X, y, skip_check_array=True)
        return validate_data(self, X, y, dtype=np.float32, ensure_all_finite="allow-nan", **self._y_check)

    _y_check: dict = {}

    def _fit(self, X: Any, y: Any, task: str, sample_weight: Any = None) -> "Run":
        spec = self._spec(task)
        if sample_weight is not None:
            w = _check_sample_weight(sample_weight, X if not isinstance(X, pd.DataFrame) else np.empty((len(X), 0)),
                                     dtype=np.float64, ensure_non_negative=True)
            if not (w > 0).any():
                raise ValueError("Sample weights must contain at least one non-zero number.")
            frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(
                np.asarray(X), columns=[f"x{i}" for i in range(np.shape(X)[1])])
            X = frame.assign(**{WEIGHT: w})
            spec["data"]["weight"] = WEIGHT
        # report=False (default): nothing written, what GridSearchCV wants; True: runs/<name>/; a path: that folder
        out = None if isinstance(self.report, bool) else self.report
        self.run_ = fit_run(X=X, y=y, spec=spec, save=self.report is not False, out=out, verbose=self.verbose,
                        module=self.module, module_kwargs=self.module_kwargs)
        self.history_ = self.run_.history
        self.best_epoch_ = self.run_.metrics.get("best_epoch")
        self.n_iter_ = int(self.run_.metrics.get("epochs_run") or len(self.history_))   # epochs run
        self.loss_curve_ = self.history_["train_loss"].tolist() if "train_loss" in self.history_ else []
        metric = f"val_{self.run_.head.metric}"     # accuracy or R^2 on the validation rows, per epoch
        self.validation_scores_ = self.history_[metric].tolist() if metric in self.history_ else []
        return self.run_

    def _class_weight(self) -> dict:
        """data.class_weight for a classifier ("balanced" or {label: weight}, labels as the data spells them)."""
        if self.class_weight is None:
            return {}
        if self._task == "regression":
            raise ValueError("class_weight applies to classification; Regressor takes sample_weight in fit.")
        cw = self.class_weight
        return {"class_weight": cw if isinstance(cw, str) else {str(k): float(v) for k, v in dict(cw).items()}}

    def _threads(self) -> Any:
        """One intra-op thread for a small network's predictions, as in training (train/threads.py)."""
        return threads_for(self.run_.model, 32, next(self.run_.model.parameters()).device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = True       # missing values are imputed (data.impute=auto)
        return tags


class Classifier(ClassifierMixin, _Base):
    """Neural-network classifier (binary or multiclass) with trainwell's defaults.

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> Classifier(hidden=(16,), epochs=50).fit(X, y).score(X, y) > 0.8
    True
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "Classifier":
        X, y = self._validate_Xy(X, y)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"Classifier needs samples of at least 2 classes in the data; got 1 class "
                             f"({self.classes_[0]!r}).")
        task = "binary" if len(self.classes_) == 2 else "multiclass"
        self._fit(X, y, task, sample_weight)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "run_")
        X = self._validate_X(X)
        with self._threads():
            return self.run_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


class Regressor(RegressorMixin, _Base):
    """Neural-network regressor (one or several targets) with trainwell's defaults."""

    _task = "regression"

    _y_check = {"multi_output": True, "y_numeric": True}

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "Regressor":
        X, y = self._validate_Xy(X, y)
        if _raw_table(X):
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        self._fit(X, np.asarray(y, dtype=np.float64), "regression", sample_weight)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "run_")
        X = self._validate_X(X)
        with self._threads():
            return np.asarray(self.run_.predict(X), dtype=np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

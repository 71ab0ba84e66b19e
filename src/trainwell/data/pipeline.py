"""Source -> split -> features -> scale -> encoded arrays, with every decision explained.

``Preprocessor`` is what a trained model carries to turn raw input into the
network's input at predict time; it round-trips through JSON (no pickle).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainwell.data.categorical import OneHot
from trainwell.data.labels import LabelCoder, make_coder
from trainwell.data.scaling import Standardizer, add_features
from trainwell.data.sources import Table
from trainwell.data.split import split_indices
from trainwell.errors import UserError
from trainwell.spec import Spec


@dataclass
class Preprocessor:
    """Raw features -> network input (squares, z-score); raw targets <-> encoded ones."""

    coder: LabelCoder
    features: list[str] = field(default_factory=list)
    scaler: Standardizer | None = None
    target_scaler: Standardizer | None = None
    input_shape: list[int] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    onehot: OneHot | None = None      # text columns -> indicators (data/categorical.py)
    impute: list[float] | None = None  # per input column: the value that fills a missing (NaN) one

    @property
    def task(self) -> str:
        return self.coder.task

    def transform_X(self, X: Any) -> np.ndarray:
        """Raw features -> network input. A DataFrame is read by column name (text columns one-hot
        encoded as in training); an array must hold the network's input columns in order, or, for a
        model with text columns, the raw columns in training order."""
        import pandas as pd
        if self.onehot is not None and not isinstance(X, pd.DataFrame) and np.asarray(X).ndim == 2 \
                and np.asarray(X).shape[1] == len(self.onehot.columns) != len(self.feature_names):
            X = pd.DataFrame(np.asarray(X, dtype=object), columns=self.onehot.columns)
        if isinstance(X, pd.DataFrame):
            from pathlib import Path

            from trainwell.data.sources import frame_features
            cols = self.onehot.columns if self.onehot is not None else (self.feature_names or list(X.columns))
            by_name = self.onehot is not None or all(str(c) in X.columns for c in cols)
            if by_name:        # columns picked by name, in training order
                X = frame_features(X.rename(columns=str), cols, Path("the input DataFrame"), self.onehot,
                                   allow_missing=self.impute is not None)
            elif X.shape[1] == len(cols):   # trained on unnamed arrays: the columns are taken in order
                X = X.to_numpy()
            else:
                raise UserError(f"The input DataFrame has {X.shape[1]} columns ({', '.join(map(str, X.columns[:8]))}"
                                f"{', ...' if X.shape[1] > 8 else ''}) but the model was trained on {len(cols)}: "
                                f"{', '.join(cols[:8])}{', ...' if len(cols) > 8 else ''}. Pass those columns.")
        X = np.asarray(X)
        if X.dtype == object or not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
            raise UserError("Input features must be numeric; encode or drop non-numeric columns before predicting.")
        X = X.astype(np.float32)
        expected = self.input_shape
        if X.ndim == 1 and len(expected) == 1:
            X = X.reshape(1, -1) if X.shape[0] == expected[0] else X.reshape(-1, 1)
        if list(X.shape[1:]) != expected:
            raise UserError(
                f"Input has shape {list(X.shape[1:])} per row but the model was trained on {expected}. "
                f"Pass the same feature columns, in the same order, as at training time."
            )
        if self.impute is not None and X.ndim == 2:   # data.impute: the training split's median / mean
            X = np.where(np.isnan(X), np.asarray(self.impute, dtype=np.float32), X)
        if not np.isfinite(X).all():
            raise UserError("Input features contain NaN or inf values; drop or impute them before predicting.")
        if self.features:
            X = add_features(X, self.features)
        if self.scaler is not None:
            X = self.scaler.transform(X)
        return np.ascontiguousarray(X, dtype=np.float32)

    def encode_y(self, y: Any) -> np.ndarray:
        codes = self.coder.encode(np.asarray(y))
        if self.target_scaler is not None:
            codes = self.target_scaler.transform(codes)
        return codes

    def decode_regression(self, values: np.ndarray) -> np.ndarray:
        """Network-scale regression outputs -> original target units."""
        if self.target_scaler is not None:
            values = self.target_scaler.inverse(values)
        return values

    def to_json(self) -> dict:
        return {
            "labels": self.coder.to_json(),
            "features": self.features,
            "scaler": self.scaler.to_json() if self.scaler else None,
            "target_scaler": self.target_scaler.to_json() if self.target_scaler else None,
            "input_shape": self.input_shape,
            "feature_names": self.feature_names,
            "onehot": self.onehot.to_json() if self.onehot is not None else None,
            "impute": self.impute,
        }

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessor":
        return cls(
            coder=LabelCoder.from_json(d["labels"]),
            features=list(d.get("features", [])),
            scaler=Standardizer.from_json(d["scaler"]) if d.get("scaler") else None,
            target_scaler=Standardizer.from_json(d["target_scaler"]) if d.get("target_scaler") else None,
            input_shape=list(d.get("input_shape", [])),
            feature_names=list(d.get("feature_names", [])),
            onehot=OneHot.from_json(d.get("onehot")),
            impute=d.get("impute"),
        )


@dataclass
class Prepared:
    """Encoded, scaled splits ready to become tensors, and how they were made."""

    pre: Preprocessor
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str
    notes: list[str] = field(default_factory=list)
    raw_test: tuple[np.ndarray, np.ndarray] | None = None


def prepare(table: Table, spec: Spec) -> Prepared:
    """Apply PRACTICES §1 to a loaded table: encode labels, split, engineer features, scale."""
    if spec.task == "reconstruction" or spec.model.type == "autoencoder":
        if spec.data.impute != "none":
            raise UserError("data.impute is not supported for autoencoders (the inputs are also the targets, and a "
                            "filled-in value is not one to reconstruct). Fill the missing values before training.")
        from trainwell.data.layout import prepare_reconstruction   # inputs are their own targets
        return prepare_reconstruction(table, spec)
    if table.y is None:
        raise UserError("The data has no target. Pass --target COLUMN (or data.target in the spec).")
    notes: list[str] = []
    y_all = table.y if table.y_test is None else _concat(table.y, table.y_test)
    coder = make_coder(y_all, spec.task)
    notes.append(f"task: {coder.task}" + (" (detected)" if spec.task == "auto" else " (given)")
                 + (f", {len(coder.classes)} classes" if coder.task in ("binary", "multiclass") else ""))
    if table.onehot is not None:
        notes.append(table.onehot.describe())
    y_enc = coder.encode(table.y)
    strata = y_enc if coder.task in ("binary", "multiclass") else None
    n = table.X.shape[0]
    tr, va, te, how = split_indices(n, strata, spec.data.split, spec.train.seed, has_test=table.X_test is not None)
    notes.append(how)
    X_tr, X_va = table.X[tr], table.X[va]
    if table.X_test is not None:
        X_te, y_te_raw = table.X_test, table.y_test
        y_te = coder.encode(table.y_test)
    else:
        X_te, y_te_raw, y_te = table.X[te], table.y[te], y_enc[te]
    impute = None
    if spec.data.impute != "none":
        X_tr, X_va, X_te, impute, note = _impute(X_tr, X_va, X_te, spec.data.impute, table.feature_names)
        notes.append(note)
    features = list(spec.data.features)
    if features:
        X_tr, X_va, X_te = (add_features(a, features) for a in (X_tr, X_va, X_te))
        notes.append(f"features: {', '.join(features)} appended ({X_tr.shape[-1]} inputs)")
    scaler = None
    if spec.data.scale in ("standard", "auto") and X_tr.ndim == 2 and spec.model.type in ("mlp", "perceptron"):
        scaler = Standardizer.fit(X_tr)
        X_tr, X_va, X_te = (scaler.transform(a) for a in (X_tr, X_va, X_te))
        notes.append("scale: z-score fitted on the training split only")
    elif spec.data.scale != "none":          # images, signals, sequences: per channel, pixels, per feature
        from trainwell.data.layout import choose_scaler
        scaler, note = choose_scaler(X_tr, spec.data.scale, spec.model.type, spec.model.conv_dims)
        if scaler is not None:
            X_tr, X_va, X_te = (scaler.transform(a) for a in (X_tr, X_va, X_te))
            notes.append(note)
    y_tr, y_va = y_enc[tr], y_enc[va]
    target_scaler = None
    if coder.task == "regression":
        target_scaler = Standardizer.fit(y_tr)
        y_tr, y_va, y_te = (target_scaler.transform(a) for a in (y_tr, y_va, y_te))
        notes.append("target: z-score fitted on the training split (predictions are returned in original units)")
    pre = Preprocessor(coder=coder, features=features, scaler=scaler, target_scaler=target_scaler,
                       input_shape=list(table.X.shape[1:]), feature_names=list(table.feature_names),
                       onehot=table.onehot, impute=impute)
    return Prepared(pre, *(np.ascontiguousarray(a, dtype=a.dtype) for a in (X_tr, y_tr, X_va, y_va, X_te, y_te)),
                    name=table.name, notes=notes,
                    raw_test=(table.X_test if table.X_test is not None else table.X[te], y_te_raw))


def _concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(a), np.asarray(b)], axis=0)


def _impute(X_tr: np.ndarray, X_va: np.ndarray, X_te: np.ndarray, how: str, names: list[str]):
    """Fill NaN with each column's median (or mean) over the training split only (PRACTICES §1: no
    statistic may see the validation or test rows). A column with no value in the training split is
    filled with 0."""
    import warnings
    if X_tr.ndim != 2:
        raise UserError(f"data.impute={how} fills missing values in tables [rows, columns]; this data has per-row "
                        f"shape {list(X_tr.shape[1:])}. Set data.impute=none and clean the data instead.")
    stat = np.nanmedian if how == "median" else np.nanmean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN columns: filled with 0 below
        fill = stat(X_tr.astype(np.float64), axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0).astype(np.float32)
    missing = [int(np.isnan(a).sum()) for a in (X_tr, X_va, X_te)]
    cols = int((np.isnan(X_tr).any(0) | np.isnan(X_va).any(0) | np.isnan(X_te).any(0)).sum()) if X_tr.size else 0
    X_tr, X_va, X_te = (np.where(np.isnan(a), fill, a).astype(np.float32) for a in (X_tr, X_va, X_te))
    note = (f"impute: {sum(missing)} missing value(s) in {cols} column(s) (train/val/test {missing[0]}/{missing[1]}/"
            f"{missing[2]}) filled with the training split's {how}; stored with the model for predict")
    return X_tr, X_va, X_te, fill.tolist(), note

"""Source -> split -> columns -> impute -> features -> scale -> encoded arrays, with every decision explained.

``Preprocessor`` is what a trained model carries to turn raw input into the
network's input at predict time; it round-trips through JSON (no pickle).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trainwell.core.inputs import InputLayout
from trainwell.data.categorical import OneHot
from trainwell.data.column_types import Options
from trainwell.data.columns import ColumnEncoder
from trainwell.data.fingerprints import SeenRows, row_fingerprints
from trainwell.data.frames import frame_features
from trainwell.data.leakage import LeakageWarning, drop_setting, leak_warning, target_leaks
from trainwell.data.impute import Imputer
from trainwell.data.labels import LabelCoder, make_coder, other_reading
from trainwell.data.piecewise import resolve_bins
from trainwell.data.layout import choose_scaler
from trainwell.data.scaling import (QuantileScaler, RobustScaler, Standardizer, add_features, feature_names_after,
                                   scaler_from_json)
from trainwell.data.table import Table, check_finite
from trainwell.data.split import split_indices
from trainwell.data.validation import split_with_validation
from trainwell.data.target import TargetPlan
from trainwell.core.errors import UserError
from trainwell.core.spec import Spec


@dataclass
class Preprocessor:
    """Raw features -> network input (columns, fill, squares, scaling); raw targets <-> encoded ones."""

    coder: LabelCoder
    features: list[str] = field(default_factory=list)
    scaler: Any = None                 # Standardizer | RobustScaler | QuantileScaler (data/scaling.py)
    target_scaler: Standardizer | None = None
    input_shape: list[int] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)   # encoded inputs, before the missing indicators
    columns: ColumnEncoder | None = None   # raw table columns -> inputs (data/columns.py)
    impute: list[float] | None = None  # per input column: the value that fills a missing (NaN) one
    indicators: list = field(default_factory=list)   # [(name, [input columns])]: missing indicators appended
    target: TargetPlan | None = None   # regression: log1p columns and the prediction clip range

    @property
    def task(self) -> str:
        return self.coder.task

    @property
    def onehot(self) -> ColumnEncoder | None:
        """The column encoder (the name it had when it only one-hot encoded text)."""
        return self.columns

    @property
    def imputer(self) -> Imputer | None:
        return None if self.impute is None else Imputer(list(self.impute), list(self.indicators))

    @property
    def input_names(self) -> list[str]:
        """The network's input names: encoded columns, missing indicators, engineered features."""
        names = self.feature_names + [n for n, _ in self.indicators]
        names = feature_names_after(names, self.features) if self.features else names
        return self.scaler.names_after(names) if isinstance(self.scaler, RobustScaler) else names

    def _frame(self, X: Any) -> np.ndarray:
        """A DataFrame (by column name) or raw positional columns -> the encoded matrix."""
        strict = self.impute is None
        enc = self.columns
        if enc is not None and not isinstance(X, pd.DataFrame) and np.ndim(X) == 2 \
                and np.shape(X)[1] == len(enc.raw_names) != len(self.feature_names):
            X = pd.DataFrame(np.asarray(X, dtype=object), columns=enc.raw_names)   # raw columns in training order
        if not isinstance(X, pd.DataFrame):
            return X
        X = X.rename(columns=str)
        cols = enc.needed if enc is not None else (self.feature_names or list(X.columns))
        if all(c in X.columns for c in cols):      # by name, in training order; extra columns ignored
            if enc is not None:
                return enc.transform(X, "the input DataFrame", strict=strict)
            return frame_features(X, cols, "the input DataFrame", allow_missing=not strict)
        width = len(enc.raw_names) if enc is not None else len(cols)
        if (enc is None or enc.numeric_only) and X.shape[1] == width:   # unnamed training arrays: by position
            return X.to_numpy()
        lack = [c for c in cols if c not in X.columns]
        raise UserError(f"The input DataFrame has {X.shape[1]} columns ({', '.join(map(str, X.columns[:8]))}"
                        f"{', ...' if X.shape[1] > 8 else ''}) but the model was trained on {len(cols)}: "
                        f"{', '.join(cols[:8])}{', ...' if len(cols) > 8 else ''}. Pass those columns "
                        f"(missing: {', '.join(lack[:8])}{', ...' if len(lack) > 8 else ''}).")

    def transform_X(self, X: Any) -> np.ndarray:
        """Raw features -> network input. A DataFrame is read by column name (typed, one-hot encoded,
        dates expanded as in training); an array must hold the encoded input columns in order, or,
        for a model trained on a table with text columns, the raw columns in training order."""
        X = self.encode_X(X)
        if self.impute is not None and X.ndim == 2:   # data.impute: the training split's median / mean (+ indicators)
            X = self.imputer.transform(X)
        if not np.isfinite(X).all():
            raise UserError("Input features contain NaN or inf values; drop or impute them before predicting.")
        if self.features:
            X = add_features(X, self.features)
        if self.scaler is not None:
            X = self.scaler.transform(X)
        return np.ascontiguousarray(X, dtype=np.float32)

    def encode_X(self, X: Any) -> np.ndarray:
        """Raw features -> the encoded float32 matrix, before imputation and scaling (what the training rows'
        fingerprints are taken of, data/fingerprints.py)."""
        X = np.asarray(self._frame(X))
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
        return X

    def encode_y(self, y: Any) -> np.ndarray:
        codes = self.coder.encode(np.asarray(y))
        if self.task == "regression" and self.target is not None:
            codes = self.target.forward(codes).astype(np.float32)
        if self.target_scaler is not None:
            codes = self.target_scaler.transform(codes)
        return codes

    def decode_regression(self, values: np.ndarray, prediction: bool = True) -> np.ndarray:
        """Network-scale regression outputs -> original target units (expm1 where the target was
        logged). A ``prediction`` gets the smearing shift and is kept within the training range
        (data.smearing, data.clip_predictions); pass ``prediction=False`` for true targets."""
        if self.target_scaler is not None:
            values = self.target_scaler.inverse(values)
        if self.target is not None:
            values = self.target.inverse(values, prediction=prediction).astype(np.float32)
        return values

    def to_json(self) -> dict:
        return {
            "labels": self.coder.to_json(),
            "features": self.features,
            "scaler": self.scaler.to_json() if self.scaler is not None else None,
            "target_scaler": self.target_scaler.to_json() if self.target_scaler else None,
            "input_shape": self.input_shape,
            "feature_names": self.feature_names,
            "columns": self.columns.to_json() if self.columns is not None else None,
            "impute": self.impute,
            "indicators": [[n, list(c)] for n, c in self.indicators],
            "target": self.target.to_json() if self.target is not None else None,
        }

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessor":
        columns = ColumnEncoder.from_json(d.get("columns"))
        if columns is None and d.get("onehot"):          # saved before column typing
            columns = ColumnEncoder.from_onehot(OneHot.from_json(d["onehot"]))
        return cls(
            coder=LabelCoder.from_json(d["labels"]),
            features=list(d.get("features", [])),
            scaler=scaler_from_json(d.get("scaler")),
            target_scaler=Standardizer.from_json(d["target_scaler"]) if d.get("target_scaler") else None,
            input_shape=list(d.get("input_shape", [])),
            feature_names=list(d.get("feature_names", [])),
            columns=columns,
            impute=d.get("impute"),
            indicators=[(str(n), [int(j) for j in c]) for n, c in d.get("indicators") or []],
            target=TargetPlan.from_json(d.get("target")),
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
    test_rows: np.ndarray | None = None    # the test split's row numbers in the loaded table (export verification)
    seen_rows: SeenRows | None = None      # fingerprints of the training and validation rows (data/fingerprints.py)
    leakage: dict = field(default_factory=dict)   # columns that give the target away (data/leakage.py), for the doctor
    validation_given: bool = False        # the validation split is the user's (fit(validation_data=...))
    test_given: bool = False              # the test split is the user's (a test file or folder): never trained on
    test_prints: np.ndarray | None = None  # fingerprints of the test rows split off here, should they train


def prepare(table: Table, spec: Spec, inputs: InputLayout) -> Prepared:
    """Apply docs/practices/splits_and_scaling.md: encode labels, split, then learn every statistic (categories,
    fill values, scaling, target transform) from the training split only and apply it to all splits.

    ``inputs`` is how the network reads a row (its topology's ``InputLayout``, core/inputs.py): it picks
    the automatic scaling and whether the inputs are their own targets."""
    if spec.task == "reconstruction" or inputs.reconstructs:
        if spec.data.impute in ("median", "mean"):
            raise UserError("data.impute is not supported for autoencoders (the inputs are also the targets, and a "
                            "filled-in value is not one to reconstruct). Fill the missing values before training.")
        return prepare_reconstruction(table, spec, inputs)
    if table.y is None:
        raise UserError("The data has no target. Pass --target COLUMN (or data.target in the spec).")
    notes: list[str] = list(table.notes)
    y_all = table.y if table.y_test is None else _concat(table.y, table.y_test)
    coder = make_coder(y_all, spec.task)
    notes.append(f"task: {coder.task}" + (" (detected)" if spec.task == "auto" else " (given)")
                 + (f", {len(coder.classes)} classes" if coder.task in ("binary", "multiclass") else "")
                 + (other_reading(coder.task, y_all) if spec.task == "auto" else ""))
    y_enc = coder.encode(table.y)
    strata = y_enc if coder.task in ("binary", "multiclass") else None
    n = table.X.shape[0]
    if table.val_rows is not None:        # fit(validation_data=...): those rows are the validation split
        tr, va, te, how = split_with_validation(n, table.val_rows, strata, spec.data.split, spec.train.seed,
                                                has_test=table.X_test is not None)
    else:
        tr, va, te, how = split_indices(n, strata, spec.data.split, spec.train.seed, has_test=table.X_test is not None)
    notes.append(how)
    if table.weights is not None:     # data.weight: rows resampled in proportion to their weight
        tr, va, note = _resample(tr, va, table.weights, spec.train.seed)
        notes.append(note)
    X_all, columns, feature_names, groups = _encode_columns(table, spec, tr, notes)
    X_tr, X_va = X_all[tr], X_all[va]
    seen = SeenRows.of(X_tr, X_va)
    leaks = _warn_leaks(X_tr, y_enc[tr], groups, coder.task, columns, table.name, spec.train.seed, notes)
    test_prints = None               # the split-off test rows' fingerprints, should cross-fitted members train on them
    if table.X_test is not None:
        X_te, y_te_raw = table.X_test, table.y_test
        y_te = coder.encode(table.y_test)
    else:
        X_te, y_te_raw, y_te = X_all[te], table.y[te], y_enc[te]
        test_prints = np.unique(row_fingerprints(X_te))
    impute, indicators = None, []
    how_impute = spec.data.impute
    if how_impute == "none" or (how_impute == "auto" and X_tr.ndim != 2):   # strict: NaN refused, with column and row
        for a, where in ((X_tr, "the training split"), (X_va, "the validation split"), (X_te, "the test split")):
            check_finite(a, feature_names, f"{table.name} ({where})", allow_missing=False)
    else:
        imputer = Imputer.fit(X_tr, how_impute, groups)
        notes.append(imputer.note(how_impute, (X_tr, X_va, X_te), feature_names))
        X_tr, X_va, X_te = (imputer.transform(a) for a in (X_tr, X_va, X_te))
        impute, indicators = imputer.fill, imputer.indicators
    features = list(spec.data.features)
    if features:
        X_tr, X_va, X_te = (add_features(a, features) for a in (X_tr, X_va, X_te))
        notes.append(f"features: {', '.join(features)} appended ({X_tr.shape[-1]} inputs)")
    names = list(feature_names) + [n for n, _ in indicators]
    scaler, note = _table_scaler(X_tr, spec, inputs, feature_names_after(names, features) if features else names,
                                 coder.task)
    if scaler is not None:
        X_tr, X_va, X_te = (scaler.transform(a) for a in (X_tr, X_va, X_te))
        notes.append(note)
    elif spec.data.scale != "none" and not (X_tr.ndim == 2 and spec.data.scale in ("robust", "quantile", "standard")):
        # images, signals, sequences: per channel, pixels (data/layout.py)
        scaler, note = choose_scaler(X_tr, spec.data.scale, inputs, spec.model.conv_dims)
        if scaler is not None:
            X_tr, X_va, X_te = (scaler.transform(a) for a in (X_tr, X_va, X_te))
            notes.append(note)
    y_tr, y_va = y_enc[tr], y_enc[va]
    target_scaler, target = None, None
    if coder.task == "regression":
        names = [str(t) for t in spec.data.target] if isinstance(spec.data.target, list) else \
            ([str(spec.data.target)] if spec.data.target else None)
        target, t_notes = TargetPlan.fit(y_tr, spec.data.target_transform, spec.data.clip_predictions,
                                         names if names and len(names) == coder.n_outputs else None)
        notes += t_notes
        y_tr, y_va, y_te = (target.forward(a).astype(np.float32) for a in (y_tr, y_va, y_te))
        target_scaler = Standardizer.fit(y_tr)
        y_tr, y_va, y_te = (target_scaler.transform(a) for a in (y_tr, y_va, y_te))
    pre = Preprocessor(coder=coder, features=features, scaler=scaler, target_scaler=target_scaler,
                       input_shape=list(X_all.shape[1:]), feature_names=list(feature_names),
                       columns=columns, impute=impute, indicators=indicators, target=target)
    raw_X_te = table.X_test if table.X_test is not None else X_all[te]
    return Prepared(pre, *(np.ascontiguousarray(a, dtype=a.dtype) for a in (X_tr, y_tr, X_va, y_va, X_te, y_te)),
                    name=table.name, notes=notes, raw_test=(raw_X_te, y_te_raw),
                    test_rows=te if table.X_test is None else None, seen_rows=seen, leakage=leaks,
                    validation_given=table.val_rows is not None, test_given=table.X_test is not None,
                    test_prints=test_prints)


def prepare_reconstruction(table: Table, spec: Spec, inputs: InputLayout) -> Prepared:
    """Autoencoders: split and scale the inputs; each split's target is its own (scaled) input."""
    X = table.X
    for part in (X, table.X_test):
        if part is not None and not np.isfinite(part).all():
            raise UserError(f"{table.name} has NaN or infinite inputs; an autoencoder's inputs are also its targets, "
                            f"so a missing value cannot be filled in. Drop or fill those rows before training.")
    n = X.shape[0]
    if n < 3:
        raise UserError(f"An autoencoder needs at least 3 rows to split into train/val/test; got {n}.")
    tr, va, te, how = split_indices(n, None, spec.data.split, spec.train.seed, has_test=table.X_test is not None)
    X_tr, X_va = X[tr], X[va]
    X_te = table.X_test if table.X_test is not None else X[te]
    notes = ["task: reconstruction (an autoencoder learns to reproduce its inputs; labels, if any, are ignored)", how]
    scaler, note = (None, None) if spec.data.scale == "none" else choose_scaler(
        X_tr, spec.data.scale, inputs, spec.model.conv_dims)
    if scaler is not None:
        X_tr, X_va, X_te = (scaler.transform(a) for a in (X_tr, X_va, X_te))
        notes.append(note)
    coder = LabelCoder("reconstruction", [], int(np.prod(X.shape[1:])), False)
    pre = Preprocessor(coder=coder, scaler=scaler, input_shape=list(X.shape[1:]),
                       feature_names=list(table.feature_names))
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in (X_tr, X_va, X_te)]
    raw_y = table.y_test if table.X_test is not None else (table.y[te] if table.y is not None else None)
    prep = Prepared(pre, arrays[0], arrays[0], arrays[1], arrays[1], arrays[2], arrays[2], name=table.name,
                    notes=notes, raw_test=(table.X_test if table.X_test is not None else X[te], raw_y))
    return prep


def _concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(a), np.asarray(b)], axis=0)


def _encode_columns(table: Table, spec: Spec, tr: np.ndarray, notes: list[str]):
    """(all rows encoded, the encoder, input names, each input's raw column) with the categories and
    date references learned from the training rows ``tr`` only."""
    if table.columns is None or table.typed is None:       # arrays, npz, images: already numbers
        names = list(table.feature_names)
        return table.X, table.columns, names, names or None
    columns, typed = table.columns, table.typed
    options = Options.from_spec(spec.data)
    if options != columns.options and table.frame is not None:    # loaded with other typing options
        columns = ColumnEncoder.infer(table.frame, list(table.frame.columns), options)
        typed = columns.parse(table.frame, table.name, strict=spec.data.impute == "none")
    columns = columns.fit(typed, np.unique(tr))
    notes += columns.describe(typed)
    X_all = columns.encode(typed, table.name)
    if X_all.shape[1] == 0:
        raise UserError(f"{table.name} has no usable feature column left: {'; '.join(columns.describe(typed))}. "
                        f"Keep some with data.drop_columns=[] or add input columns.")
    return X_all, columns, columns.names(), columns.groups()


def _warn_leaks(X_tr: np.ndarray, y_tr: np.ndarray, groups: list[str] | None, task: str, columns: Any, name: str,
                seed: int, notes: list[str]) -> dict:
    """Name the feature columns that reproduce the target on the training rows (data/leakage.py): a warning,
    a note kept in data.json, and what the doctor reports (``{"columns": {name: why}, "setting": ...}``)."""
    found = target_leaks(X_tr, y_tr, list(groups or []), task, seed)
    if not found:
        return {}
    dropped = [c.name for c in columns.columns if c.kind == "dropped"] if columns is not None else []
    setting = drop_setting(found, dropped)
    notes.append("possible leakage: " + "; ".join(f"{col} ({why})" for col, why in found.items()))
    warnings.warn(leak_warning(found, name, setting), LeakageWarning, stacklevel=4)
    return {"columns": found, "setting": setting}


def _resample(tr: np.ndarray, va: np.ndarray, w: np.ndarray, seed: int):
    """Systematic resampling: each row repeated about weight / mean weight times (zero: dropped), so the
    expected loss over an epoch is the weighted loss; the test split is scored unweighted."""
    rng = np.random.default_rng(seed)

    def draw(idx: np.ndarray) -> np.ndarray:
        ww = w[idx]
        if ww.sum() <= 0:
            return idx
        c = np.cumsum(ww / ww.sum() * len(idx))
        counts = np.diff(np.floor(np.r_[0.0, c] + rng.uniform()).astype(np.int64))
        return np.repeat(idx, np.maximum(counts, 0))

    if w[tr].sum() <= 0:
        raise UserError("Sample weights must contain at least one non-zero number in the training split.")
    new_tr, new_va = draw(tr), draw(va)
    note = (f"weights: training and validation rows resampled in proportion to their weight ({len(tr)} -> "
            f"{len(new_tr)} and {len(va)} -> {len(new_va)} rows, systematic sampling); the test split is unweighted")
    return new_tr, new_va, note


def _linear_note(scaler: RobustScaler, names: list[str] | None) -> str:
    """The note's clause on linear copies (data/scaling.py: RobustScaler), naming the copied inputs."""
    if not scaler.n_linear:
        return ""
    copied = [n for n, c in zip(names or [], scaler.linear) if c] or [f"{scaler.n_linear} input(s)"]
    shown = ", ".join(copied[:6]) + (f" and {len(copied) - 6} more" if len(copied) > 6 else "")
    return (f"; {scaler.n_linear} heavy-tailed input(s) also given as a plain z-score ({shown}: training values "
            f"reach |z| > 6, twice the clip's knee, over 20 or more distinct values), so a linear trend reaches their extremes (data.linear_copy=false "
            f"leaves them clipped only; docs/data.md#scaling-and-features)")


def _piecewise_note(scaler: RobustScaler, bins: int, why: str) -> str:
    """The note's clause on the piecewise-linear encoding (data/piecewise.py), with the rule that chose it."""
    if not scaler.n_bins:
        off = "data.piecewise=8 turns it on" if bins == 0 else "no scaled input has three or more values"
        return f"; piecewise-linear encoding: none ({why}; {off})"
    encoded = scaler.piecewise.columns_encoded()
    return (f"; piecewise-linear encoding: {len(encoded)} input(s) also given through up to {bins} quantile bins "
            f"each, {scaler.n_bins} inputs, so a layer can follow thresholds in them ({why}; Gorishniy et al. "
            f"2022; data.piecewise=0 turns it off; docs/data.md#scaling-and-features)")


def _refuse_piecewise(spec: Spec, why: str) -> None:
    """A number of bins asked for where there is no robust scaling to encode through: one clear error."""
    if spec.data.piecewise not in ("auto", 0):
        raise UserError(f"data.piecewise={spec.data.piecewise} encodes the inputs of robust scaling, and {why}. "
                        f"Use data.scale=robust (the default for tables), or leave data.piecewise at auto or 0.")


def _table_scaler(X_tr: np.ndarray, spec: Spec, inputs: InputLayout, names: list[str] | None, task: str):
    """(scaler, note) for a 2-D table: robust + smooth clipping, quantile or z-score; (None, None) otherwise.
    ``names``: the inputs' names, for the note; ``task``: for the piecewise-linear encoding's rule."""
    scale = spec.data.scale
    m = spec.model
    if X_tr.ndim != 2 and scale in ("robust", "quantile"):
        raise UserError(f"data.scale={scale} is for tables [rows, columns]; this data has per-row shape "
                        f"{list(X_tr.shape[1:])}. Use data.scale=auto, standard, channel or pixels.")
    if X_tr.ndim != 2 or scale in ("none", "channel", "pixels"):
        _refuse_piecewise(spec, "this run has no robust scaling (data.scale=" + scale +
                          (f"; inputs of shape {list(X_tr.shape[1:])}" if X_tr.ndim != 2 else "") + ")")
        return None, None
    if scale == "auto":
        if inputs.table_scale is None:
            _refuse_piecewise(spec, f"model.type={m.type} scales its inputs its own way (data/layout.py)")
            return None, None                               # custom modules, conv/rnn nets: data/layout.py
        if spec.data.features:     # squares etc. were asked for to make a boundary linear: clipping would bend it
            scale, why = "standard", " (auto: engineered features keep a linear scale; smooth clipping would bend them)"
        elif m.preset == "self_normalizing":
            scale, why = "standard", " (auto: SELU's self-normalization assumes mean 0, variance 1)"
        else:
            scale, why = inputs.table_scale, f" (auto: {inputs.table_why})"
    else:
        why = ""
    if scale != "robust":
        _refuse_piecewise(spec, f"this run scales them with data.scale={scale}{why}")
    if scale == "robust":
        bins, why_bins = resolve_bins(spec.data.piecewise, X_tr.shape[0], task)
        s = RobustScaler.fit(X_tr, linear_copy=spec.data.linear_copy, bins=bins)
        kept = int(s.keep.sum())
        return s, (f"scale: robust (median, interquartile range) + smooth clipping x/sqrt(1+(x/3)^2) on "
                   f"{len(s.keep) - kept} input(s), {kept} 0/1 input(s) left as they are, fitted on the training "
                   f"split only (RealMLP-TD){why}{_linear_note(s, names)}{_piecewise_note(s, bins, why_bins)}")
    if scale == "quantile":
        s = QuantileScaler.fit(X_tr)
        kept = int(s.keep.sum())
        return s, (f"scale: quantile transform to a standard normal on {len(s.keep) - kept} input(s), {kept} 0/1 "
                   f"input(s) left as they are, fitted on the training split only{why}")
    s = Standardizer.fit(X_tr)
    return s, f"scale: z-score fitted on the training split only{why}"

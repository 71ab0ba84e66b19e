"""One peer's fit and predict on one outer split, as its own process (run by ``bench/tabular.py``):

    bench/.venv/bin/python bench/_tabular_peer.py TOOL train.csv test.csv TARGET TASK pred.csv [--seed S]

Writes ``pred.csv`` (one column, ``prediction``, in the target's own labels or units) and ``pred.json``
(the library's version and notes). Each tool is what a practitioner would pick with its defaults, in the
standard pipeline its documentation shows: nothing here is tuned to a table, so the peers set the bar that
trainwell's defaults have to clear. Imports happen inside each tool, so a process pays only for its own.
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd


def split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical column names; booleans and text are categorical, as the standard
    ``make_column_selector(dtype_include="number")`` pipelines treat them (dates are text here too)."""
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    return numeric, [c for c in X.columns if c not in numeric]


def as_text(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Categorical columns as object strings with NaN kept: scikit-learn's imputers and encoders accept
    that on every pandas version (pandas 3's ``str`` dtype and plain ``bool`` are not safe everywhere)."""
    X = X.copy()
    for c in columns:
        X[c] = X[c].map(str).where(X[c].notna(), np.nan).astype(object)
    return X


def as_category(train: pd.DataFrame, test: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Categorical columns as pandas ``category`` with the training split's categories on both sides,
    so a code means the same level at fit and predict (LightGBM and pytabkit read the codes)."""
    train, test = as_text(train, columns), as_text(test, columns)
    for c in columns:
        train[c] = train[c].astype("category")
        test[c] = pd.Categorical(test[c], categories=train[c].cat.categories)
    return train, test


def sklearn_preprocessing(numeric: list[str], categorical: list[str]):
    """The textbook pipeline: median imputation + standardization for numbers, most-frequent
    imputation + one-hot (unknown levels ignored) for text. One-hot output stays sparse, so
    high-cardinality text (free-text job titles, dates) needs no dropping to fit in memory."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical),
    ])


def _sklearn_pipeline(model, task: str, train, y, test):
    """Fit ``model`` behind the standard preprocessing; regression targets standardized (as the
    scikit-learn docs recommend for MLPs), inverted by TransformedTargetRegressor at predict."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    numeric, categorical = split_columns(train)
    pipe = make_pipeline(sklearn_preprocessing(numeric, categorical), model)
    if task == "regression":
        pipe = TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
    return pipe.fit(as_text(train, categorical), y).predict(as_text(test, categorical))


def sklearn_mlp(task: str, train, y, test, seed: int):
    """scikit-learn's MLPClassifier / MLPRegressor with every default."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    model = MLPRegressor(random_state=seed) if task == "regression" else MLPClassifier(random_state=seed)
    return _sklearn_pipeline(model, task, train, y, test)


def linear(task: str, train, y, test, seed: int):
    """The linear baseline: LogisticRegression(max_iter=1000) or RidgeCV, same preprocessing."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    model = RidgeCV() if task == "regression" else LogisticRegression(max_iter=1000)
    return _sklearn_pipeline(model, task, train, y, test)


def lightgbm(task: str, train, y, test, seed: int):
    """LightGBM with defaults; text columns as pandas categoricals (its native categorical splits)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    train, test = as_category(train, test, split_columns(train)[1])
    model = (LGBMRegressor if task == "regression" else LGBMClassifier)(random_state=seed, verbose=-1)
    return model.fit(train, y).predict(test)


def realmlp(task: str, train, y, test, seed: int):
    """RealMLP-TD (pytabkit) with defaults on the CPU. It refuses NaN in numeric columns, so those get
    the training split's median; categoricals go in as ``category`` dtype, which pytabkit detects and
    one-hot encodes or embeds by itself."""
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
    numeric, categorical = split_columns(train)
    train, test = as_category(train, test, categorical)
    medians = train[numeric].median()
    train[numeric], test[numeric] = train[numeric].fillna(medians), test[numeric].fillna(medians)
    model = (RealMLP_TD_Regressor if task == "regression" else RealMLP_TD_Classifier)(device="cpu", random_state=seed)
    return model.fit(train, y).predict(test)


# tool -> (fit and predict, the distribution whose version the scores belong to)
TOOLS = {"sklearn_mlp": (sklearn_mlp, "scikit-learn"), "linear": (linear, "scikit-learn"),
         "lightgbm": (lightgbm, "lightgbm"), "realmlp": (realmlp, "pytabkit")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tool", choices=sorted(TOOLS))
    p.add_argument("train", type=Path)
    p.add_argument("test", type=Path)
    p.add_argument("target")
    p.add_argument("task", choices=["classification", "regression"])
    p.add_argument("pred", type=Path)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    fit_predict, library = TOOLS[a.tool]
    train, test = pd.read_csv(a.train), pd.read_csv(a.test)
    y = train.pop(a.target)
    pred = fit_predict(a.task, train, y, test, a.seed)
    pd.DataFrame({"prediction": np.ravel(pred)}).to_csv(a.pred, index=False)
    a.pred.with_suffix(".json").write_text(json.dumps({"library": library, "version": version(library)}))


if __name__ == "__main__":
    sys.exit(main())

"""One whole-process job of bench/end_to_end.py: ``python bench/_e2e_job.py KIND DATA``.

Each job is what a user would write: import, read the data, train with the library's defaults,
score. It prints one JSON line (held-out accuracy or mean CV score). Imports happen inside each
function, so a process pays only for its own library. The fit jobs hold out the same test rows as
``trainwell fit`` (its stratified split, seed 0: 10 % of up to 10,000 rows, else 1,000 rows), and
train on the rest (MLPClassifier's early stopping carves its validation 10 % out of it).

KIND: mlp | lgbm (fit and score), cv-tw | cv-mlp | cv-lgbm (cross_val_score, 3 folds),
grid-tw | grid-mlp (GridSearchCV over docs/sklearn.md's grid, 3 folds).
DATA: a built-in name (iris, digits, breast_cancer, wine) or a .parquet file with target column y.
"""
from __future__ import annotations

import json
import sys
import warnings

import numpy as np

GRID = {"hidden": [(8,), (32,)], "lr": [1e-3, 3e-3]}          # docs/sklearn.md's example grid


def load(data: str):
    if data.endswith(".parquet"):
        import pandas as pd
        frame = pd.read_parquet(data)
        return frame.drop(columns="y").to_numpy(np.float32), frame["y"].to_numpy()
    from sklearn import datasets
    return getattr(datasets, f"load_{data}")(return_X_y=True)


def held_out(X, y):
    """trainwell fit's test rows (data/split.py: 10 % up to 10,000 rows, else 1,000; stratified, seed 0)."""
    from sklearn.model_selection import train_test_split
    n = len(y)
    test = 1000 if n > 10_000 else max(1, round(0.1 * n))
    return train_test_split(X, y, test_size=test, random_state=0, stratify=y)


def mlp():
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), MLPClassifier(early_stopping=True, random_state=0))


def lgbm():
    from lightgbm import LGBMClassifier
    return LGBMClassifier(random_state=0, verbose=-1)


def tw_classifier(**kw):
    import trainwell as tw
    return tw.Classifier(**kw)


def main(kind: str, data: str) -> dict:
    warnings.filterwarnings("ignore")
    X, y = load(data)
    if kind in ("mlp", "lgbm"):
        X_train, X_test, y_train, y_test = held_out(X, y)
        model = (mlp if kind == "mlp" else lgbm)().fit(X_train, y_train)
        return {"accuracy": float(model.score(X_test, y_test))}
    if kind.startswith("cv-"):
        from sklearn.model_selection import cross_val_score
        make = {"cv-tw": tw_classifier, "cv-mlp": mlp, "cv-lgbm": lgbm}[kind]
        return {"accuracy": float(cross_val_score(make(), X, y, cv=3).mean())}
    from sklearn.model_selection import GridSearchCV
    if kind == "grid-tw":
        grid, est = GRID, tw_classifier(epochs=100)
    else:
        grid = {"mlpclassifier__hidden_layer_sizes": GRID["hidden"], "mlpclassifier__learning_rate_init": GRID["lr"]}
        est = mlp().set_params(mlpclassifier__max_iter=100)
    search = GridSearchCV(est, grid, cv=3).fit(X, y)
    return {"accuracy": float(search.best_score_), "mean_cv": float(search.cv_results_["mean_test_score"].mean())}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))

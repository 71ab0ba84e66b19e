"""scikit-learn estimators: the full check_estimator suite, Pipeline and GridSearchCV."""
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_estimator

import trainwell as tw

# Checks skipped on purpose (also listed in docs/sklearn.md with the reason).
EXPECTED_FAILED: dict[str, str] = {
    "check_methods_subset_invariance": (
        "float32 matrix products depend on the batch's size through BLAS blocking, so outputs on a "
        "subset differ from the full batch at the 1e-7 level, below float32 resolution of the check's "
        "rtol=1e-7; they agree to 1e-6"),
    "check_methods_sample_order_invariance": "same float32 reason as check_methods_subset_invariance",
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight resamples rows in proportion to the weights; weighting a row and repeating it give the "
        "same expected loss but not the same validation split and mini-batches, so the fitted networks "
        "differ (scikit-learn's own MLP passes it only with full-batch lbfgs, not with adam)"),
}


@pytest.mark.parametrize("estimator", [tw.Classifier(epochs=30), tw.Regressor()],
                         ids=["Classifier", "Regressor"])
def test_check_estimator(estimator):
    results = check_estimator(estimator, on_fail=None, expected_failed_checks=EXPECTED_FAILED)
    failed = [(r["check_name"], repr(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert len(results) > 40


def test_classifier_in_pipeline_and_grid_search():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    pipe = make_pipeline(FunctionTransformer(np.log1p), tw.Classifier(epochs=100))
    grid = GridSearchCV(pipe, {"classifier__hidden": [(8,), (32,)], "classifier__lr": [1e-3, 3e-3]}, cv=3)
    grid.fit(Xtr, ytr)
    # 143 test rows (one row = 0.007): seeds and scalings give 0.930-0.958 for these small grids
    assert grid.best_estimator_.score(Xte, yte) >= 0.92
    assert set(grid.best_params_) == {"classifier__hidden", "classifier__lr"}


def test_regressor_scores_near_a_linear_baseline():
    """Diabetes is close to linear with 331 training rows; the MLP should come near ridge regression."""
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=1)
    reg = tw.Regressor().fit(Xtr, ytr)
    ridge = RidgeCV().fit(Xtr, ytr).score(Xte, yte)
    assert reg.score(Xte, yte) >= min(0.30, ridge - 0.1)
    assert reg.best_epoch_ >= 1 and len(reg.history_) >= reg.best_epoch_

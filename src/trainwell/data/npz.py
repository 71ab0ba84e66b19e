"""npz archives (``np.savez(path, X=X, y=y)``, optionally ``X_test`` / ``y_test``) as a ``Table``.

No pickle is ever used (``np.load(..., allow_pickle=False)``): an object array is refused with the fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainwell.data.column_types import refuse_beyond_float32
from trainwell.data.table import Table, check_finite
from trainwell.core.errors import UserError, did_you_mean

NPZ_X_KEYS = ("X", "x", "features")
NPZ_Y_KEYS = ("y", "target", "labels")


def _npz_pick(arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in arrays), None)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UserError(
                f"{path} stores an object array, which would need pickle to load (refused for safety). "
                f"Save labels as a fixed-width string array instead, e.g. np.savez(f, X=X, y=y.astype(str))."
            ) from None
        raise UserError(f"Could not read {path}: {exc}. Save it with np.savez(path, X=X, y=y).") from None
    except Exception as exc:
        raise UserError(f"Could not read {path} as an npz archive: {exc}. Save it with np.savez(path, X=X, y=y).") from None


def _npz_features(arrays: dict[str, np.ndarray], key: str, path: Path, allow_missing: bool = False) -> np.ndarray:
    X = arrays[key]
    if X.dtype.kind not in "biuf":
        raise UserError(
            f'Array "{key}" in {path} has dtype {X.dtype}, not numbers. Encode it as numbers '
            f"(floats or integers) before saving."
        )
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] == 0 or X[0].size == 0:
        raise UserError(f'Array "{key}" in {path} is empty (shape {X.shape}). Save at least one row and one feature.')
    refuse_beyond_float32(X, [f"x{j}" for j in range(X.shape[1])] if X.ndim == 2 else [], f'{path} (array "{key}")')
    X = X.astype(np.float32)
    check_finite(X, [f"x{j}" for j in range(X.shape[1])] if X.ndim == 2 else [], f'{path} (array "{key}")',
                  allow_missing)
    return X


def load_npz(path: Path, target: str | list[str] | None, allow_missing: bool = False) -> Table:
    arrays = _read_npz(path)
    keys = ", ".join(arrays) or "none"
    xk = _npz_pick(arrays, NPZ_X_KEYS)
    if xk is None:
        raise UserError(
            f"{path} has no feature array: expected a key named X, x or features, found: {keys}. "
            f"Save it with np.savez(path, X=X, y=y)."
        )
    X = _npz_features(arrays, xk, path, allow_missing)
    if target is not None and not isinstance(target, str):
        raise UserError(f"For an npz archive, --target is one array name; got {target}. Keys in {path}: {keys}.")
    yk = target if target is not None else _npz_pick(arrays, NPZ_Y_KEYS)
    if target is not None and target not in arrays:
        raise UserError(f'{path} has no array "{target}".{did_you_mean(target, arrays)} Keys: {keys}. Pass --target with one of them.')
    y = _npz_target(arrays, yk, len(X), path) if yk else None
    X_test = y_test = None
    tk = _npz_pick(arrays, ("X_test", "x_test"))
    if tk is not None:
        X_test = _npz_features(arrays, tk, path, allow_missing)
        yt = _npz_pick(arrays, ("y_test",))
        y_test = _npz_target(arrays, yt, len(X_test), path) if yt else None
    return Table(X, y, [f"x{j}" for j in range(X.shape[1])] if X.ndim == 2 else [], path.stem, X_test, y_test)


def _npz_target(arrays: dict[str, np.ndarray], key: str, n: int, path: Path) -> np.ndarray:
    y = arrays[key]
    if len(y) != n:
        raise UserError(
            f'In {path} the features have {n} rows but "{key}" has {len(y)}. Save one label per row of X.'
        )
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))
        if bad.size:
            raise UserError(
                f'Target "{key}" in {path} has {bad.size} NaN/infinite row(s), the first at row {int(bad[0]) + 1}. '
                f"Drop those rows (from X too) or fill in the labels."
            )
    if y.dtype.kind in "US":
        y = y.astype(str).astype(object)
    return y


def npz_features(path: Path, feature_names: list[str], allow_missing: bool = False) -> np.ndarray:
    """The X array of an npz archive, for predict / evaluate: checked against the training's feature count."""
    arrays = _read_npz(path)
    xk = _npz_pick(arrays, NPZ_X_KEYS)
    if xk is None:
        raise UserError(f"{path} has no feature array: expected a key named X, x or features, found: {', '.join(arrays) or 'none'}. Save it with np.savez(path, X=X).")
    X = _npz_features(arrays, xk, path, allow_missing)
    if feature_names and X.ndim == 2 and X.shape[1] != len(feature_names):
        raise UserError(f"{path} has {X.shape[1]} feature columns but the model was trained on {len(feature_names)}. Use data with the same columns.")
    return X

"""Train / validation / test split rules (docs/practices/splits_and_scaling.md)."""
from __future__ import annotations

import numpy as np
import pytest

from trainwell.data.split import split_indices
from trainwell.core.errors import UserError


def _check_partition(n: int, parts: tuple[np.ndarray, ...]) -> None:
    allidx = np.concatenate(parts)
    assert all(p.dtype == np.int64 for p in parts)
    assert len(np.unique(allidx)) == len(allidx)          # disjoint
    assert len(allidx) == n and set(allidx.tolist()) == set(range(n))  # covering


def test_small_auto_is_80_10_10_stratified() -> None:
    y = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    tr, va, te, desc = split_indices(1797, y, seed=0)
    assert (len(tr), len(va), len(te)) == (1437, 180, 180)
    _check_partition(1797, (tr, va, te))
    assert "1437/180/180" in desc and "80/10/10" in desc and "stratified" in desc and "seed 0" in desc
    full = np.bincount(y) / len(y)
    for part in (tr, va, te):
        assert np.abs(np.bincount(y[part], minlength=10) / len(part) - full).max() < 0.02


def test_large_auto_is_1000_1000() -> None:
    y = (np.arange(20000) % 7 == 0).astype(int)
    tr, va, te, desc = split_indices(20000, y, seed=1)
    assert (len(tr), len(va), len(te)) == (18000, 1000, 1000)
    _check_partition(20000, (tr, va, te))
    assert abs(y[va].mean() - y.mean()) < 0.02 and abs(y[te].mean() - y.mean()) < 0.02


def test_seeded() -> None:
    a = split_indices(500, None, seed=3)
    b = split_indices(500, None, seed=3)
    c = split_indices(500, None, seed=4)
    assert all(np.array_equal(x, z) for x, z in zip(a[:3], b[:3]))
    assert not np.array_equal(a[1], c[1])
    assert "unstratified" in a[3]


def test_explicit_fractions_and_counts() -> None:
    tr, va, te, desc = split_indices(1000, None, [0.7, 0.2, 0.1])
    assert (len(tr), len(va), len(te)) == (700, 200, 100) and "0.7/0.2/0.1" in desc
    tr, va, te, desc = split_indices(1000, None, [500, 100, 50])
    assert (len(tr), len(va), len(te)) == (500, 100, 50) and "350 rows unused" in desc
    assert len(np.intersect1d(tr, va)) == 0 and len(np.intersect1d(va, te)) == 0


def test_predefined_test_set() -> None:
    tr, va, te, desc = split_indices(60000, np.arange(60000) % 10, has_test=True)
    assert (len(tr), len(va), len(te)) == (59000, 1000, 0) and "predefined test" in desc
    tr, va, te, _ = split_indices(1000, None, has_test=True)
    assert (len(tr), len(va), len(te)) == (900, 100, 0)
    tr, va, te, _ = split_indices(1000, None, [0.6, 0.2, 0.2], has_test=True)
    assert (len(tr), len(va), len(te)) == (750, 250, 0)


def test_falls_back_when_a_class_is_tiny() -> None:
    y = np.array([0] * 50 + [1] * 49 + [2])
    tr, va, te, desc = split_indices(100, y)
    assert "unstratified" in desc and "1 row" in desc
    _check_partition(100, (tr, va, te))


def test_tiny_n_never_empty_and_errors() -> None:
    tr, va, te, _ = split_indices(3, None)
    assert (len(tr), len(va), len(te)) == (1, 1, 1)
    with pytest.raises(UserError, match="only 2 row.*at least 3"):
        split_indices(2, None)
    with pytest.raises(UserError, match=r"validation set empty.*positive fraction"):
        split_indices(100, None, [1.0, 0.0, 0.0])
    tr, va, te, _ = split_indices(100, None, [0.9, 0.1, 0.0])   # an explicit 0 means: no test split
    assert (len(tr), len(va), len(te)) == (90, 10, 0)
    with pytest.raises(UserError, match="must sum to 1"):
        split_indices(100, None, [0.5, 0.2, 0.2])
    with pytest.raises(UserError, match="only 100"):
        split_indices(100, None, [90, 10, 10])

"""Train / validation / test split following docs/practices/splits_and_scaling.md.

More than 10,000 rows: 1,000 validation + 1,000 test (a bigger held-out set buys
little precision and costs training data); fewer: 80/10/10. Stratified so small
splits keep the class mix, seeded so a run can be reproduced, and always
explained in one line so the user sees what was decided.
"""
from __future__ import annotations

import numpy as np

from trainwell.core.errors import UserError

LARGE = 10_000
HOLDOUT = 1_000


def _sizes(n: int, split: str | list[float], has_test: bool) -> tuple[int, int, int, str]:
    """Rows for (train, val, test) and why, before any shuffling."""
    if isinstance(split, str):
        if split != "auto":
            raise UserError(f'Unknown split "{split}". Use "auto" or three numbers [train, val, test] (fractions summing to 1, or row counts).')
        if n > LARGE:
            val, test = HOLDOUT, (0 if has_test else HOLDOUT)
            why = "1,000 validation" + ("" if has_test else " + 1,000 test") + ": more than 10,000 rows"
        else:
            val, test = max(1, round(0.1 * n)), (0 if has_test else max(1, round(0.1 * n)))
            why = ("10% validation" if has_test else "80/10/10") + ": fewer than 10,000 rows"
        return n - val - test, val, test, why
    parts = [float(f) for f in split]
    if len(parts) != 3 or any(f < 0 or not np.isfinite(f) for f in parts):
        raise UserError(f"split must be three non-negative numbers [train, val, test]; got {list(split)}. Example: [0.8, 0.1, 0.1].")
    if abs(sum(parts) - 1.0) <= 1e-6:
        tr, va, te = parts
        if has_test:
            if tr + va <= 0:
                raise UserError(f"split {list(split)} leaves nothing for training and validation. Give the train and val fractions positive values.")
            val = max(1, round(va / (tr + va) * n)) if va > 0 else 0
            return n - val, val, 0, f"val fraction {va / (tr + va):.3g} of the non-test rows, from the spec"
        val = max(1, round(va * n)) if va > 0 else 0
        test = max(1, round(te * n)) if te > 0 else 0
        return n - val - test, val, test, f"fractions {tr:g}/{va:g}/{te:g} from the spec"
    if all(f.is_integer() for f in parts):
        tr, va, te = (int(f) for f in parts)
        if has_test:
            te = 0
        if tr + va + te > n:
            raise UserError(f"split asks for {tr}+{va}+{te} = {tr + va + te} rows but the data has only {n}. Lower the counts or use fractions.")
        unused = n - tr - va - te
        return tr, va, te, "row counts from the spec" + (f"; {unused} rows unused" if unused else "")
    raise UserError(f"split fractions must sum to 1 (got {list(split)}, sum {sum(parts):g}), or all be whole row counts. Example: [0.8, 0.1, 0.1].")


def hash_fractions(split: str | list[float], n: int) -> tuple[tuple[float, float, float], str]:
    """The split rule above as (train, val, test) probabilities, and the sentence that explains them.

    For a split decided row by row by a hash (data/streaming/hashing.py), which cannot pick
    exact counts: more than ``LARGE`` rows, ``HOLDOUT`` expected validation and test rows each;
    fewer, 80/10/10; row counts become fractions of ``n`` (training takes the rest).
    """
    if split == "auto":
        if n > LARGE:
            return ((1 - 2 * HOLDOUT / n, HOLDOUT / n, HOLDOUT / n),
                    f"{HOLDOUT:,} validation + {HOLDOUT:,} test (more than {LARGE:,} rows)")
        return (0.8, 0.1, 0.1), f"80/10/10 (at most {LARGE:,} rows)"
    f = [float(v) for v in split]
    if abs(sum(f) - 1.0) > 1e-6:          # row counts
        f = [v / n for v in f]
        f[0] = 1.0 - f[1] - f[2]
    return (f[0], f[1], f[2]), f"{f[0]:.0%}/{f[1]:.0%}/{f[2]:.0%} (given)"


def _take(pool: np.ndarray, k: int, strata: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` into (k rows, the rest), stratified when strata is given."""
    if k == 0:
        return pool[:0], pool
    if k == len(pool):
        return pool, pool[:0]
    rest, taken = shuffle_split(len(pool), k, None if strata is None else strata[pool], seed)
    return pool[taken], pool[rest]


def shuffle_split(n: int, k: int, strata: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, taken) positions: the rows scikit-learn's ``train_test_split(range(n), test_size=k,
    random_state=seed, stratify=strata)`` returns, the same arrays in the same order (its
    ShuffleSplit / StratifiedShuffleSplit with a NumPy RandomState; tests/test_start_up.py checks the
    equality on many seeds), in NumPy: importing scikit-learn costs about a second of start-up.
    Raises ValueError where scikit-learn does (a class with one row, fewer rows than classes)."""
    if not 0 < k < n:
        raise ValueError(f"test size {k} must be between 1 and {n - 1}")
    rng = np.random.RandomState(seed)
    if strata is None:
        perm = rng.permutation(n)
        return perm[k:], perm[:k]
    classes, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    if counts.min() < 2 or n - k < len(classes) or k < len(classes):
        raise ValueError("too few rows per class to stratify")
    by_class = np.split(np.argsort(inverse.reshape(-1), kind="stable"), np.cumsum(counts)[:-1])
    n_rest = _approximate_mode(counts, n - k, rng)
    n_taken = _approximate_mode(counts - n_rest, k, rng)
    rest: list[int] = []
    taken: list[int] = []
    for i in range(len(classes)):
        rows = by_class[i].take(rng.permutation(counts[i]), mode="clip")
        rest.extend(rows[:n_rest[i]])
        taken.extend(rows[n_rest[i]:n_rest[i] + n_taken[i]])
    return rng.permutation(rest), rng.permutation(taken)


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows drawn per class: the floor of the proportional share, the left-over rows given to the
    largest remainders, ties broken at random (scikit-learn's ``utils.extmath._approximate_mode``)."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add = min(len(inds), need)
            floored[rng.choice(inds, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)


def _draw(n: int, sizes: tuple[int, int, int], strata: np.ndarray | None, seed: int) -> tuple[np.ndarray, ...]:
    tr, va, te = sizes
    pool = np.arange(n, dtype=np.int64)
    used, _ = _take(pool, tr + va + te, strata, seed)
    test, rest = _take(used, te, strata, seed)
    val, train = _take(rest, va, strata, seed + 1)
    return train, val, test


def split_indices(n: int, strata: np.ndarray | None, split: str | list[float] = "auto", seed: int = 0,
                  has_test: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Sorted int64 (train, val, test) row indices and a one-line description of the decision.

    ``strata`` (class ids per row) makes the split stratified; when some class is too
    rare for that, the split falls back to a plain shuffled one and the description
    says so. ``has_test``: a predefined test set exists, so test is empty here.
    """
    if n < 3:
        raise UserError(f"The data has only {n} row(s) (n_samples = {n}); a train / validation / test split needs at least 3. Add more rows.")
    tr, va, te, why = _sizes(n, split, has_test)
    no_test_wanted = has_test or (not isinstance(split, str) and float(split[2]) == 0)
    empty = [name for name, k in (("train", tr), ("validation", va), ("test", te))
             if k <= 0 and not (name == "test" and no_test_wanted)]
    if empty:
        raise UserError(
            f"split {split!r} on {n} rows leaves the {' and '.join(empty)} set empty ({tr}/{va}/{te}). "
            f"Every set needs rows: give each a positive fraction, e.g. [0.8, 0.1, 0.1]."
        )
    how = "unstratified"
    if strata is not None:
        strata = np.asarray(strata)
        if strata.ndim != 1 or len(strata) != n:
            how = "unstratified (labels are not one class id per row)"
            strata = None
    if strata is not None:
        try:
            parts = _draw(n, (tr, va, te), strata, seed)
            how = "stratified"
        except ValueError:
            counts = np.unique(strata, return_counts=True)[1]
            how = f"unstratified (smallest class has {int(counts.min())} row(s), too few to stratify)"
            parts = _draw(n, (tr, va, te), None, seed)
    else:
        parts = _draw(n, (tr, va, te), None, seed)
    train, val, test = (np.sort(p).astype(np.int64) for p in parts)
    test_note = " + predefined test set" if has_test else ""
    desc = f"split {len(train)}/{len(val)}/{len(test)}{test_note} ({why}), {how}, seed {seed}"
    return train, val, test, desc

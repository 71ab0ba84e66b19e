"""The streaming split rule's hash: splitmix64 of (seed, row id), the same on every run, worker and machine.

A row's split (and its data-parallel rank) depends only on its id and the seed, never on the
reading order, so a streamed table splits identically in any file / row-group order.
splitmix64 is the finaliser of Steele, Lea & Flood, "Fast splittable pseudorandom number
generators" (OOPSLA 2014).
"""
from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def row_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """uint64 hash of (seed, row id): the same on every run, worker and machine."""
    key = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return splitmix64(np.asarray(ids, dtype=np.uint64) ^ key)


def hash_uniform(h: np.ndarray) -> np.ndarray:
    """Top 53 bits of the hash as a float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def assign_split(h: np.ndarray, fractions: tuple[float, float, float]) -> np.ndarray:
    """0 = train, 1 = validation, 2 = test, by comparing the hash uniform with the fractions."""
    u = hash_uniform(h)
    return (u >= fractions[0]).astype(np.int8) + (u >= fractions[0] + fractions[1]).astype(np.int8)


def assign_rank(h: np.ndarray, world: int) -> np.ndarray:
    """Data-parallel rank of each row (low bits of a re-mixed hash)."""
    if world <= 1:
        return np.zeros(len(h), dtype=np.int64)
    return (splitmix64(h) % np.uint64(world)).astype(np.int64)

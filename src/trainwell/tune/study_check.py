"""Whether a study's trials can be compared: the same question asked each time, and answers that differ.

A study is resumed by name (``tune`` again with more ``--trials``). If the search space or the base spec
changed in between, old and new trials answer different questions, and ranking them together (and
reporting the old best) is silently wrong: the stored question is compared with the new one and a
change is refused unless the user asks to mix them. And when many trials reach the very same validation
score (a tiny validation split: 30 rows give accuracies in steps of 1/30), the "best" one is a tie broken
by trial number; the user is told.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from trainwell.core.errors import UserError

ATTR = "trainwell"


def _changed(stored: Any, now: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like trees differ (the first few, for the message)."""
    if isinstance(stored, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(now), key=str):
            out += _changed(stored.get(key), now.get(key), f"{prefix}{key}.")
        return out
    return [] if json.dumps(stored, sort_keys=True) == json.dumps(now, sort_keys=True) else [prefix.rstrip(".")]


def _unmixable(stored: dict, space: dict) -> list[str]:
    """Parameters optuna cannot sample differently within one study: a changed set of choices (grid or
    choice), or another kind of range (int/float/log); only a numeric range's bounds may change."""
    out = []
    for path in sorted(set(stored) & set(space)):
        a, b = stored[path], space[path]
        same_kind = isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b) and "choice" not in a
        if a != b and not same_kind:
            out.append(path)
    return out


def refuse_changed_study(study: Any, space: dict, base: dict, name: str, where: str, force: bool) -> None:
    """Refuse to add trials to ``study`` when its stored search space or base spec differs from these."""
    stored = study.user_attrs.get(ATTR) or {}
    if not stored:
        return
    space = json.loads(json.dumps(space))
    if force:
        fixed = _unmixable(stored.get("space", {}), space)
        if fixed:
            raise UserError(f"Study {name!r} in {where} sampled {', '.join(fixed)} from other choices or another kind "
                            "of range; optuna cannot mix those in one study, even with --continue-study. Start a new "
                            "study (--study NEW_NAME or another --out/--storage).")
        return
    diffs = []
    if "space" in stored and stored["space"] != space:
        diffs.append("the search space (" + ", ".join(_changed(stored["space"], space)[:5] or ["its order"]) + ")")
    if "base" in stored:
        keys = _changed(stored["base"], json.loads(json.dumps(base)))
        if keys:
            diffs.append("the base spec (" + ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "") + ")")
    if diffs:
        raise UserError(
            f"Study {name!r} in {where} was run with a different {' and '.join(diffs)}; its trials would be ranked "
            "with the new ones as if they answered the same question. Start a new study (--study NEW_NAME or another "
            "--out/--storage), or mix them knowingly with --continue-study (tune(continue_study=True))."
        )


def record(study: Any, space: dict, base: dict, objective: str, sampler: str) -> None:
    """Store what this study asks, for the next resume to compare with."""
    study.set_user_attr(ATTR, {"space": space, "base": json.loads(json.dumps(base)), "objective": objective,
                               "sampler": sampler})


def tie_warning(frame: pd.DataFrame, objective: str) -> str | None:
    """A warning when several completed trials share the best value: the validation split cannot rank them."""
    if frame.empty or objective not in frame:
        return None
    values = frame.loc[frame["state"] == "complete", objective].astype(float)
    if len(values) < 2:
        return None
    best = values.iloc[0]                              # the frame is sorted best first
    ties = int((values == best).sum())
    if ties < 2:
        return None
    return (f"{ties} of {len(values)} trials tie at the best {objective} {best:.4g}: the validation split is too "
            "small to rank them, and the best is the first of them by trial number. Give validation more rows "
            "(data.split, e.g. --set 'data.split=[0.6,0.2,0.2]'), or rank by --objective val_loss.")

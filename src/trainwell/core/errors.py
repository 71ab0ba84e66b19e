"""The one exception type for bad user input.

A ``UserError`` carries a single paragraph saying what is wrong, where, and how
to fix it. The CLI prints it and exits with code 2; it never shows a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input that the user can fix (missing file, unknown option, bad values...)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' when a close match exists, else ''. Case is ignored first ("Relu" is "relu",
    not the closer-spelled "elu"), then spelling is compared in lower case."""
    choices = [str(c) for c in choices]
    same = [c for c in choices if c.lower() == str(word).lower()]
    lower = {c.lower(): c for c in choices}
    close = same or [lower[c] for c in difflib.get_close_matches(str(word).lower(), list(lower), n=1, cutoff=0.6)]
    return f' Did you mean "{close[0]}"?' if close else ""


def choose(kind: str, name: str, choices: Iterable[str]) -> str:
    """Validate ``name`` against ``choices`` or raise a UserError listing them."""
    choices = list(choices)
    if name in choices:
        return name
    raise UserError(
        f'Unknown {kind} "{name}".{did_you_mean(name, choices)} '
        f"Valid choices: {', '.join(choices)}."
    )


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out, so a message stays readable
    whatever a user's input held (a value quoted back can be megabytes)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                meaning: str = "") -> None:
    """Refuse a number outside [low, high] with a message naming the option and its range, before
    it reaches code that would fail far from the cause (``range(0, n, 0)``, an empty batch)."""
    if (low is None or value >= low) and (high is None or value <= high):
        return
    bounds = (f"between {low:g} and {high:g}" if low is not None and high is not None
              else f"at least {low:g}" if low is not None else f"at most {high:g}")
    raise UserError(f"{name}={value:g} is out of range: it must be {bounds}{f' ({meaning})' if meaning else ''}.")

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

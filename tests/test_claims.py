"""The README's counts are the registries' sizes (tests of each entry's formula live with each registry)."""
from __future__ import annotations

import re
from pathlib import Path

from trainwell.nn.activations import ACTIVATIONS
from trainwell.nn.init import INITIALIZERS
from trainwell.optim.optimizers import OPTIMIZERS
from trainwell.optim.schedules import SCHEDULES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _count(pattern: str) -> int:
    m = re.search(pattern, README)
    assert m, pattern
    return int(m.group(1))


def test_catalogue_counts_in_the_readme_are_the_registries():
    aliases = {"swish"}                                           # swish is silu under another name
    assert _count(r"(\d+) activations") == len(set(ACTIVATIONS) - aliases)
    assert _count(r"(\d+) initializers") == len(set(INITIALIZERS) - {"auto"})
    assert _count(r"(\d+) optimizers") == len(OPTIMIZERS)
    assert _count(r"(\d+) lr schedules") == len(SCHEDULES)

"""tools/mutation_check.py: the mutants it makes are the ones it lists (children before their parent), each one
change, docstrings and annotations untouched."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import mutation_check as mc  # noqa: E402

SOURCE = '''
def f(a: int = 3, b=True) -> float:
    """Docstring 1 + 2 stays."""
    if a < 2 and not b:
        return a + 2 * -a
    return a / 4
'''


def test_points_and_mutants():
    pts = mc.points(SOURCE)
    whats = [w for _, w in pts]
    assert whats == ["3 -> 4", "3 -> 2", "True -> False", "2 -> 3", "2 -> 1", "Lt -> LtE", "drop Not", "And -> Or",
                     "2 -> 3", "2 -> 1", "drop USub", "Mult -> Div", "Add -> Sub", "return None", "4 -> 5", "4 -> 3",
                     "Div -> Mult", "return None"]
    clean = ast.unparse(ast.parse(SOURCE))
    mutants = [mc.mutate(SOURCE, i) for i in range(len(pts))]
    assert len(set(mutants)) == len(mutants) and clean not in mutants
    assert all("Docstring 1 + 2 stays." in m for m in mutants)
    assert "a < 2 or not b" in mutants[whats.index("And -> Or")]
    assert "return a * 4" in mutants[whats.index("Div -> Mult")]


def test_sample_is_seeded_and_spans_modules():
    counts = {"a.py": 50, "b.py": 10}
    one, two = mc.choose(counts, 12, seed=1), mc.choose(counts, 12, seed=1)
    assert one == two and sum(map(len, one.values())) == 12
    assert mc.choose(counts, None, seed=0) == {"a.py": list(range(50)), "b.py": list(range(10))}

"""Mutation check of trainwell's core: does the suite notice when the code is wrong?

Each mutant flips one thing in one core module (an operator ``+``/``-``, ``*``/``/``, a
comparison ``<``/``<=``, a numeric constant by 1, ``True``/``False``, ``and``/``or``, a
dropped unary minus, a ``return`` of None) and runs the tests that cover that module
(``TARGETS``). A mutant is *killed* when they fail or time out. The share killed tells
how much of the module's behaviour the tests pin down (mutation testing: DeMillo, Lipton
and Sayward, "Hints on Test Data Selection", IEEE Computer 1978; the operators are
mutmut's, https://mutmut.readthedocs.io).

The shared working tree is never touched: ``src/``, ``tests/`` and ``pyproject.toml`` are
copied into a temporary folder (``../shared`` linked beside it, as the tests expect), each
mutant is written there, and that copy is first on ``PYTHONPATH``.

    python tools/mutation_check.py                      # every mutant of every target
    python tools/mutation_check.py --sample 120 --seed 0 --json out.json
    python tools/mutation_check.py --only train/early_stopping.py --list
    python tools/mutation_check.py --only nn/heads.py --index 12 --index 40   # re-run chosen mutants
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module (under src/trainwell) -> the fast tests that cover it
TARGETS: dict[str, list[str]] = {
    "train/fast.py": ["tests/test_fast_step.py", "tests/test_ensemble.py", "-k",    # the quick ones: 2 epochs each
                      "not 20_epochs and not round_trips and not sets6 and not denormals"],
    "train/early_stopping.py": ["tests/test_early_stopping_tiebreak.py", "tests/test_early_stopping.py"],
    "optim/optimizers.py": ["tests/test_optimizers.py"],
    "optim/ema_momentum.py": ["tests/test_optimizers.py"],
    "optim/schedules.py": ["tests/test_schedules.py"],
    "optim/regularizers.py": ["tests/test_regularizers.py"],
    "nn/heads.py": ["tests/test_heads.py", "tests/test_ensemble.py", "-k", "not round_trips"],
}

SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
              ast.FloorDiv: ast.Mult, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SWAP_BOOL = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass
class Mutant:
    module: str
    index: int          # the n-th mutation point of the module, in walk order
    line: int
    what: str
    status: str = ""    # killed / survived / timeout / error
    seconds: float = 0.0


def _docstring_ids(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (never worth mutating)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _annotation_ids(tree: ast.AST) -> set[int]:
    """ids of every node inside a type annotation (mutating those changes nothing at run time)."""
    ids = set()
    for node in ast.walk(tree):
        anns = []
        if isinstance(node, ast.arg) and node.annotation is not None:
            anns.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            anns.append(node.returns)
        if isinstance(node, ast.AnnAssign):
            anns.append(node.annotation)
        for ann in anns:
            ids.update(id(n) for n in ast.walk(ann))
    return ids


def mutations_of(node: ast.AST, skip: set[int]) -> list[tuple[str, callable]]:
    """The mutations of one node: (description, function that applies it to a copy of the node)."""
    if id(node) in skip:
        return []
    out = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAP_BINOP:
        new = SWAP_BINOP[type(node.op)]
        out.append((f"{type(node.op).__name__} -> {new.__name__}", lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAP_CMP:
                new = SWAP_CMP[type(op)]
                out.append((f"{type(op).__name__} -> {new.__name__}",
                            lambda n, i=i, new=new: n.ops.__setitem__(i, new())))
    elif isinstance(node, ast.BoolOp):
        new = SWAP_BOOL[type(node.op)]
        out.append((f"{type(node.op).__name__} -> {new.__name__}", lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        out.append((f"drop {type(node.op).__name__}", "unwrap"))
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        out.append((f"{node.value} -> {not node.value}", lambda n: setattr(n, "value", not n.value)))
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        out.append((f"{node.value!r} -> {node.value + 1!r}", lambda n: setattr(n, "value", n.value + 1)))
        if node.value != 0:
            out.append((f"{node.value!r} -> {node.value - 1!r}", lambda n: setattr(n, "value", n.value - 1)))
    elif isinstance(node, ast.Return) and node.value is not None and \
            not (isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("return None", lambda n: setattr(n, "value", ast.Constant(None))))
    return out


class _Apply(ast.NodeTransformer):
    """Applies the ``target``-th mutation point, counting points in the same order as ``points``."""

    def __init__(self, target: int, skip: set[int]):
        self.target, self.skip, self.count, self.what = target, skip, 0, ""

    def generic_visit(self, node):
        node = super().generic_visit(node)
        for what, apply in mutations_of(node, self.skip):
            if self.count == self.target:
                self.what = what
                if apply == "unwrap":
                    return node.operand
                apply(node)
            self.count += 1
        return node


def points(source: str) -> list[tuple[int, str]]:
    """Every mutation point of ``source``: (line, description), in the order _Apply counts them."""
    tree = ast.parse(source)
    skip = _docstring_ids(tree) | _annotation_ids(tree)
    found: list[tuple[int, str]] = []

    class Walk(ast.NodeVisitor):
        def generic_visit(self, node):
            super().generic_visit(node)
            found.extend((getattr(node, "lineno", 0), what) for what, _ in mutations_of(node, skip))

    Walk().visit(tree)
    return found


def mutate(source: str, index: int) -> str:
    """``source`` with its ``index``-th mutation applied."""
    tree = ast.parse(source)
    skip = _docstring_ids(tree) | _annotation_ids(tree)
    tree = ast.fix_missing_locations(_Apply(index, skip).visit(tree))
    return ast.unparse(tree)


def make_sandbox() -> Path:
    """A throw-away copy of src/, tests/ and pyproject.toml with ../shared linked beside it."""
    base = Path(tempfile.mkdtemp(prefix="trainwell-mutants-"))
    repo = base / "main"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src", repo / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", repo / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    shared = ROOT.parent / "shared"
    if shared.exists():
        (base / "shared").symlink_to(shared)
    return repo


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """``passed`` / ``failed`` / ``timeout`` for the tests against the sandbox's source.

    The tests run in a forked child of this process, which has imported the heavy libraries (torch, numpy,
    pandas, scikit-learn, pytest) but never trainwell: each mutant pays only for importing the mutated
    trainwell and running its tests, not for a fresh interpreter (~4 s of CPU saved a mutant).
    """
    args = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            *[t for i, t in enumerate(tests)       # options and their values kept; test files that exist
              if t.startswith("-") or (i and tests[i - 1].startswith("-")) or (repo / t).exists()]]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:                                   # the child: never returns
        code = 1
        try:
            os.chdir(repo)
            os.environ["PYTHONPATH"] = str(repo / "src")        # subprocesses the tests start see the mutant too
            sys.path[:0] = [str(repo / "src"), str(repo / "tests")]
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest
            code = int(pytest.main(args))
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("passed" if code == 0 else "failed"), time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.05)


def preload() -> None:
    """Import what every test imports, once, before the first fork (never trainwell itself)."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pytest  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import torch  # noqa: F401
    assert not any(m == "trainwell" or m.startswith("trainwell.") for m in sys.modules)


def check_module(repo: Path, module: str, indices: list[int], timeout: float, log) -> list[Mutant]:
    """Run each chosen mutant of one module; the original file is put back afterwards."""
    path = repo / "src" / "trainwell" / module
    original = path.read_text()
    pts = points(original)
    results = []
    try:
        for i in indices:
            m = Mutant(module, i, *pts[i])
            path.write_text(mutate(original, i))
            outcome, m.seconds = run_tests(repo, TARGETS[module], timeout)
            m.status = {"passed": "survived", "failed": "killed", "timeout": "timeout"}[outcome]
            log(f"{m.status:8s} {module}:{m.line} #{i} {m.what} ({m.seconds:.1f} s)")
            results.append(m)
    finally:
        path.write_text(original)
    return results


def choose(counts: dict[str, int], sample: int | None, seed: int) -> dict[str, list[int]]:
    """All mutants, or a seeded uniform sample of ``sample`` of them across modules."""
    every = [(mod, i) for mod, n in counts.items() for i in range(n)]
    if sample is not None and sample < len(every):
        every = sorted(random.Random(seed).sample(every, sample))
    chosen: dict[str, list[int]] = {mod: [] for mod in counts}
    for mod, i in every:
        chosen[mod].append(i)
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="a module under src/trainwell (repeatable)")
    ap.add_argument("--sample", type=int, help="run this many mutants, drawn uniformly (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index", type=int, action="append",
                    help="run this mutant of the one --only module (repeatable; numbers from --list)")
    ap.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the clean run + 20)")
    ap.add_argument("--list", action="store_true", help="list the mutation points and exit")
    ap.add_argument("--no-clean", action="store_true",
                    help="skip the clean run of each module's tests (when you know they pass; timeout 300 s)")
    ap.add_argument("--json", type=Path, help="write every mutant's outcome here")
    args = ap.parse_args(argv)
    modules = args.only or list(TARGETS)
    counts = {m: len(points((ROOT / "src" / "trainwell" / m).read_text())) for m in modules}
    if args.list:
        for m in modules:
            for i, (line, what) in enumerate(points((ROOT / "src" / "trainwell" / m).read_text())):
                print(f"{m}:{line} #{i} {what}")
        return 0
    repo = make_sandbox()
    preload()
    try:
        return _run(repo, modules, counts, args)
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)


def _run(repo: Path, modules: list[str], counts: dict[str, int], args) -> int:
    log = lambda s: print(s, flush=True)  # noqa: E731
    timeouts = {}
    for m in modules:   # a mutant is only meaningful against tests that pass on the clean code
        if args.no_clean:
            timeouts[m] = args.timeout or 300
            continue
        outcome, secs = run_tests(repo, TARGETS[m], timeout=600)
        if outcome != "passed":
            log(f"the clean tests of {m} do not pass ({outcome}); fix them first")
            return 2
        timeouts[m] = args.timeout or 3 * secs + 20
    chosen = choose(counts, args.sample, args.seed) if not args.index else {modules[0]: sorted(set(args.index))}
    results = [r for m in modules for r in check_module(repo, m, chosen[m], timeouts[m], log)]
    killed = sum(r.status in ("killed", "timeout") for r in results)
    total = sum(counts.values())
    log(f"\n{killed}/{len(results)} mutants killed ({100 * killed / max(len(results), 1):.1f} %); "
        f"{len(results)} run of {total} mutation points")
    for m in modules:
        rs = [r for r in results if r.module == m]
        k = sum(r.status != "survived" for r in rs)
        log(f"  {m}: {k}/{len(rs)} killed")
    for r in results:
        if r.status == "survived":
            log(f"survived: {r.module}:{r.line} #{r.index} {r.what}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

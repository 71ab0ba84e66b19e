"""Every runnable example in README.md and docs/ runs as written, so the docs cannot drift from the code.

From each page, in order: the commands of fenced ``console`` blocks (lines starting with ``$ ``; a line ending
in ``\\`` continues on the next; the other lines are output and are not checked, except that a command whose
output starts with ``error:`` must exit with 2, the code of a user error), and fenced ``python`` blocks. The
blocks of one page run one after the other in one temporary folder and one Python namespace, as a reader
follows the page; ``../shared/data`` is reachable from that folder as from the repository root. Two markers on
the line before a fence change this:

* ``<!-- example: skip (REASON) -->``: the block is not run (it needs a GPU, hours, a server or a Ctrl-C);
  the reason stays in the page's source.
* ``<!-- example: write NAME -->``: the block is a file the page asks the reader to save (a module, a YAML
  space): it is written to NAME in the folder.

README.md's tour is one of the pages: every command of it must exit with 0.
"""
from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*example:\s*(skip\s*\((?P<reason>.+)\)|write\s+(?P<name>\S+))\s*-->\s*$")


@dataclass
class Step:
    """One thing to do: run a shell command (expecting ``exit``), exec Python, or write a file."""
    kind: str          # "command", "python" or "write"
    line: int          # 1-based line in the page
    text: str
    exit: int = 0
    name: str = ""


def commands(lines: list[str], first: int) -> list[Step]:
    """The ``$ `` commands of a console block, with continuation lines and the exit code their output implies."""
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        start, text = i, lines[i][2:]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        output = lines[i + 1] if i + 1 < len(lines) else ""
        steps.append(Step("command", first + start, text, exit=2 if output.startswith("error:") else 0))
        i += 1
    return steps


def page_steps(page: Path) -> tuple[list[Step], list[tuple[int, str]]]:
    """The steps of a page in order, and the (line, reason) of each skipped block."""
    lines = page.read_text().splitlines()
    steps: list[Step] = []
    skipped: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence or not fence.group(1):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body, lang = lines[i + 1:end], fence.group(1)
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        if marker and marker.group("reason"):
            skipped.append((i + 1, marker.group("reason")))
        elif marker and marker.group("name"):
            steps.append(Step("write", i + 2, "\n".join(body) + "\n", name=marker.group("name")))
        elif lang == "console":
            steps += commands(body, i + 2)
        elif lang == "python":
            steps.append(Step("python", i + 2, "\n".join(body) + "\n"))
        i = end + 1
    return steps, skipped


DRIVER = r'''
import json, resource, subprocess, sys, traceback
from pathlib import Path


def cpu():
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

sys.path.insert(0, ".")                      # a module the page saved (example: write NAME) imports
page, steps = json.loads(Path(sys.argv[1]).read_text())
namespace = {"__name__": "__main__"}
for s in steps:
    where = f"{page}:{s['line']}"
    print(f"\n=== {where} ({s['kind']}) {s['text'][:200]}", flush=True)
    start = cpu()
    if s["kind"] == "write":
        Path(s["name"]).parent.mkdir(parents=True, exist_ok=True)
        Path(s["name"]).write_text(s["text"])
    elif s["kind"] == "python":
        try:
            exec(compile(s["text"], where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED {where}: the Python block raised", flush=True)
            sys.exit(1)
    else:
        code = subprocess.run(s["text"], shell=True, executable="/bin/bash").returncode
        if code != s["exit"]:
            print(f"FAILED {where}: exit {code}, expected {s['exit']}: {s['text']}", flush=True)
            sys.exit(1)
    print(f"--- {where}: {cpu() - start:.1f} s CPU", flush=True)
'''


def run_page(page: Path, folder: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run a page's steps in ``folder/work`` (``folder/shared`` points at the real shared data)."""
    steps, _ = page_steps(page)
    work = folder / "work"
    work.mkdir(parents=True)
    (folder / "shared").symlink_to(SHARED, target_is_directory=True)
    (folder / "steps.json").write_text(json.dumps([str(page.relative_to(ROOT)), [asdict(s) for s in steps]]))
    (folder / "driver.py").write_text(DRIVER)
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "120",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        return subprocess.run([sys.executable, str(folder / "driver.py"), str(folder / "steps.json")], cwd=work,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:    # say which step was running
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return subprocess.CompletedProcess(exc.cmd, 1, out + f"\nTIMEOUT after {timeout} s", "")


def test_the_extractor_reads_commands_outputs_and_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```console\n$ trainwell fit digits \\\n    --set train.epochs=3\n· output\n"
                    "$ trainwell fit digits --set optim.lrr=1\nerror: unknown key\n```\n"
                    "<!-- example: skip (needs a GPU) -->\n```python\nimport cuda\n```\n"
                    "<!-- example: write m.py -->\n```python\nX = 1\n```\n```python\nprint(X)\n```\n"
                    "```yaml\nnot: run\n```\n```console\nmake test\n```\n")
    steps, skipped = page_steps(page)
    assert [(s.kind, s.line, s.text, s.exit, s.name) for s in steps] == [
        ("command", 3, "trainwell fit digits --set train.epochs=3", 0, ""),
        ("command", 6, "trainwell fit digits --set optim.lrr=1", 2, ""),
        ("write", 15, "X = 1\n", 0, "m.py"),
        ("python", 18, "print(X)\n", 0, "")]
    assert skipped == [(10, "needs a GPU")]


def test_a_failing_example_fails_the_page(tmp_path):
    page = ROOT / "docs" / "_probe.md"                  # outside PAGES' list, removed at once
    try:
        page.write_text("```console\n$ true\n$ trainwell fit no-such-data\n```\n")
        res = run_page(page, tmp_path)
    finally:
        page.unlink()
    assert res.returncode == 1 and "FAILED docs/_probe.md:3: exit 2, expected 0" in res.stdout


def test_every_skipped_example_says_why_where_readers_see_it():
    """A skipped block's reason is in an HTML comment, which a rendered page hides; the line a reader sees
    just before it, ``*Not run by the docs test: REASON.*``, must give the same reason."""
    missing = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            marker = MARKER.match(line.strip())
            if not (marker and marker.group("reason")):
                continue
            shown = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
            if shown != f"*Not run by the docs test: {marker.group('reason')}.*":
                missing.append(f"{page.relative_to(ROOT)}:{i + 1}")
    assert not missing, missing


def test_the_readme_tour_is_run_literally():
    """The tour's commands are steps of README.md's page, none skipped: the test below runs them all."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start, end = lines.index("## A 30-second tour"), next(i for i, ln in enumerate(lines) if ln.startswith("## Features"))
    wanted = [(i + 1, ln[2:]) for i, ln in enumerate(lines[start:end], start) if ln.startswith("$ ")]
    steps, skipped = page_steps(ROOT / "README.md")
    assert len(wanted) >= 8 and not [ln for ln, _ in skipped if start < ln < end]
    assert set(wanted) <= {(s.line, s.text) for s in steps if s.kind == "command"}


RUNNABLE = [p for p in PAGES if page_steps(p)[0]]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_page_examples_run(page, tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_page(page, tmp_path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{page.relative_to(ROOT)}: {after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.1f} s CPU")
    print("\n".join(ln for ln in res.stdout.splitlines() if ln.startswith("--- ")))   # per step, with -s
    assert res.returncode == 0, (res.stdout[-6000:] + "\n--- stderr ---\n" + res.stderr[-4000:])

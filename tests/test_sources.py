"""Comments, CLI help, messages and docs cite sources a reader of this repository can open.

Codes such as "S3" or "PRACTICES §2" and the file DESIGN.md point into notes that are not
part of the repository; the catalogue with formulas and sources is docs/practices/. Every
relative link in README.md and docs/ must name a file that exists.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from trainwell.cli import app

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "trainwell"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

UNRESOLVABLE = re.compile(r"\bS[0-4]\b|PRACTICES\s*§|\bDESIGN\.md\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def unresolvable(text: str) -> list[str]:
    """The lines of ``text`` that cite a source outside the repository."""
    return [line.strip() for line in text.splitlines() if UNRESOLVABLE.search(line)]


def relative_links(text: str) -> list[str]:
    """Link targets outside fenced code that are paths in this repository (no scheme, not a bare #anchor)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue
            out.append(target.split("#", 1)[0])
    return out


def test_the_checks_catch_what_they_are_for():
    """The two detectors find the defects they exist for, and pass clean text."""
    assert unresolvable('help="Can the model overfit a small batch? (S1)"')
    assert unresolvable("# S0's target rule") and unresolvable("Train / val split following PRACTICES §1.")
    assert unresolvable("the run-directory contract of DESIGN.md")
    assert not unresolvable("He et al. 2015; Goodfellow et al. (2016), §7.8; docs/practices/early_stopping.md")
    assert not unresolvable("SELU, S = rho S + (1-rho) g^2, S5, IS3")
    md = "[a](a.md) [b](../b.md#x) [c](https://x.org/y.md) [d](#local) ![i](images/p.png)\n```\n[e](e.md)\n```\n"
    assert relative_links(md) == ["a.md", "../b.md", "images/p.png"]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_source_code_cites_sources_a_reader_can_open(path):
    assert unresolvable(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_sources_a_reader_can_open(path):
    assert unresolvable(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(path):
    missing = [t for t in relative_links(path.read_text(encoding="utf-8")) if not (path.parent / t).exists()]
    assert missing == [], f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_cli_help_cites_sources_a_reader_can_open():
    """The help a user reads (every command's rendered --help), not only the source text it comes from."""
    runner = CliRunner()
    names = ["", *typer.main.get_command(app).commands]
    pages = {name: runner.invoke(app, [name, "--help"] if name else ["--help"], terminal_width=200).output
             for name in names}
    assert len(pages) > 5 and "--overfit-check" in pages["diagnose"] and "Bengio 2012" in pages["diagnose"]
    assert {name: unresolvable(text) for name, text in pages.items() if unresolvable(text)} == {}

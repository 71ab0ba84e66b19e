"""Rich output of the doctor's findings and the overfit check (used by ``trainwell diagnose``)."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        items = list(v.items())
        text = ", ".join(f"{k}: {_fmt(x)}" for k, x in items[:8])
        return "{" + text + (f", ... ({len(items)} in all)" if len(items) > 8 else "") + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v[:8]) + (", ..." if len(v) > 8 else "") + "]"
    return json.dumps(v) if v is None else str(v)


def print_diagnosis(console: Console, result: dict, where: Path | None = None) -> None:
    findings = result.get("findings", [])
    if not findings:
        console.print(f"[green]no problems found[/green]{f' in {where}' if where else ''}: gradients, activations, "
                      f"learning rate and fit look healthy.")
    for f in findings:
        console.print(f"[{STYLE.get(f['severity'], '')}]{f['severity'].upper()}[/] [bold]{f['id']}[/bold]: {escape(f['title'])}")
        for k, v in f.get("evidence", {}).items():
            console.print(f"    [dim]{escape(str(k))}:[/dim] {escape(_fmt(v))}")
        console.print(f"    [green]remedy:[/green] {escape(f['remedy'])}")
    bv = result.get("bias_variance")
    if bv:
        t = Table(title="bias / variance (docs/diagnosis.md)", title_justify="left")
        for c in ("train error", "val error", "Bayes error", "bias", "variance", "verdict"):
            t.add_column(c, justify="right")
        cells = [f"{bv[k]:.2%}" for k in ("train_error", "val_error", "bayes_error", "bias", "variance")]
        if not bv.get("bayes_error_given", True):
            cells[2] += " (none given)"
        t.add_row(*cells, bv["verdict"])
        console.print(t)


def doctor_lines(result: dict | None, where: Path | None = None) -> list[str]:
    """What ``fit`` prints at its end: one summary line, then each error and warning with its remedy (infos are
    left to ``trainwell diagnose``), so that a run that failed quietly says so where the user is looking."""
    findings = [f for f in (result or {}).get("findings", []) if f["severity"] in ("error", "warning")]
    more = f" (details: trainwell diagnose {where})" if where is not None else ""
    if not findings:
        return [f"doctor: no errors or warnings{more}"]
    counts = [f"{n} {kind}{'s' if n > 1 else ''}" for kind in ("error", "warning")
              if (n := sum(f["severity"] == kind for f in findings))]
    lines = [f"doctor: {', '.join(counts)}{more}"]
    for f in sorted(findings, key=lambda f: f["severity"] != "error"):
        lines.append(f"[{STYLE[f['severity']]}]{f['severity'].upper()}[/] {escape(f['id'])}: {escape(f['title'])}"
                     f" — [green]remedy:[/green] {escape(f['remedy'])}")
    return lines


def print_overfit(console: Console, r: dict) -> None:
    style = "green" if r["passed"] else "bold red"
    console.print(f"[dim]·[/dim] before training: {r['metric']} {r['metric_before']:.4f}, loss {r['loss_before']:.4g}")
    console.print(f"[dim]·[/dim] after {r['steps']} full-batch steps on {r['n']} samples: {r['metric']} "
                  f"{r['metric_after']:.4f}, loss {r['loss_after']:.4g}")
    console.print(f"[{style}]{'PASSED' if r['passed'] else 'FAILED'}[/]: {escape(r['verdict'])}")

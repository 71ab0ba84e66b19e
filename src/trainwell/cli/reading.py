"""``trainwell summary``, ``list``, ``diagnose`` and ``report``: the commands that read a run directory or the
catalogue and print (or rewrite) what they find."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from trainwell.cli.common import TrustModule, fail, imports_done, out
from trainwell.core.errors import UserError


def summary(
    run_dir: Path = typer.Argument(..., help="A run directory written by `trainwell fit`."),
    trust_module: TrustModule = False,
) -> None:
    """Per-layer summary of a trained model: each layer's output shape and parameter count."""
    from trainwell.nn.summary import layer_rows   # lazy: torch
    from trainwell.run import load   # lazy: torch
    imports_done()
    try:
        run = load(run_dir, trust_module=trust_module)
        rows = layer_rows(run.model, run.arch.get("input_shape") or [run.arch["n_inputs"]])
    except UserError as exc:
        fail(exc)
        return
    members = run.arch.get("members", 1)
    table = Table(title=f"{run_dir}: {run.arch.get('type', 'mlp')}" + (f", {members} packed members" if members > 1
                                                                          else ""), title_justify="left")
    for column, justify in (("layer", "left"), ("type", "left"), ("output", "right"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for r in rows:
        table.add_row(r["name"], r["type"], str(r["output"]).replace("'", ""), f"{r['parameters']:,}")
    out.print(table)
    out.print(f"{sum(r['parameters'] for r in rows):,} parameters in all")


def list_catalogue() -> None:
    """Print the catalogue: every activation, initializer, optimizer, schedule, regularizer."""
    from trainwell.catalogue import catalogue   # lazy: torch (the optimizers' and activations' classes)
    imports_done()
    for area, entries in catalogue().items():
        table = Table(title=area, show_header=True, title_justify="left")
        table.add_column("spec name")
        table.add_column("description")
        for name, text in entries.items():
            table.add_row(name, text)
        out.print(table)


def diagnose(
    target: str = typer.Argument(..., help="A run directory; with --overfit-check: the data (built-in name or path)."),
    bayes_error: Optional[float] = typer.Option(None, "--bayes-error", help="Bayes (e.g. human) error as a fraction, "
                                                "for the bias verdict (docs/practices/bias_variance.md); without it "
                                                "bias is counted from 0 % and reported as an info."),
    overfit_check: bool = typer.Option(False, "--overfit-check",
                                       help="Can the model overfit a small batch? (Bengio 2012)"),
    n: int = typer.Option(32, "--n", min=1, help="Samples for --overfit-check."),
    steps: int = typer.Option(300, "--steps", min=1, help="Full-batch steps for --overfit-check."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override for --overfit-check: section.key=value."),
    save: bool = typer.Option(False, "--save", help="Rewrite diagnosis.json (and report.html) of the run."),
    trust_module: TrustModule = False,
) -> None:
    """The doctor: findings with evidence and remedies (or --overfit-check on data)."""
    from trainwell.diagnose import diagnose as doctor, overfit_check as check   # lazy: torch and pandas
    from trainwell.diagnose.report_cli import print_diagnosis, print_overfit   # lazy: torch (diagnose/__init__)
    from trainwell.diagnose.session import write_files   # lazy: torch
    from trainwell.run import load   # lazy: torch
    imports_done()
    try:
        if overfit_check:
            print_overfit(out, check(target, sets=list(set_ or []), n=n, steps=steps))
            return
        run = load(Path(target), trust_module=trust_module)
        result = doctor(run, bayes_error=bayes_error)
        print_diagnosis(out, result, Path(target))
        if save:
            from trainwell.report.html import write_report   # lazy: the report, only when it is rewritten
            run.diagnosis = result
            write_files(run, Path(target))
            run.seal(Path(target))          # model.json lists the new diagnosis files' checksums
            write_report(run, Path(target))
    except UserError as exc:
        fail(exc)


def report(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    trust_module: TrustModule = False,
) -> None:
    """Regenerate report.html of a run directory."""
    from trainwell.report.html import write_report   # lazy: the report (pandas, yaml), only for this command
    from trainwell.run import load   # lazy: torch
    imports_done()
    try:
        run = load(run_dir, trust_module=trust_module)
    except UserError as exc:
        fail(exc)
        return
    path = write_report(run, run_dir)
    out.print(f"wrote {path}")

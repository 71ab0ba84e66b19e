"""What ``fit`` shows while it trains: a live bar on a terminal, one plain line per epoch elsewhere.

A live bar redraws one line in place, so when stdout is a pipe or a file (CI, ``| tee``, ``nohup``) only
its last state would survive and a log would have no per-epoch record. There, each epoch is written as
one line that is never cut (epoch, lr, losses, metrics, seconds). On a terminal the bar's columns are
sized to the console width so that nothing in it is cropped, down to 60 columns.
"""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trainwell.train.fast import eligible
from trainwell.train.graphs import graphable

WIDE = 110          # at least this many columns: the long labels ("loss 0.1234 / val 0.2345")
BAR_MIN = 6         # a narrower bar is left out rather than drawn as a stub


def fit_console(verbose: bool) -> Console:
    """The console ``fit`` prints to: in a pipe or a file nothing is wrapped at rich's default 80 columns, so
    that each message stays one line of the log."""
    console = Console(quiet=not verbose, highlight=False)
    console.soft_wrap = not (console.is_terminal or console.is_jupyter)
    return console


def note(console: Console, text: str, bullet: str = "[dim]·[/dim]") -> None:
    """One decision line, ``· text`` (``bullet`` "  " for a line under the one before). On a terminal a long line wraps between words and its continuation is
    indented under the text; elsewhere it stays one line (soft wrap) so that a log can be grepped."""
    if not console.is_terminal:
        console.print(f"{bullet} {text}", soft_wrap=True)
        return
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(bullet, text)
    console.print(grid)


def epoch_text(row: dict, metric: str, wide: bool) -> str:
    """The losses and the metric of one epoch: long labels on a wide console, short ones otherwise."""
    tl, vl, tm, vm = row["train_loss"], row["val_loss"], row[f"train_{metric}"], row[f"val_{metric}"]
    if wide:
        return f"loss {tl:.4f} / val {vl:.4f}  {metric} {tm:.4f} / val {vm:.4f}"
    return f"loss {tl:.4f}/{vl:.4f} {metric[:3]} {tm:.4f}/{vm:.4f}"


def plain_line(row: dict, epochs: int, metric: str) -> str:
    """One epoch as a plain log line: every number of the history row, nothing cut."""
    return (f"epoch {row['epoch']}/{epochs}  lr {row['lr']:.4g}  loss {row['train_loss']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  {metric} {row[f'train_{metric}']:.4f}  "
            f"val_{metric} {row[f'val_{metric}']:.4f}  {row['seconds']:.2f} s")


class PlainLog:
    """One line per epoch for a console that is not a terminal."""

    def __init__(self, console: Console, epochs: int, metric: str):
        self.console, self.epochs, self.metric = console, epochs, metric

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __call__(self, state, row: dict) -> None:
        self.console.print(escape(plain_line(row, self.epochs, self.metric)), soft_wrap=True, highlight=False)


class LiveBar:
    """Rich progress bar with live train/validation loss and metric, sized to the console."""

    def __init__(self, console: Console, epochs: int, metric: str):
        self.metric = metric
        self.wide = console.width >= WIDE
        digits = len(str(epochs))
        text = len(epoch_text({"train_loss": 0, "val_loss": 0, f"train_{metric}": 0, f"val_{metric}": 0},
                              metric, self.wide))
        fixed = len("epoch ") + 2 * digits + 1 + text + len("0:00:00") + 4   # 4 gaps of one space
        bar = console.width - fixed - 1
        columns = [TextColumn("[bold]epoch"), MofNCompleteColumn()]
        if bar >= BAR_MIN:
            columns.append(BarColumn(bar_width=min(bar, 40)))
        columns += [TextColumn("{task.description}"), TimeElapsedColumn()]
        self.progress = Progress(*columns, console=console, transient=False, auto_refresh=False)
        self.last = 0.0
        self.task = self.progress.add_task("", total=epochs)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, state, row: dict) -> None:
        self.progress.update(self.task, completed=state.epoch, description=epoch_text(row, self.metric, self.wide))
        now = time.perf_counter()
        if now - self.last > 0.2 or state.stop or state.epoch == state.spec.train.epochs:
            self.progress.refresh()   # manual refresh: a refresh thread would fight the loop for the GIL
            self.last = now


def epoch_log(console: Console, epochs: int, metric: str) -> LiveBar | PlainLog:
    """The live bar on a terminal, plain lines otherwise (a pipe, a file, a notebook without a TTY)."""
    live = console.is_terminal or console.is_jupyter
    return (LiveBar if live else PlainLog)(console, epochs, metric)


def step_note(state: Any) -> str:
    """One line saying how each training step runs (docs/performance.md)."""
    fast = state.spec.train.fast
    device = next(state.model.parameters()).device.type
    if device == "cuda" and fast:
        why = graphable(state)
        return ("step: bf16 autocast, the whole step as a CUDA graph (train.fast)" if why is None
                else f"step: bf16 autocast (train.fast); no CUDA graph because of {why}")
    if eligible(state):
        return ("step: MLP backward written out, no autograd graph (train.backward=auto; "
                "weights equal autograd's to float tolerance)" + ("; train.fast: no per-step train metric, "
                                                                  "denormals flushed" if fast else ""))
    return "step: autograd" + (" (train.fast: no per-step train metric, denormals flushed)" if fast else "")


def summary_table(metrics: dict) -> Table:
    """The scores per split (train, val, test) as one table, printed at the end of a run."""
    table = Table(title="scores", show_lines=False)
    splits = [s for s in ("train", "val", "test") if metrics.get(s)]
    keys = [k for k, v in metrics[splits[0]].items() if isinstance(v, (int, float))] if splits else []
    table.add_column("metric")
    for s in splits:
        table.add_column(s, justify="right")
    for k in keys:
        table.add_row(k, *[f"{metrics[s].get(k):.4f}" if metrics[s].get(k) is not None else "-" for s in splits])
    return table

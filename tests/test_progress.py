"""What `trainwell fit` prints: plain per-epoch lines in a pipe, a live bar sized to the terminal, word-wrapped
notes, and at the end the doctor's errors and warnings with their remedies and the report's path."""
from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from rich.console import Console

from trainwell.train.progress import LiveBar, PlainLog, epoch_log, note

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_fit_in_a_pipe_logs_every_epoch_and_ends_with_the_diagnosis(cli, tmp_path):
    """stdout is a pipe here (as in CI or `| tee`): one plain line per epoch whose numbers are history.csv's, and
    a run whose ReLUs are all dead (bias -5) says so with the remedy, next to the report's path."""
    res = cli("fit", "digits", "--set", "model.bias_init=-5", "--set", "train.epochs=3", "--out", "runs/dead",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 3 and "━━ " not in res.stdout       # no bar (the score table has box lines)
    history = pd.read_csv(tmp_path / "runs/dead/history.csv")
    pattern = re.compile(r"epoch (\d+)/3  lr (\S+)  loss (\S+)  val_loss (\S+)  accuracy (\S+)  "
                         r"val_accuracy (\S+)  (\S+) s$")
    for line, (_, row) in zip(lines, history.iterrows()):
        m = pattern.fullmatch(line)
        assert m, line
        epoch, lr, loss, val_loss, acc, val_acc, seconds = map(float, m.groups())
        assert epoch == row["epoch"] and lr == pytest.approx(row["lr"], rel=1e-3)
        assert (loss, val_loss) == pytest.approx((row["train_loss"], row["val_loss"]), abs=1e-4)
        assert (acc, val_acc) == pytest.approx((row["train_accuracy"], row["val_accuracy"]), abs=1e-4)
        assert seconds == pytest.approx(row["seconds"], abs=0.01)
    out = res.stdout
    assert "· doctor: 1 error" in out and "(details: trainwell diagnose runs/dead)" in out
    dead = next(ln for ln in out.splitlines() if "ERROR dead_units" in ln)
    assert "remedy: Lower the learning rate" in dead
    assert out.rstrip().endswith("report: runs/dead/report.html")
    assert not [ln for ln in out.splitlines() if ln.startswith(" ") and not ln.startswith("  ")]   # nothing wrapped
    assert (tmp_path / "runs/dead/report.html").is_file()


def _row(epoch: int) -> dict:
    return {"epoch": epoch, "lr": 1e-3, "train_loss": 0.123456, "val_loss": 0.234567, "train_accuracy": 0.98765,
            "val_accuracy": 0.97531, "seconds": 0.05}


class _State:
    def __init__(self, epoch: int, epochs: int):
        self.epoch, self.stop = epoch, False
        self.spec = type("S", (), {"train": type("T", (), {"epochs": epochs})})()


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_live_bar_fits_the_terminal_and_keeps_every_number(width):
    """At 80 columns the bar used to be cut to `epoch 81/… ━━ … 0:00:…`: every column must show in full."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, color_system=None)
    bar = epoch_log(console, 1000, "accuracy")
    assert isinstance(bar, LiveBar)
    with bar:
        for epoch in (81, 82):
            bar(_State(epoch, 1000), _row(epoch))
    frames = [part for line in ANSI.sub("", buf.getvalue()).split("\n") for part in line.split("\r") if part.strip()]
    last = frames[-1].rstrip()
    assert len(last) <= width and "…" not in last, last
    assert re.match(r"epoch +82/1000 ", last) and last.endswith("0:00:00")
    for number in ("0.1235", "0.2346", "0.9877", "0.9753"):
        assert number in last
    assert ("━" in last) == (width >= 80)


def test_plain_log_when_the_console_is_not_a_terminal():
    buf = io.StringIO()
    console = Console(file=buf, width=40)           # a file: not a terminal; narrow, yet nothing is cut
    log = epoch_log(console, 5, "accuracy")
    assert isinstance(log, PlainLog)
    log(_State(1, 5), _row(1))
    assert buf.getvalue() == ("epoch 1/5  lr 0.001  loss 0.1235  val_loss 0.2346  accuracy 0.9877  "
                              "val_accuracy 0.9753  0.05 s\n")


def test_notes_wrap_between_words_under_their_text_on_a_terminal():
    text = ("scale: robust (median, interquartile range) + smooth clipping x/sqrt(1+(x/3)^2) on 57 input(s), "
            "fitted on the training split only")
    buf = io.StringIO()
    note(Console(file=buf, force_terminal=True, width=50, color_system=None), text)
    lines = [ln.rstrip() for ln in ANSI.sub("", buf.getvalue()).splitlines()]
    assert len(lines) > 1 and all(len(ln) <= 50 for ln in lines)
    assert lines[0].startswith("· scale:") and all(ln.startswith("  ") and ln[2] != " " for ln in lines[1:])
    assert " ".join(ln[2:] for ln in lines).split() == text.split()      # no word split across lines
    buf = io.StringIO()
    note(Console(file=buf, width=50), text)                              # a log: one line, grep-able
    assert buf.getvalue() == f"· {text}\n"

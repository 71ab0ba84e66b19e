"""The ``trainwell`` command line (typer). Bad input exits with code 2 and one paragraph.

The commands live by group: ``training`` (fit, lr-find, tune), ``serving`` (evaluate, predict, export,
encode) and ``reading`` (summary, list, diagnose, report); what they share is in ``common``. They are
registered here, in the order ``trainwell --help`` lists them.
"""
from __future__ import annotations

from trainwell.cli import reading, serving, training
from trainwell.cli.common import MESSAGE_LIMIT, app, err, main, out

for name, command in (("fit", training.fit), ("evaluate", serving.evaluate), ("predict", serving.predict),
                      ("export", serving.export), ("encode", serving.encode), ("summary", reading.summary),
                      ("list", reading.list_catalogue), ("diagnose", reading.diagnose),
                      ("lr-find", training.lr_find), ("report", reading.report), ("tune", training.tune)):
    app.command(name)(command)

__all__ = ["MESSAGE_LIMIT", "app", "err", "main", "out"]

"""What every ``trainwell`` command shares: the typer app, the two consoles, the way a UserError ends a
command (exit code 2 and one paragraph), and the options several commands declare alike."""
from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import threading
import warnings
from typing import Annotated, Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from trainwell.core.errors import UserError, shorten

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train neural networks well: the field's practices built in, explained and fast.")
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)

MESSAGE_LIMIT = 2000     # characters of an error shown: one paragraph, whatever input it quotes

# --trust-module, declared once for every command that loads a run directory (docs/topologies/custom.md)
TrustModule = Annotated[bool, typer.Option(
    "--trust-module", help="Run the custom module copied into the run directory (checked against its sha256); "
    "without it such a run is refused.")]
Target = Annotated[Optional[List[str]], typer.Option("--target", help="Target column(s) of a table.")]


def fail(exc: UserError) -> None:
    """End the command: the error's one paragraph on stderr, exit code 2."""
    err.print(f"[bold red]error:[/bold red] {shorten(str(exc), MESSAGE_LIMIT)}")
    raise typer.Exit(code=2)


def with_target(sets: list[str], target: list[str] | None) -> list[str]:
    """``--target`` as the first ``--set`` (``data.target``); later ``--set`` values win.

    The names are written as JSON strings, which the ``--set`` parser (YAML) reads back as strings
    whatever they look like: a column named ``2014``, ``true`` or ``1e3`` stays that name.
    """
    if target:
        sets.insert(0, f"data.target={json.dumps(target[0] if len(target) == 1 else list(target))}")
    return sets


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version   # lazy: only --version reads the installed distribution's metadata
        out.print(f"trainwell {version('trainwell')}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print trainwell's version and exit.")) -> None:
    """Train neural networks well: the field's practices built in, explained and fast."""


# OpenMP's default barrier wait spins its core; a two-thread run on busy cores then spends most of its time
# spinning against the thread it waits for (100,000 x 20 rows at load 7: 215 s wall and 91 s CPU, against
# 39 s and 15 s with passive waiting, the same model; docs/performance.md). OMP_WAIT_POLICY is the
# OpenMP standard's setting (https://www.openmp.org/spec-html/5.0/openmpse55.html); the user's value wins.
WAIT_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")

_collector = {"paused": False}    # whether ``run`` turned the collector off and ``imports_done`` is to turn it on


def run() -> int:
    """Run the command line and return its exit code: typer's usage errors give 2, a UserError or a path
    the system refuses gives 2 with one paragraph. Sets OpenMP's passive wait before any command loads
    torch (and with it the OpenMP runtime, which reads the setting once), and pauses the cyclic garbage
    collector while the command imports its libraries (``imports_done``)."""
    os.environ.setdefault(*WAIT_POLICY)
    warnings.showwarning = show_warning
    _collector["paused"] = gc.isenabled()
    gc.disable()
    try:
        return _run_app()
    finally:
        _resume_collector(freeze=False)     # a command that ended before its imports were done


def show_warning(message: Warning | str, category: type, filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """A warning as the command's user reads it: one line on stderr, ``warning: what and what to do``, without
    Python's source file, line number and quoted code (trainwell's warnings say where in the data, not in
    its code). Only the ``trainwell`` command installs it; a library user's warnings display is untouched."""
    err.print(f"[yellow]warning:[/yellow] {escape(shorten(str(message), MESSAGE_LIMIT))}")


def imports_done() -> None:
    """Called by a command once its libraries are imported, before its work: turn the collector back on,
    with everything imported so far moved out of its reach (``gc.freeze``).

    Importing torch, pandas and pydantic creates over a million objects that live as long as the process.
    With the collector on, each full collection walks all of them (about 0.07 s each on the 2-core machine)
    and the imports alone trigger four: 0.3 s of ``trainwell fit iris``'s 2.5 s, gen-0 and gen-1 passes
    another 0.1 s (docs/performance.md). Frozen objects are never walked again; cycles made by the command's
    own work are collected as usual (https://docs.python.org/3/library/gc.html#gc.freeze). Does nothing
    where ``run`` did not pause it (``app`` called directly, as the tests' runner does)."""
    _resume_collector(freeze=True)


def _resume_collector(freeze: bool) -> None:
    if _collector["paused"]:
        _collector["paused"] = False
        if freeze:
            gc.freeze()
        gc.enable()



def _run_app() -> int:
    try:
        app()
    except SystemExit as exc:
        return _exit_code(exc.code)
    except UserError as exc:  # raised outside a command body
        err.print(f"[bold red]error:[/bold red] {shorten(str(exc), MESSAGE_LIMIT)}")
        return 2
    except OSError as exc:    # a path the system refuses (too long, a folder, no permission): the user's to fix
        where = f" {escape(shorten(str(exc.filename), 200))}:" if exc.filename else ""
        err.print(f"[bold red]error:[/bold red]{where} {exc.strerror or exc}. Check the path and its permissions.")
        return 2
    return 0


def _exit_code(code: object) -> int:
    """``SystemExit.code`` as the process's status, as the interpreter maps it (None is 0, text is 1)."""
    if code is None or isinstance(code, int):
        return code or 0
    err.print(str(code))
    return 1


def leave(code: int) -> None:
    """End the process now, skipping the interpreter's teardown of its modules.

    Tearing down a process that imported torch (and pandas) takes about 0.4-0.55 s on the 2-core machine,
    a fifth of ``trainwell fit iris`` (docs/performance.md), and changes nothing a command wrote: every
    file of a run directory is already written, fsynced and renamed into place (core/io.atomic_write).
    What a normal exit does before the teardown is kept, in its order (Py_FinalizeEx): wait for the
    threads that are not daemons (``threading._shutdown``, which first stops idle thread pools), run the
    ``atexit`` handlers (MLflow ends its runs, logging flushes), flush stdout and stderr."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:          # an interpreter without it: the ordinary exit
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (``trainwell list | head``) or a closed stream
            pass
    os._exit(code)


def main() -> None:
    """Console-script entry point (``trainwell``): run the command, then leave without the teardown."""
    leave(run())

"""Excel workbooks (.xlsx, .xlsm): the first sheet as a table.

Practitioners keep their tables in spreadsheets. Saving one as CSV first costs time and the types Excel
already knows (dates, numbers, true/false), and in a European locale it changes the separator and the
decimal mark. pandas reads a sheet through openpyxl
(https://pandas.pydata.org/docs/reference/api/pandas.read_excel.html), an optional dependency:
``pip install 'trainwell[excel]'``. A formula is read as the value Excel last computed and stored; no
macro is ever run (openpyxl does not execute VBA). The legacy binary ``.xls`` format is not read.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainwell.core.errors import UserError

WORKBOOKS = (".xlsx", ".xlsm")


def read_workbook(path: Path, header: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """The first sheet of ``path`` as a DataFrame (its first row the header, unless ``header`` is false),
    and a note naming the sheet when the workbook holds several."""
    try:
        import openpyxl  # noqa: F401 - lazy: only workbooks need it, and it is an optional extra
    except ImportError:
        raise UserError(f"Reading {path.name} needs openpyxl, an optional dependency: "
                        "pip install 'trainwell[excel]' (or save the sheet as CSV and train on that).") from None
    with pd.ExcelFile(path, engine="openpyxl") as book:
        names = [str(n) for n in book.sheet_names]
        frame = book.parse(book.sheet_names[0], header=0 if header else None)
    notes = []
    if len(names) > 1:
        others = ", ".join(f'"{n}"' for n in names[1:6]) + (", ..." if len(names) > 6 else "")
        notes.append(f'read: sheet "{names[0]}" of {path.name}, the first of {len(names)} ({others} not read: '
                     f"save a sheet as its own workbook or CSV to train on it)")
    return frame, notes

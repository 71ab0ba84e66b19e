"""Excel workbooks (.xlsx, .xlsm): a sheet as a table (the first, or ``data.sheet``).

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


def read_workbook(path: Path, header: bool = True, sheet: str | int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A sheet of ``path`` as a DataFrame (its first row the header, unless ``header`` is false), and a note
    naming the sheet when the workbook holds several. ``sheet`` (data.sheet): a sheet's name, or its
    position as Excel's tabs show it (1 = the first); None: the first."""
    try:
        import openpyxl  # noqa: F401 - lazy: only workbooks need it, and it is an optional extra
    except ImportError:
        raise UserError(f"Reading {path.name} needs openpyxl, an optional dependency: "
                        "pip install 'trainwell[excel]' (or save the sheet as CSV and train on that).") from None
    with pd.ExcelFile(path, engine="openpyxl") as book:
        names = [str(n) for n in book.sheet_names]
        at = chosen_sheet(names, sheet, path)
        frame = book.parse(book.sheet_names[at], header=0 if header else None)
    notes = []
    if len(names) > 1:
        others = ", ".join(f'"{n}"' for n in (names[:at] + names[at + 1:])[:5]) + (", ..." if len(names) > 6 else "")
        notes.append(f'read: sheet "{names[at]}" of {path.name}, {at + 1} of {len(names)} ({others} not read; '
                     f"data.sheet=NAME reads another)")
    return frame, notes


def chosen_sheet(names: list[str], sheet: str | int | None, path: Path) -> int:
    """The 0-based index of ``sheet`` among ``names``: a name first (a sheet may be called "2024"), then a
    position counted from 1; a UserError listing the sheets when neither matches."""
    if sheet is None:
        return 0
    if str(sheet) in names:
        return names.index(str(sheet))
    if isinstance(sheet, int) and not isinstance(sheet, bool) and 1 <= sheet <= len(names):
        return sheet - 1
    listed = ", ".join(f'{i + 1}: "{n}"' for i, n in enumerate(names[:20])) + (", ..." if len(names) > 20 else "")
    raise UserError(f"data.sheet={sheet} is not a sheet of {path.name}; it has {len(names)} ({listed}). Set "
                    f"data.sheet to one of these names, or to its position counted from 1.")

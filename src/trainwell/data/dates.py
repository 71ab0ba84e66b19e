"""Date and time columns -> numeric features the network can use.

A text column counts as dates when at least ``DATE_SHARE`` (90 %) of its non-missing values
parse as dates with one format (pandas' guess from the first value, e.g. ``%Y-%m-%d`` or
``%b-%Y``, month first or day first, whichever reads more values, month first on a tie; if no
single format fits, pandas' per-value "mixed" parser), hold a digit (so weekday
names like "Thu" stay categories) and fall in the years 1800-2200 (so ranges like "10-20",
which dateutil reads as 20 October of year 1, stay text). Columns that are already datetimes
(a DataFrame's ``datetime64`` columns) are dates too.

Each date column becomes: year, month (1-12), weekday (0 = Monday), day of year (1-366), the
elapsed days since a reference day (the earliest date of the training split, stored with the
model) and, when some training value has a time of day, the hour (with minutes as a fraction).
Year and elapsed days carry the trend; month, weekday and day of year the seasons. A value
that does not parse is missing: ``data.impute`` fills it like any missing number. The format is
stored in ``model.json``, so predict parses new files the same way.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

DATE_SHARE = 0.9
YEARS = (1800, 2200)
MIXED = "mixed"
PARTS = ("year", "month", "weekday", "day of year", "elapsed days")


def _to_datetime(values: pd.Series, fmt: str | None) -> pd.Series:
    """Parse text (or pass datetimes) to naive datetime64; failures become NaT. Time zones -> UTC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # "could not infer format" and the like: we check the result
        if pd.api.types.is_datetime64_any_dtype(values):
            out = values
        else:
            text = values.astype(object).where(values.notna(), None)
            try:
                out = pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
            except (ValueError, TypeError):
                out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert(None)
    years = out.dt.year
    out = out.where((years >= YEARS[0]) & (years <= YEARS[1]))
    return out.astype("datetime64[ns]")


def parse_dates(values: pd.Series, fmt: str | None) -> np.ndarray:
    """datetime64[ns] array for a column (NaT where missing or unparseable); unique values parsed once."""
    values = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _to_datetime(values, None).to_numpy()
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    parsed = _to_datetime(pd.Series(uniques, dtype=object), fmt)
    table = np.append(parsed.to_numpy(), np.datetime64("NaT", "ns"))
    return table[np.where(codes >= 0, codes, len(uniques))]


def detect_format(uniques: pd.Series, counts: np.ndarray) -> tuple[str | None, float]:
    """(format, share of non-missing rows it parses) for text values, or (None, share) when not dates.

    ``uniques``: the distinct non-missing values as text; ``counts``: rows holding each.
    """
    text = uniques.astype(str)
    has_digit = text.str.contains(r"\d", regex=True).to_numpy()
    total = float(counts.sum())
    if total == 0 or counts[has_digit].sum() < DATE_SHARE * total:
        return None, 0.0
    first = next((t for t, d in zip(text, has_digit) if d), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = [] if first is None else [guess_datetime_format(first), guess_datetime_format(first, dayfirst=True)]
    best, share = None, 0.0
    for candidate in list(dict.fromkeys(g for g in guesses if g)) + [MIXED]:   # month first, day first, per value
        parsed = _to_datetime(text, candidate)
        s = float(counts[parsed.notna().to_numpy() & has_digit].sum()) / total
        if s > share:
            best, share = candidate, s
        if share >= 1.0:
            break
    return (best, share) if share >= DATE_SHARE else (None, share)


def reference_day(parsed: np.ndarray) -> str | None:
    """The earliest day among parsed values (ISO text), or None when none parsed."""
    valid = parsed[~np.isnat(parsed)]
    if valid.size == 0:
        return None
    return str(np.datetime_as_string(valid.min(), unit="D"))


def has_time(parsed: np.ndarray) -> bool:
    """Whether any value has a time of day other than midnight."""
    valid = parsed[~np.isnat(parsed)]
    return bool(valid.size and (valid != valid.astype("datetime64[D]")).any())


def date_names(col: str, time: bool, reference: str | None = None) -> list[str]:
    return [f"{col} ({p})" for p in PARTS] + ([f"{col} (hour)"] if time else [])


def date_features(parsed: np.ndarray, reference: str | None, time: bool) -> np.ndarray:
    """[N, 5 or 6] float64: year, month, weekday, day of year, elapsed days (, hour); NaN where NaT."""
    s = pd.Series(parsed)
    dt = s.dt
    ref = np.datetime64(reference or "1970-01-01", "ns")
    elapsed = (parsed - ref) / np.timedelta64(1, "D")
    cols = [dt.year, dt.month, dt.dayofweek, dt.dayofyear]
    out = [np.asarray(c, dtype=np.float64) for c in cols] + [np.asarray(elapsed, dtype=np.float64)]
    if time:
        out.append(np.asarray(dt.hour + dt.minute / 60.0, dtype=np.float64))
    X = np.column_stack(out)
    X[np.isnat(parsed)] = np.nan
    return X

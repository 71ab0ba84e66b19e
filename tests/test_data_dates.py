"""Date and time columns -> year, month, weekday, day of year, elapsed days (data/dates.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from trainwell.data.loading import load_table
from trainwell.data import dates
from trainwell.data.columns import ColumnEncoder
from trainwell.data.pipeline import prepare
from trainwell.nn.topologies import topology
from trainwell.data.split import split_indices
from trainwell.core.spec import Spec


def _fmt(values):
    s = pd.Series(values, dtype=object)
    counts = np.ones(len(s), dtype=np.int64)
    return dates.detect_format(s, counts)[0]


def test_what_counts_as_dates():
    assert _fmt(["2016-07-02", "2016-07-03", "2017-01-31"]) == "%Y-%m-%d"
    assert _fmt(["Mar-2018", "Feb-2018", "Jan-2018"]) is not None
    assert _fmt(["12/31/2020 10:00", "01/02/2021 08:30"]) is not None
    assert _fmt(["Thu", "Tue", "Fri"]) is None           # weekday names: no digit, a category
    assert _fmt(["10-20", "3-5", "20-30"]) is None       # ranges: dateutil reads year 1, outside 1800-2200
    assert _fmt(["C3", "C4", "A1"]) is None
    assert _fmt(["2016-07-02", "x", "y", "z"]) is None   # a quarter of the values is not enough


def test_features_are_the_right_numbers():
    parsed = dates.parse_dates(pd.Series(["2024-03-15", "2023-12-31", None, "garbage"]), "%Y-%m-%d")
    X = dates.date_features(parsed, "2024-01-01", time=False)
    # 2024-03-15 is a Friday (weekday 4), day 75 of a leap year, 74 days after 1 January
    np.testing.assert_array_equal(X[0], [2024, 3, 4, 75, 74])
    np.testing.assert_array_equal(X[1], [2023, 12, 6, 365, -1])
    assert np.isnan(X[2]).all() and np.isnan(X[3]).all()
    timed = dates.parse_dates(pd.Series(["2024-03-15 13:30", "2024-03-16 00:00"]), dates.MIXED)
    assert dates.has_time(timed)
    X = dates.date_features(timed, "2024-03-15", time=True)
    np.testing.assert_allclose(X[:, -1], [13.5, 0.0])
    np.testing.assert_allclose(X[:, 4], [13.5 / 24, 1.0])
    assert dates.date_names("d", True) == ["d (year)", "d (month)", "d (weekday)", "d (day of year)",
                                           "d (elapsed days)", "d (hour)"]


def test_datetime_dtype_columns_are_dates():
    df = pd.DataFrame({"t": pd.to_datetime(["2020-02-29", "2021-03-01"])})
    enc = ColumnEncoder.infer(df, ["t"])
    fitted = enc.fit(enc.parse(df))
    assert fitted.columns[0].kind == "date" and fitted.columns[0].reference == "2020-02-29"
    np.testing.assert_array_equal(fitted.transform(df)[:, [0, 1, 4]], [[2020, 2, 0], [2021, 3, 366]])


def test_reference_day_is_the_training_splits_first_day_and_missing_dates_share_one_indicator(tmp_path):
    n = 400
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    df = pd.DataFrame({"when": days.strftime("%d/%m/%Y"), "x": rng.normal(size=n)})
    df.loc[[3, 50, 77], "when"] = "unknown"
    df["y"] = df["x"] * 2 + 0.01 * (days - days.min()).days
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    spec = Spec.build(None, sets=[f"data.source={path}", "data.target=y"])
    prep = prepare(load_table(spec), spec, topology(spec.model.type).inputs)
    tr, _, _, _ = split_indices(n, None, "auto", 0)
    train_days = days[tr][~df["when"].iloc[tr].eq("unknown").to_numpy()]
    col = prep.pre.columns.columns[0]
    assert col.kind == "date" and col.format == "%d/%m/%Y"
    assert col.reference == train_days.min().strftime("%Y-%m-%d")
    assert [n_ for n_, _ in prep.pre.indicators] == ["when (missing)"]          # one indicator for 5 features
    assert prep.pre.indicators[0][1] == [0, 1, 2, 3, 4]
    raw = pd.DataFrame({"when": ["15/03/2020", "unknown"], "x": [0.0, 0.0]})
    X = prep.pre.columns.transform(raw)
    ref = pd.Timestamp(col.reference)
    np.testing.assert_array_equal(X[0, :5], [2020, 3, 6, 75, (pd.Timestamp("2020-03-15") - ref).days])
    assert np.isnan(X[1, :5]).all()
    net = prep.pre.transform_X(raw)
    assert np.isfinite(net).all() and net.shape[1] == 5 + 1 + 1

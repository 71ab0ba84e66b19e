"""Task detection and label coding."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainwell.data.labels import LabelCoder, detect_task, make_coder, other_reading
from trainwell.data.sources import load_source
from trainwell.core.errors import UserError


@pytest.mark.parametrize("name, task", [("digits", "multiclass"), ("iris", "multiclass"), ("wine", "multiclass"),
                                        ("breast_cancer", "binary"), ("diabetes", "regression"), ("circles", "binary")])
def test_detect_builtins(name: str, task: str) -> None:
    assert detect_task(load_source(name).y) == task


def test_detect_synthetic() -> None:
    rng = np.random.default_rng(0)
    assert detect_task(np.array(["a", "b", "a"])) == "binary"
    assert detect_task(np.array(["a", "b", "c"], dtype=object)) == "multiclass"
    assert detect_task(np.array([True, False, True])) == "binary"
    assert detect_task(rng.normal(size=50)) == "regression"
    assert detect_task(np.array([0.0, 1.0, 1.0, 0.0])) == "binary"
    assert detect_task(rng.integers(0, 5, 100)) == "multiclass"
    assert detect_task(rng.integers(0, 5, 100)[:, None]) == "multiclass"  # [N, 1] is one column
    assert detect_task(rng.integers(1000, 2000, 100)) == "regression"   # not class ids
    assert detect_task(np.arange(100) * 7) == "regression"              # sparse, many values
    assert detect_task(rng.integers(18, 90, 400)) == "regression"       # ages: 72 values on 400 rows
    assert detect_task(rng.integers(0, 15, 2000)) == "multiclass"       # 15 ids with 130 rows each
    assert detect_task(rng.integers(0, 25, 200)) == "regression"        # 25 values on 200 rows: a score
    assert detect_task(rng.integers(1, 30, 4177)) == "multiclass"       # 29 consecutive values, 144 rows each
    assert detect_task(rng.integers(0, 60, 4406)) == "multiclass"       # 60 consecutive ids


def test_a_count_with_a_long_tail_is_regression_not_classes() -> None:
    """Doctor visits (NMES1988: 0-89, 60 values in 4,406 rows) passed every class-id test but one: a
    count's tail leaves gaps between its values, ids encoded from labels do not."""
    rng = np.random.default_rng(0)
    visits = rng.negative_binomial(1, 0.15, 4406)                        # mean 5.7, most rows 0-3
    values = np.unique(visits)
    assert 10 < len(values) <= 100 and values[-1] - values[0] + 1 > len(values)   # gaps in the tail
    assert values[-1] - values[0] + 1 <= 2 * len(values)               # ... which the old rule allowed
    assert detect_task(visits) == "regression"
    assert "--set task=multiclass" in other_reading("regression", visits)
    ids = np.arange(len(values))[np.searchsorted(values, visits)]       # the same rows as consecutive ids
    assert detect_task(ids) == "multiclass"
    assert detect_task(np.eye(3)[rng.integers(0, 3, 30)]) == "multiclass"
    assert detect_task(rng.integers(0, 2, (30, 4))) == "multilabel"
    assert detect_task(rng.normal(size=(30, 2))) == "regression"


def _roundtrip(y: np.ndarray, task: str = "auto") -> LabelCoder:
    coder = make_coder(y, task)
    again = LabelCoder.from_json(json.loads(json.dumps(coder.to_json())))
    assert again == coder
    return again


def test_int_labels_round_trip() -> None:
    y = np.array([3, 1, 2, 3, 1] * 4)  # 3 values in 20 rows: class ids (in 5 rows it would be regression)
    assert detect_task(y[:5]) == "regression"
    c = _roundtrip(y)
    assert c.task == "multiclass" and c.classes == [1, 2, 3] and c.n_outputs == 3
    codes = c.encode(y)
    assert codes.dtype == np.int64 and codes.tolist() == [2, 0, 1, 2, 0] * 4
    back = c.decode(codes)
    assert back.tolist() == y.tolist() and back.dtype.kind == "i"


def test_string_labels_round_trip_and_binary_float() -> None:
    y = np.array(["spam", "ham", "ham", "spam"], dtype=object)
    c = _roundtrip(y)
    assert c.task == "binary" and c.classes == ["ham", "spam"] and c.n_outputs == 1
    codes = c.encode(y)
    assert codes.dtype == np.float32 and codes.tolist() == [1, 0, 0, 1]
    back = c.decode(codes.astype(int))
    assert back.tolist() == y.tolist() and isinstance(back[0], str)


def test_bool_labels_round_trip() -> None:
    y = np.array([True, False, False, True])
    c = _roundtrip(y)
    assert c.classes == [False, True] and c.encode(y).tolist() == [1, 0, 0, 1]
    assert c.decode(np.array([1, 0])).tolist() == [True, False]


def test_onehot_round_trip() -> None:
    idx = np.array([0, 2, 1, 2])
    y = np.eye(3)[idx]
    c = _roundtrip(y)
    assert c.task == "multiclass" and c.onehot and c.n_outputs == 3
    assert c.encode(y).tolist() == idx.tolist()
    assert c.decode(c.encode(y)).tolist() == idx.tolist()


def test_multilabel_round_trip() -> None:
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    c = _roundtrip(y)
    assert c.task == "multilabel" and c.n_outputs == 3 and c.classes == [0, 1, 2]
    enc = c.encode(y)
    assert enc.dtype == np.float32 and enc.shape == (3, 3)
    assert c.decode(np.array([[0.9, 0.2, 0.6]])).tolist() == [[1, 0, 1]]
    assert make_coder(y, "multilabel", names=["a", "b", "c"]).classes == ["a", "b", "c"]


def test_regression_round_trip() -> None:
    y = np.array([1.5, -2.0, 3.25])
    c = _roundtrip(y)
    assert c.task == "regression" and c.classes == [] and c.n_outputs == 1
    enc = c.encode(y)
    assert enc.shape == (3, 1) and enc.dtype == np.float32
    assert np.allclose(c.decode(enc), y) and c.decode(enc).shape == (3,)
    y2 = np.array([[1.0, 2.5], [3.0, 4.5]])
    c2 = _roundtrip(y2)
    assert c2.n_outputs == 2 and np.allclose(c2.decode(c2.encode(y2)), y2)


def test_unseen_label() -> None:
    c = make_coder(np.array(["a", "b", "c"]))
    with pytest.raises(UserError, match=r"'zebra' did not occur.*Known classes: 'a', 'b', 'c'"):
        c.encode(np.array(["a", "zebra"]))


def test_numbers_read_as_text_still_match() -> None:
    c = make_coder(np.array([0, 1, 2, 1]), "multiclass")
    assert c.encode(np.array(["2", "0"], dtype=object)).tolist() == [2, 0]


def test_make_coder_errors() -> None:
    with pytest.raises(UserError, match=r"needs at least two classes; found only one, 'a', in every row"):
        make_coder(np.array(["a", "a", "a"]))
    with pytest.raises(UserError, match=r"needs at least two classes; found only one, 4, in every row"):
        make_coder(np.array([4, 4, 4]), "multiclass")
    with pytest.raises(UserError, match=r"regression but the target holds text labels \(e\.g\. 'cat'\).*--task"):
        make_coder(np.array(["cat", "dog"]), "regression")
    with pytest.raises(UserError, match=r"binary but the target has 3 classes.*--task multiclass"):
        make_coder(np.array([0, 1, 2]), "binary")
    with pytest.raises(UserError, match=r'Unknown task "multiclas".*Did you mean "multiclass".*Valid tasks'):
        make_coder(np.array([0, 1]), "multiclas")
    with pytest.raises(UserError, match=r"multilabel.*not a 0/1 matrix"):
        make_coder(np.array([0, 1, 2]), "multilabel")
    with pytest.raises(UserError, match=r"NaN/infinite.*row 2"):
        make_coder(np.array([0.0, np.nan, 1.0]))


def test_an_integer_target_between_ids_and_counts_says_how_to_read_it_the_other_way() -> None:
    from trainwell.data.labels import other_reading
    rng = np.random.default_rng(0)
    ages = rng.integers(18, 90, 400)
    assert "--set task=multiclass" in other_reading(detect_task(ages), ages)
    rings = rng.integers(1, 30, 4177)
    assert "--set task=regression" in other_reading(detect_task(rings), rings)
    assert other_reading("multiclass", rng.integers(0, 3, 150)) == ""        # three ids: nothing to weigh
    assert other_reading("regression", rng.normal(size=50)) == ""


def test_integers_that_start_above_one_are_amounts_not_class_ids() -> None:
    """Years of schooling 12-18 (AER's CollegeDistance) read as 7 classes scored R² -0.21 where a linear
    regression scores 0.27: ids are numbered from 0 or 1, amounts start where the quantity does."""
    rng = np.random.default_rng(0)
    schooling = rng.choice([12, 13, 14, 15, 16, 17, 18], 4739, p=[.39, .13, .11, .12, .19, .05, .01])
    assert detect_task(schooling) == "regression"
    assert "--set task=multiclass" in other_reading("regression", schooling)
    assert detect_task(schooling - 12) == "multiclass"                  # the same levels as ids 0-6
    assert detect_task(schooling - 11) == "multiclass"                  # ... or 1-7
    assert other_reading("multiclass", schooling - 12) == ""          # a few ids: as iris, no line
    assert detect_task(rng.choice([2, 4], 300)) == "binary"             # two values: binary wherever they start
    assert other_reading("binary", rng.choice([2, 4], 300)) == ""


def test_a_few_values_spread_as_a_count_name_the_regression_reading() -> None:
    """Doctor visits 0-9 (AER's DoctorVisits) pass every class-id test, and read as 10 classes scored R²
    -0.048 where scikit-learn's MLP scored 0.102: the task stays (an ordinal label can look alike), the line
    says how to read them as a count."""
    visits = np.repeat(np.arange(10), [4141, 782, 174, 30, 24, 9, 12, 12, 5, 1])
    assert detect_task(visits) == "multiclass"
    line = other_reading("multiclass", visits)
    assert "spread as a count's" in line and "--set task=regression" in line and "largest value in 1" in line
    assert other_reading("multiclass", np.repeat([0, 1, 2], 50)) == ""                  # iris: balanced ids
    assert other_reading("multiclass", np.repeat(np.arange(5), [164, 55, 36, 35, 13])) == ""  # severity 0-4
    assert other_reading("multiclass", np.repeat(np.arange(10), 180)) == ""             # digits


def test_a_text_target_with_a_value_per_row_is_refused_with_what_to_do():
    dates = np.array([f"1969-01-{d:02d}" for d in range(1, 29)] + ["1969-01-01"] * 2, dtype=object)
    with pytest.raises(UserError, match=r"28 distinct values in 30 rows \(27 of them in one row only") as err:
        make_coder(dates)
    assert "--target" in str(err.value) and "--task multiclass" in str(err.value)
    assert make_coder(dates, "multiclass").n_outputs == 28                 # asked for: trained as given
    halves = np.array([f"c{i % 15}" for i in range(30)], dtype=object)   # 15 classes, two rows each: classes
    assert make_coder(halves).task == "multiclass"
    assert make_coder(np.array(["a", "b", "c"], dtype=object)).task == "multiclass"   # a toy table
    states = np.array([f"s{i}" for i in range(48)] + [f"s{i}" for i in range(37)], dtype=object)   # 85 rows
    with pytest.raises(UserError, match=r"48 distinct values in 85 rows \(11 of them in one row only; e\.g\. [^)]*\): as classes "
                                        r"they would average fewer than two rows each"):
        make_coder(states)          # Stat2Data's CanadianDrugs by State: most states have two rows, on average fewer

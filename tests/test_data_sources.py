"""Loading built-ins, files and IDX folders, and every bad-input error."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainwell.data.labels import detect_task
from trainwell.data.sources import BUILTINS, load_features, load_source, make_circles
from trainwell.core.errors import UserError

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
if not MNIST.is_dir():
    MNIST = Path("/work/shared/data/mnist")

EXPECTED = {
    "digits": ((1797, 64), "multiclass"),
    "breast_cancer": ((569, 30), "binary"),
    "diabetes": ((442, 10), "regression"),
    "iris": ((150, 4), "multiclass"),
    "wine": ((178, 13), "multiclass"),
    "circles": ((1000, 2), "binary"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_shapes_and_task(name: str) -> None:
    t = load_source(name)
    shape, task = EXPECTED[name]
    assert t.X.shape == shape and t.X.dtype == np.float32
    assert len(t.y) == shape[0] and len(t.feature_names) == shape[1]
    assert t.name == name and t.X_test is None
    assert detect_task(t.y) == task


def test_builtins_listed() -> None:
    assert set(BUILTINS) == set(EXPECTED)


def test_circles_balanced_deterministic_and_follows_the_ellipse() -> None:
    X, y = make_circles(1000, seed=3)
    assert X.shape == (1000, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0.4 <= y.mean() <= 0.6
    assert np.abs(X).max() <= 1.0
    X2, y2 = make_circles(1000, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = make_circles(1000, seed=4)
    assert not np.array_equal(X, X3)
    s = 2 * X[:, 0] ** 2 + 3 * X[:, 1] ** 2 + 0.75 * X[:, 0] + 0.25 * X[:, 1]
    assert s[y == 1].max() <= s[y == 0].min()


def test_mnist_idx_folder() -> None:
    if not MNIST.is_dir():
        pytest.skip("shared MNIST folder not present")
    t = load_source(str(MNIST))
    assert t.X.shape == (60000, 28, 28) and t.X.dtype == np.float32
    assert t.X_test.shape == (10000, 28, 28) and t.y_test.shape == (10000,)
    assert t.y.dtype == np.int64 and set(np.unique(t.y)) == set(range(10))
    assert t.X.max() == 255.0 and abs(float(t.X.mean()) - 33.318) < 0.01
    assert np.bincount(t.y_test).tolist()[:3] == [980, 1135, 1032]
    assert t.name == "mnist" and t.feature_names == []


def _write_idx(path: Path, arr: np.ndarray, gz: bool, magic: int | None = None) -> None:
    if arr.ndim == 3:
        head = struct.pack(">IIII", magic or 2051, *arr.shape)
    else:
        head = struct.pack(">II", magic or 2049, len(arr))
    data = head + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_tiny_idx_folder(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 4, 5))
    labs = np.array([0, 1, 2, 1, 0, 2, 1])
    folder = tmp_path / "tiny"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte", imgs, gz)
    _write_idx(folder / "train-labels-idx1-ubyte", labs, gz)
    _write_idx(folder / "t10k-images-idx3-ubyte", imgs[:3], gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labs[:3], gz)
    t = load_source(str(folder))
    assert t.X.shape == (7, 4, 5) and np.array_equal(t.X, imgs.astype(np.float32))
    assert t.y.tolist() == labs.tolist() and t.X_test.shape == (3, 4, 5)
    assert t.name == "tiny"
    assert load_features(str(folder), []).shape == (7, 4, 5)


def test_idx_bad_magic(tmp_path: Path) -> None:
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 3, 3)), False, magic=1234)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2), False)
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.*magic number 1234.*download it again"):
        load_source(str(tmp_path))


def test_idx_count_mismatch_and_missing_labels(tmp_path: Path) -> None:
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2)), False)
    with pytest.raises(UserError, match="no train-labels-idx1-ubyte"):
        load_source(str(tmp_path))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2), False)
    with pytest.raises(UserError, match="3 images but .* 2 labels"):
        load_source(str(tmp_path))


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no train-images-idx3-ubyte"):
        load_source(str(tmp_path))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "size": [50.0, 80.5, 120.0, 65.0, 90.0],
        "rooms": [2, 3, 4, 2, 3],
        "garden": [True, False, True, False, True],
        "kind": ["flat", "house", "house", "flat", "house"],
    })


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_round_trip_with_string_labels(tmp_path: Path, fmt: str) -> None:
    df = _frame()
    path = tmp_path / f"houses.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    t = load_source(str(path), target="kind")
    assert t.name == "houses" and t.feature_names == ["size", "rooms", "garden"]
    assert t.X.dtype == np.float32 and t.X.shape == (5, 3)
    assert t.X[:, 2].tolist() == [1, 0, 1, 0, 1]  # booleans -> 0/1
    assert list(t.y) == df["kind"].tolist() and isinstance(t.y[0], str)
    assert detect_task(t.y) == "binary"


def test_target_autodetected_and_multi_target(tmp_path: Path) -> None:
    df = _frame().drop(columns="kind").assign(label=[0, 1, 2, 1, 0])
    path = tmp_path / "a.csv"
    df.to_csv(path, index=False)
    t = load_source(str(path))
    assert t.y.tolist() == [0, 1, 2, 1, 0] and "label" not in t.feature_names
    t2 = load_source(str(path), target=["size", "rooms"])
    assert t2.y.shape == (5, 2) and t2.feature_names == ["garden", "label"]


def test_target_ambiguous_or_absent(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    _frame().drop(columns="kind").to_csv(path, index=False)
    with pytest.raises(UserError, match=r"b\.csv.*Columns: size, rooms, garden.*pass --target COLUMN"):
        load_source(str(path))
    _frame().assign(y=1, label=2).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"several candidate columns \(y, label\).*--target"):
        load_source(str(path))


def test_unknown_target_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(UserError, match=r'"kinds" is not in .*c\.csv.*Did you mean "kind".*Columns: size, rooms'):
        load_source(str(path), target="kinds")


def test_non_numeric_feature_names_column_row_value(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    df = _frame()
    df["rooms"] = df["rooms"].astype(object)
    df.loc[3, "rooms"] = "three"
    df.to_csv(path, index=False)
    with pytest.raises(UserError, match=r'"rooms" in .*d\.csv is not numeric: row 4 \(line 5 of the file\) holds \'three\'.*encode.*or drop it'):
        load_source(str(path), target="size")


def test_nan_and_inf_in_features(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    df = _frame()
    df.loc[[1, 3], "size"] = np.nan
    df.to_csv(path, index=False)
    with pytest.raises(UserError, match=r'column "size" has 2 of them, the first in row 2.*impute'):
        load_source(str(path), target="kind")
    npz = tmp_path / "f.npz"
    X = np.ones((4, 3))
    X[2, 1] = np.inf
    np.savez(npz, X=X, y=np.arange(4))
    with pytest.raises(UserError, match=r'f\.npz.*column "x1" has 1 of them, the first in row 3'):
        load_source(str(npz))


def test_nan_target(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    df = _frame()
    df.loc[2, "kind"] = None
    df.to_csv(path, index=False)
    with pytest.raises(UserError, match=r'Target column "kind" in .*g\.csv has 1 missing value.*row 3.*Drop the rows'):
        load_source(str(path), target="kind")


def test_empty_files(tmp_path: Path) -> None:
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(UserError, match=r"blank\.csv is empty"):
        load_source(str(blank))
    header = tmp_path / "header.csv"
    header.write_text("a,b,target\n")
    with pytest.raises(UserError, match=r"header\.csv has a header but no data rows"):
        load_source(str(header))
    only = tmp_path / "only.csv"
    only.write_text("target\n1\n0\n")
    with pytest.raises(UserError, match=r"only\.csv has no feature columns.*--target"):
        load_source(str(only))


def test_missing_file_and_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.csv does not exist.*Check the path"):
        load_source(str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match=r'"digts".*Did you mean "digits".*Built-ins: digits, breast_cancer.*\.npz'):
        load_source("digts")
    other = tmp_path / "data.xls"      # the legacy binary format: not read (docs/data.md)
    other.write_text("x")
    with pytest.raises(UserError, match=r"Unsupported data file .*data\.xls .*Convert it.*Excel \.xlsx"):
        load_source(str(other))
    broken = tmp_path / "data.xlsx"
    broken.write_text("x")                # not a workbook: one line saying so, no traceback
    with pytest.raises(UserError, match=r"Could not read .*data\.xlsx.*valid xlsx file"):
        load_source(str(broken))


def test_npz_round_trip_keys_and_onehot(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3))
    y = np.eye(4)[rng.integers(0, 4, 20)]
    path = tmp_path / "arr.npz"
    np.savez(path, features=X, labels=y)
    t = load_source(str(path))
    assert np.allclose(t.X, X) and t.X.dtype == np.float32 and np.array_equal(t.y, y)
    assert t.feature_names == ["x0", "x1", "x2"] and t.name == "arr"
    assert detect_task(t.y) == "multiclass"
    words = tmp_path / "words.npz"
    np.savez(words, X=X, y=np.array(["cat", "dog"] * 10))
    t = load_source(str(words))
    assert list(t.y[:2]) == ["cat", "dog"] and isinstance(t.y[0], str)
    imgs = tmp_path / "imgs.npz"
    np.savez(imgs, X=rng.integers(0, 255, (6, 5, 5)), y=np.arange(6) % 2, X_test=np.zeros((2, 5, 5)), y_test=np.array([0, 1]))
    t = load_source(str(imgs))
    assert t.X.shape == (6, 5, 5) and t.feature_names == [] and t.X_test.shape == (2, 5, 5)


def test_npz_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, data=np.zeros((3, 2)))
    with pytest.raises(UserError, match=r"bad\.npz has no feature array.*found: data.*np\.savez"):
        load_source(str(path))
    np.savez(path, X=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(UserError, match=r"features have 3 rows but \"y\" has 4"):
        load_source(str(path))
    np.savez(path, X=np.zeros((3, 2)), y=np.array(["a", None, "b"], dtype=object))
    with pytest.raises(UserError, match=r"pickle.*fixed-width string"):
        load_source(str(path))
    np.savez(path, X=np.zeros((3, 2)), y=np.array([1.0, np.nan, 0.0]))
    with pytest.raises(UserError, match=r"NaN/infinite row.*row 2"):
        load_source(str(path))


def test_npz_without_y_has_no_target(tmp_path: Path) -> None:
    path = tmp_path / "x_only.npz"
    np.savez(path, x=np.ones((5, 2)))
    assert load_source(str(path)).y is None


def test_load_features_orders_columns_and_ignores_extras(tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    _frame().to_csv(path, index=False)
    X = load_features(str(path), ["rooms", "size"], target="kind")
    assert X.dtype == np.float32 and X[:, 0].tolist() == [2, 3, 4, 2, 3] and X[0, 1] == 50.0
    with pytest.raises(UserError, match=r"new\.csv lacks 2 feature column\(s\).*baths, floor"):
        load_features(str(path), ["size", "baths", "floor"])
    assert load_features("iris", []).shape == (150, 4)
    npz = tmp_path / "n.npz"
    np.savez(npz, X=np.zeros((4, 3)))
    with pytest.raises(UserError, match="has 3 feature columns but the model was trained on 2"):
        load_features(str(npz), ["a", "b"])


def test_a_file_without_a_header_row_is_named_as_such(tmp_path: Path) -> None:
    """UCI's adult.data has no header: --target finds no column, and the message says the first line is data."""
    rows = "".join(f"{20 + i % 40}, Private, {30 + i % 20}, {'>50K' if i % 3 == 0 else '<=50K'}\n" for i in range(60))
    (tmp_path / "adult.data").write_text(rows)
    with pytest.raises(UserError, match=r'"income" is not in .*first line looks like data.*data\.header=false'
                                        r'.*column_1 to column_4'):
        load_source(str(tmp_path / "adult.data"), "income")
    (tmp_path / "adult.csv").write_text("age, workclass, hours, income\n" + rows)
    table = load_source(str(tmp_path / "adult.csv"), "income")                  # with the header line added
    assert {"age", "hours", "workclass=Private"} <= set(table.feature_names) and len(table.y) == 60
    with pytest.raises(UserError) as named:
        load_source(str(tmp_path / "adult.csv"), "salary")
    assert "first line looks like data" not in str(named.value)                 # real names: no such hint


def test_data_header_false_names_the_columns_by_position_from_fit_to_predict(cli, tmp_path: Path) -> None:
    """data.header=false: the first line is a row, the columns are column_1..column_N, and the trained
    model reads new header-less files the same way (the flag is stored with its column encoder)."""
    from trainwell.core.spec import Spec
    from trainwell.data.columns import ColumnEncoder
    rng = np.random.default_rng(0)
    rows = [(float(a), ["red", "blue"][int(a > 0)], int(a + 0.3 * rng.normal() > 0)) for a in rng.normal(size=200)]
    text = "".join(f"{a:.4f},{c},{y}\n" for a, c, y in rows)
    (tmp_path / "plain.data").write_text(text)
    spec = Spec.build(None, sets=[f"data.source={tmp_path / 'plain.data'}", "data.header=false"])
    table = load_source(str(tmp_path / "plain.data"), "column_3", data=spec.data)
    assert len(table.y) == 200                                             # the first line is a row, not names
    assert table.feature_names[0] == "column_1" and "column_2=red" in table.feature_names
    assert any("has no header line (data.header=false)" in n for n in table.notes)
    assert ColumnEncoder.from_json(table.columns.to_json()).options.header is False
    res = cli("fit", str(tmp_path / "plain.data"), "--target", "column_3", "--set", "data.header=false",
              "--set", "train.epochs=3", "--set", "train.progress=false", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    (tmp_path / "new.data").write_text(text[:text.index("\n", 200) + 1])  # a few rows, no header either
    res = cli("predict", str(tmp_path / "run"), str(tmp_path / "new.data"), "--out", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == text[:text.index("\n", 200) + 1].count("\n")
    res = cli("evaluate", str(tmp_path / "run"), str(tmp_path / "plain.data"), "--target", "column_3")
    assert res.returncode == 0 and "accuracy" in res.stdout, res.stderr
    streamed = Spec.build(None, sets=[f"data.source={tmp_path / 'plain.data'}", "data.header=false",
                                      "data.streaming=true"])
    from trainwell.data.streaming import wants_streaming
    with pytest.raises(UserError, match=r"data.header=false.*add a header line"):
        wants_streaming(streamed)

"""The command line: a full fit/evaluate/predict round, and bad input -> exit 2, one paragraph, no traceback."""
import numpy as np
import pandas as pd
import pytest

from trainwell.data.sources import load_source


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory):
    """Iris as a CSV with string labels, so predictions must be decoded back to names."""
    d = tmp_path_factory.mktemp("csv")
    t = load_source("iris")
    frame = pd.DataFrame(t.X, columns=[f"f{i}" for i in range(t.X.shape[1])])
    frame["species"] = np.array(["setosa", "versicolor", "virginica"])[t.y]
    path = d / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_evaluate_predict_round_trip(cli, labelled_csv, tmp_path):
    run_dir = tmp_path / "run"
    res = cli("fit", str(labelled_csv), "--target", "species", "--out", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert "split" in res.stdout and "init:" in res.stdout
    assert (run_dir / "report.html").exists()
    res = cli("evaluate", str(run_dir))
    assert res.returncode == 0 and "accuracy" in res.stdout
    out = tmp_path / "pred.csv"
    res = cli("predict", str(run_dir), str(labelled_csv), "--out", str(out), "--proba")
    assert res.returncode == 0, res.stderr
    pred = pd.read_csv(out)
    truth = pd.read_csv(labelled_csv)["species"]
    assert set(pred["prediction"]) <= {"setosa", "versicolor", "virginica"}
    assert (pred["prediction"] == truth).mean() > 0.85
    assert np.allclose(pred.filter(like="proba_").sum(axis=1), 1.0, atol=1e-5)


GOOD = "a,b,y\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40))

# case -> (CSV text written to d.csv or None, extra CLI args, text the message must contain)
BAD_INPUT = {
    "missing_file": (None, ["fit", "nope.csv", "--target", "y"], "nope.csv"),
    "unknown_target": (GOOD, ["fit", "d.csv", "--target", "yy"], "yy"),
    # strict mode (data.impute=none): a stray word or a NaN is refused; by default both are missing values, imputed
    "strings_in_numeric": (GOOD.replace("\n5,5,1", "\nfive,5,1"), ["fit", "d.csv", "--target", "y", "--set",
                                                                     "data.impute=none"], "five"),
    "nan": (GOOD.replace("\n5,5,1", "\n,5,1"), ["fit", "d.csv", "--target", "y", "--set", "data.impute=none"], "NaN"),
    "inf": (GOOD.replace("\n5,5,1", "\ninf,5,1"), ["fit", "d.csv", "--target", "y"], "inf"),
    "one_class": (GOOD.replace(",1\n", ",0\n"), ["fit", "d.csv", "--target", "y", "--task", "binary"], "class"),
    "empty": ("a,b,y\n", ["fit", "d.csv", "--target", "y"], "d.csv"),
    "unknown_spec_key": ("optim:\n  learning_rate: 0.1\n", ["fit", "iris", "--spec", "d.csv"], "learning_rate"),
    "bad_set_value": (None, ["fit", "iris", "--set", "train.batch_size=-4"], "batch_size"),
    "unknown_dataset": (None, ["fit", "digitz"], "digits"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_paragraph(cli, tmp_path, case):
    text, args, expect = BAD_INPUT[case]
    if text is not None:
        (tmp_path / "d.csv").write_text(text)
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert expect in res.stderr, res.stderr
    assert res.stderr.startswith("error:")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_predict_on_a_file_missing_a_feature_column(cli, labelled_csv, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("fit", str(labelled_csv), "--target", "species", "--out", str(run_dir),
               "--set", "train.epochs=3").returncode == 0
    frame = pd.read_csv(labelled_csv).drop(columns=["f2"])
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    res = cli("predict", str(run_dir), str(bad), "--out", str(tmp_path / "p.csv"))
    assert res.returncode == 2 and "f2" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "p.csv").exists()


def test_a_warning_reads_as_one_line_without_python_internals(cli, tmp_path):
    """A value not seen in training is a warning the user acts on: one ``warning:`` line naming the column
    and the file, not Python's ``path/to/frames.py:165: UserWarning`` and a quoted line of trainwell's code."""
    rows = "".join(f"{i},{'red' if i % 2 else 'blue'},{i % 2}\n" for i in range(60))
    train, new = tmp_path / "t.csv", tmp_path / "new.csv"
    train.write_text("a,colour,y\n" + rows)
    new.write_text("a,colour\n1,green\n2,blue\n")
    assert cli("fit", str(train), "--target", "y", "--out", str(tmp_path / "r"), "--set", "train.epochs=2").returncode == 0
    res = cli("predict", str(tmp_path / "r"), str(new), "--out", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "colour" in lines[0] and "green" in lines[0]
    assert "UserWarning" not in res.stderr and ".py:" not in res.stderr


def test_list_prints_the_catalogue(cli):
    res = cli("list")
    assert res.returncode == 0
    for name in ("he_uniform", "nadam", "onecycle", "selu", "clip_norm"):
        assert name in res.stdout


def test_a_column_named_by_a_year_is_a_target_and_a_dropped_column(cli, tmp_path):
    """Wide tables name columns by year (tidyr's world_bank_pop: 2000 ... 2017). ``--target 2014`` once
    reached the spec as the integer 2014 and was refused as an invalid spec."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=120)
    frame = pd.DataFrame({"2012": base + rng.normal(0, .1, 120), "2013": base + rng.normal(0, .1, 120),
                          "2014": base, "true": rng.normal(size=120)})
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    run_dir = tmp_path / "run"
    res = cli("fit", str(path), "--target", "2014", "--out", str(run_dir), "--set", "train.epochs=2",
              "--set", "data.drop_columns=[2012]")
    assert res.returncode == 0, res.stderr
    spec = (run_dir / "spec.yaml").read_text()
    assert "target: '2014'" in spec and "- '2012'" in spec
    out = tmp_path / "pred.csv"
    assert cli("predict", str(run_dir), str(path), "--out", str(out)).returncode == 0
    assert len(pd.read_csv(out)) == 120

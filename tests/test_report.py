"""report.html: self-contained, every section present, renders in headless chromium with every image loaded."""
from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from conftest import require_service, service_used

FAST = ["train.progress=false"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A multiclass run (digits, 10 classes) with the defaults and two hidden layers."""
    d = tmp_path_factory.mktemp("report") / "run"
    tw.fit("digits", sets=["model.hidden=[32,32]", "train.epochs=4", *FAST], out=d, verbose=False)
    return d


@pytest.fixture(scope="module")
def binary_dir(tmp_path_factory):
    """A binary run (breast_cancer) with the default model."""
    d = tmp_path_factory.mktemp("report") / "binary"
    tw.fit("breast_cancer", sets=["train.epochs=4", *FAST], out=d, verbose=False)
    return d


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory):
    """A regression run (diabetes) with the default model."""
    d = tmp_path_factory.mktemp("report") / "regression"
    tw.fit("diabetes", sets=["train.epochs=3", *FAST], out=d, verbose=False)
    return d


def _titles(page: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", page)


def _images(page: str) -> list[str]:
    return re.findall(r'<img[^>]*src="([^"]*)"', page)


def test_report_sections_and_self_contained(run_dir):
    page = (run_dir / "report.html").read_text()
    for title in ("Data and split", "Scores", "Diagnosis", "Training curves", "Gradient flow",
                  "Activation statistics", "Confusion matrix", "Per-class precision, recall and F1",
                  "Most confidently wrong", "Model", "Resolved hyperparameters"):
        assert title in _titles(page), title
    assert "ROC and precision-recall curves" not in _titles(page)          # binary tasks only
    assert "parameters</b>" in page and "n_train" in page
    srcs = _images(page)
    assert len(srcs) >= 4 and all(s.startswith("data:image/svg+xml;base64,") for s in srcs)
    for src in srcs:                                    # each figure is a well-formed SVG document with panels
        svg = ElementTree.fromstring(base64.b64decode(src.split(",", 1)[1]))
        assert svg.tag == SVG + "svg" and float(svg.get("width")) > 200 and svg.find(f".//{SVG}text") is not None
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    assert "(S3)" not in page and "Bias / variance (" not in page


def test_constant_lr_is_a_sentence_not_a_panel(tmp_path):
    """schedule.name=none: the lr never changes, so the report says so instead of plotting a flat line."""
    tw.fit("iris", sets=["train.epochs=3", "schedule.name=none", *FAST], out=tmp_path / "r", verbose=False)
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Learning rate over time" not in _titles(page) and not (tmp_path / "r" / "lr.svg").exists()
    assert "The learning rate stayed at 0.002 for all 3 epochs" in page      # 10^-3 x sqrt(128 / 32): batch 128


def test_resolved_hyperparameters_only_for_the_model_type(run_dir):
    """An MLP's report lists no convolution, recurrent, autoencoder or custom-module keys; a CNN's keeps its own."""
    page = (run_dir / "report.html").read_text()
    spec = page.split("<h2>Resolved hyperparameters</h2>", 1)[1]
    for key in ("channels:", "kernel_size:", "cell:", "hidden_size:", "bottleneck:", "module_kwargs:"):
        assert key not in spec, key
    assert "hidden:" in spec and "activation: relu" in spec and "lr: " in spec
    from trainwell.report.html import relevant_spec
    cnn = relevant_spec(tw.Spec.build(None, sets=["model.type=cnn"]).to_dict())["model"]
    assert {"channels", "kernel_size", "pool"} <= set(cnn) and "cell" not in cnn and "bottleneck" not in cnn


def test_test_predictions_hold_class_probabilities(run_dir, binary_dir):
    """test_predictions.csv: one proba_<class> column per class, rows summing to 1, pred = the most likely class
    (binary: pred = 1 exactly when p(positive) >= 0.5)."""
    multi = pd.read_csv(run_dir / "test_predictions.csv")
    cols = [c for c in multi.columns if c.startswith("proba_")]
    assert cols == [f"proba_{k}" for k in range(10)]
    np.testing.assert_allclose(multi[cols].sum(axis=1), 1.0, atol=1e-5)
    assert (multi[cols].to_numpy().argmax(axis=1) == multi["pred"]).all()
    binary = pd.read_csv(binary_dir / "test_predictions.csv")
    assert list(binary.columns) == ["true", "pred", "proba_0", "proba_1"]
    np.testing.assert_allclose(binary["proba_0"] + binary["proba_1"], 1.0, atol=1e-6)
    assert ((binary["proba_1"] >= 0.5).astype(int) == binary["pred"]).all()
    assert len(binary) == json.loads((binary_dir / "data.json").read_text())["n_test"]


def test_per_class_table_matches_sklearn():
    """Per-class precision/recall/F1/support from the report's confusion-matrix arithmetic equal
    sklearn.metrics.precision_recall_fscore_support, including a class that is never predicted
    (precision 0 by convention) and one absent from the truth."""
    from sklearn.metrics import precision_recall_fscore_support
    from trainwell.report.outputs import per_class_table
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.6, true, rng.integers(0, 3, 300))    # class 3 never predicted
    true[true == 2] = 1                                                       # class 2 never true
    table = per_class_table(true, pred, ["a", "b", "c", "d"])
    p, r, f, n = precision_recall_fscore_support(true, pred, labels=[0, 1, 2, 3], zero_division=0)
    np.testing.assert_allclose(table["precision"], p)
    np.testing.assert_allclose(table["recall"], r)
    np.testing.assert_allclose(table["f1"], f)
    assert list(table["support"]) == list(n) and list(table["class"]) == ["a", "b", "c", "d"]


def test_per_class_table_in_report_matches_predictions(run_dir):
    from sklearn.metrics import f1_score
    preds = pd.read_csv(run_dir / "test_predictions.csv")
    page = (run_dir / "report.html").read_text()
    section = page.split("<h2>Per-class precision, recall and F1</h2>", 1)[1].split("<h2>", 1)[0]
    f1 = [float(x) for x in re.findall(r"<tr><td>\d+</td><td>[\d.]+</td><td>[\d.]+</td><td>([\d.]+)</td>", section)]
    expected = f1_score(preds["true"], preds["pred"], labels=list(range(10)), average=None, zero_division=0)
    np.testing.assert_allclose(f1, expected, atol=5e-5)


def test_confident_errors_are_the_surest_mistakes():
    from trainwell.report.outputs import confident_errors
    preds = pd.DataFrame({"true": [0, 1, 1, 0, 1], "pred": [1, 1, 0, 1, 0],
                          "proba_no": [0.1, 0.2, 0.6, 0.45, 0.97], "proba_yes": [0.9, 0.8, 0.4, 0.55, 0.03]})
    out = confident_errors(preds, ["no", "yes"])
    assert list(out["test row"]) == [4, 0, 2, 3]                  # row 1 is right; the rest by p(predicted)
    np.testing.assert_allclose(out["p(predicted)"], [0.97, 0.9, 0.6, 0.55])
    np.testing.assert_allclose(out["p(true)"], [0.03, 0.1, 0.4, 0.45])
    assert list(out["true"]) == ["yes", "no", "yes", "no"]


def test_binary_report_has_roc_and_pr(binary_dir):
    page = (binary_dir / "report.html").read_text()
    titles = _titles(page)
    for title in ("ROC and precision-recall curves", "Per-class precision, recall and F1", "Confusion matrix",
                  "Most confidently wrong"):
        assert title in titles, title
    assert (binary_dir / "roc_pr.svg").exists()
    from sklearn.metrics import roc_auc_score
    preds = pd.read_csv(binary_dir / "test_predictions.csv")              # the curves' inputs are the scored ones
    test = json.loads((binary_dir / "metrics.json").read_text())["test"]
    assert roc_auc_score(preds["true"], preds["proba_1"]) == pytest.approx(test["roc_auc"], abs=1e-6)
    assert float((preds["true"] == preds["pred"]).mean()) == pytest.approx(test["accuracy"], abs=1e-9)


def test_regression_report_has_residuals_and_largest_errors(regression_dir):
    page = (regression_dir / "report.html").read_text()
    titles = _titles(page)
    assert "Predicted vs true and residuals" in titles and "Largest errors" in titles
    assert "Confusion matrix" not in titles
    preds = pd.read_csv(regression_dir / "test_predictions.csv")
    worst = (preds["true_0"] - preds["pred_0"]).abs().max()
    section = page.split("<h2>Largest errors</h2>", 1)[1].split("<h2>", 1)[0]
    first = re.search(r"<tr><td>(\d+)</td><td>[^<]*</td><td>[^<]*</td><td>([\d.]+)</td>", section)
    assert first and float(first.group(2)) == pytest.approx(worst, abs=1e-3)


def _panels(path: Path) -> list[dict]:
    """Per panel of an SVG figure (report/svg.py): x tick labels, legend entries, colour bar tick labels
    and label (None without one)."""
    def texts(g):
        return [t.text for t in g.iter(f"{SVG}text")] if g is not None else None
    out = []
    for panel in ElementTree.parse(path).getroot().iter(f"{SVG}g"):
        if panel.get("class") != "panel":
            continue
        groups = {g.get("class"): g for g in panel.iter(f"{SVG}g")}
        bar = texts(groups.get("colourbar"))
        out.append({"xticks": texts(groups["xticks"]), "legend": texts(groups.get("legend")),
                    "colourbar": bar[:-1] if bar else None, "colourbar_label": bar[-1] if bar else None})
    return out


def test_activation_panel_with_one_hidden_layer_and_no_dead_units(tmp_path):
    """One hidden layer: the layer is a named category (hidden 1), not points at x = 0.9 and 1.1 on a numeric
    axis; nothing dead: a sentence instead of an empty panel."""
    from trainwell.report import plots
    diag = pd.DataFrame({"epoch": [0, 0, 3, 3], "layer": ["blocks.0.linear", "out"] * 2, "index": [0, 1] * 2,
                         "grad_norm": [1.0, 2.0, 0.5, 1.0], "out_grad_rms": [0.1, 0.2, 0.1, 0.2],
                         "act_mean": [0.3, None, 0.4, None], "act_std": [0.5, None, 0.6, None],
                         "dead_frac": [0.0, None, 0.0, None], "saturated_frac": [0.0, None, 0.0, None]})
    assert plots.nothing_dead(diag.dropna(subset=["act_mean"]))
    activations = _panels(plots.plot_activation_stats(diag, tmp_path / "a.svg"))
    flow = _panels(plots.plot_gradient_flow(diag, tmp_path / "g.svg"))
    (panel,) = activations                                        # one panel: no empty dead-unit axes
    assert panel["xticks"] == ["hidden 1"]
    assert flow[0]["legend"] == ["hidden 1", "output"]
    assert flow[1]["xticks"] == ["hidden 1", "output"]


def test_gradient_flow_with_many_layers_has_a_colour_bar(tmp_path):
    from trainwell.report import plots
    n = 20
    diag = pd.DataFrame({"epoch": np.repeat([0, 1, 2], n), "layer": [f"blocks.{i}.linear" for i in range(n)] * 3,
                         "index": list(range(n)) * 3, "grad_norm": np.linspace(0.1, 1, 3 * n),
                         "out_grad_rms": np.linspace(0.1, 1, 3 * n)})
    left, right = _panels(plots.plot_gradient_flow(diag, tmp_path / "g.svg"))
    assert left["colourbar_label"] == "layer (1 = input side)" and left["legend"] is None
    ticks = [float(t) for t in left["colourbar"]]
    assert ticks and all(t.is_integer() and 1 <= t <= n for t in ticks)
    assert right["colourbar"] is None and all(float(t).is_integer() for t in right["xticks"])


def test_roc_and_pr_points_match_sklearn():
    """The binary report's curves: every (fpr, tpr) and (recall, precision) point scikit-learn's roc_curve and
    precision_recall_curve give, ties included, and the same average precision."""
    from sklearn import metrics as skm
    from trainwell.report.outputs import roc_pr_points
    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, 400)
    score = np.round(np.clip(0.3 * true + rng.random(400) * 0.7, 0, 1), 2)      # rounded: many ties
    pts = roc_pr_points(true, score)
    fpr, tpr, _ = skm.roc_curve(true, score, drop_intermediate=False)
    np.testing.assert_allclose(pts["fpr"], fpr)
    np.testing.assert_allclose(pts["tpr"], tpr)
    precision, recall, _ = skm.precision_recall_curve(true, score)
    np.testing.assert_allclose(pts["precision"][::-1], precision)
    np.testing.assert_allclose(pts["recall"][::-1], recall)
    assert pts["average_precision"] == pytest.approx(skm.average_precision_score(true, score), abs=1e-12)


def test_report_regenerates(run_dir, cli):
    (run_dir / "report.html").unlink()
    r = cli("report", str(run_dir))
    assert r.returncode == 0, r.stderr
    page = (run_dir / "report.html").read_text()
    assert "Gradient flow" in page and "Most confidently wrong" in page     # from the CSV files alone


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _flags(tmp: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}"]


def _png_nonblank(path: Path) -> bool:
    """Decode the PNG (8-bit RGB/RGBA, non-interlaced) and check it has more than one colour in quantity."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = {2: 3, 6: 4}[ctype]
    stride = w * bpp + 1
    rows = [raw[i * stride:(i + 1) * stride] for i in range(0, h, max(h // 200, 1))]
    # filter bytes make raw rows hard to compare; count distinct raw byte values across sampled rows instead
    distinct = set()
    for r in rows:
        distinct.update(r[1:])
    return len(distinct) > 16


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A small study (iris, 4 random trials of 3 epochs): its study.html is checked like a run's report."""
    d = tmp_path_factory.mktemp("study")
    space = {"optim.lr": {"log": [1e-3, 1e-1]}, "model.hidden": {"choice": [[8], [16, 8]]}}
    tw.tune("iris", space=space, sampler="random", trials=4, sets=["train.epochs=3", *FAST], out=d, threads=1,
            verbose=False)
    return d


def test_study_report_table_and_curves(study_dir):
    page = (study_dir / "study.html").read_text()
    assert "class='scroll'" in page and "class=note" in page        # the table scrolls in its box, notes readable
    assert "<th>worker</th>" not in page and "<th>run_dir</th>" not in page   # one worker; trial-NNNN said once


REPORTS = {"multiclass": ("run_dir", "report.html"), "binary": ("binary_dir", "report.html"),
           "regression": ("regression_dir", "report.html"), "study": ("study_dir", "study.html")}
PROBE = ("<script>window.addEventListener('load',function(){var im=document.images,bad=0;"
         "for(var i=0;i<im.length;i++){if(!(im[i].complete&&im[i].naturalWidth>0))bad++;}"
         "var d=document.createElement('div');d.id='probe';d.textContent='images='+im.length+' broken='+bad+"
         "' width='+document.documentElement.scrollWidth+' view='+window.innerWidth;"
         "document.body.appendChild(d);});</script>")


@pytest.mark.parametrize("kind", list(REPORTS))
def test_report_renders_in_headless_chromium(kind, request, tmp_path):
    """At 1280 px: a non-blank screenshot, every image decoded, and nothing wider than the window (no
    horizontal scroll bar). Runs in CI (.ci/run installs chromium)."""
    exe = _chromium()
    if exe is None:
        require_service("chromium", "no chromium, chromium-browser or google-chrome on PATH "
                                    "(.ci/run installs Debian's chromium)")
    service_used("chromium")
    fixture, name = REPORTS[kind]
    page = request.getfixturevalue(fixture) / name
    shot = tmp_path / "shot.png"
    subprocess.run([exe, *_flags(tmp_path), f"--screenshot={shot}", "--window-size=1280,3000", page.resolve().as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000
    assert _png_nonblank(shot)
    probe = tmp_path / "probe.html"                   # the same page plus a script that measures it
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([exe, *_flags(tmp_path), "--window-size=1280,900", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'id="probe">images=(\d+) broken=(\d+) width=(\d+) view=(\d+)<', dom)
    assert m, dom[-500:]
    images, broken, width, view = (int(g) for g in m.groups())
    assert images == len(_images(page.read_text())) >= 3 and broken == 0
    assert view == 1280 and width <= view, f"{name} is {width} px wide in a {view} px window"

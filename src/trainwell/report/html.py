"""report.html: one self-contained page per run (images embedded, no network)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from trainwell.core.io import atomic_write
from trainwell.core.spec import yaml_text
from trainwell.nn.models import count_parameters
from trainwell.nn.topologies import TOPOLOGIES
from trainwell.report import outputs, plots
from trainwell.report.calibration_plot import calibration_sections
from trainwell.run import Run


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child{text-align:left}img{max-width:100%}
.error{color:#b00020}.warning{color:#9a6700}.info{color:#555}code{background:#f3f3f3;padding:0 .2em}
.finding{border-left:4px solid currentColor;padding:.2em .8em;margin:.8em 0}.finding table{color:#222}.ok{color:#1a7f37}"""


MIME = {".svg": "image/svg+xml", ".png": "image/png"}


def embed(path: Path) -> str:
    """An <img> tag with the figure (SVG, or the PNG of an older run or an autoencoder) inlined as base64,
    so the page needs no other file."""
    path = Path(path)
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:{MIME[path.suffix]};base64,{data}">'


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def _diagnosis_html(diagnosis: dict) -> str:
    findings = diagnosis.get("findings", [])
    if not findings:
        body = "<p class='ok'>No problems found: gradients, activations, learning rate and fit look healthy.</p>"
    else:
        items = []
        for f in findings:
            ev = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_short_json(v))}</td></tr>"
                         for k, v in f.get("evidence", {}).items())
            items.append(f'<div class="finding {html.escape(f["severity"])}"><p><b>{html.escape(f["severity"].upper())}'
                         f' · {html.escape(f["id"])}</b>: {html.escape(f["title"])}</p>'
                         f'<table><tr><th>evidence</th><th>value</th></tr>{ev}</table>'
                         f'<p><b>remedy</b>: {html.escape(f.get("remedy", ""))}</p></div>')
        body = "".join(items)
    bv = diagnosis.get("bias_variance")
    if bv:
        pct = [f"{100 * bv[k]:.2f} %" for k in ("train_error", "val_error", "bayes_error", "bias", "variance")]
        if not bv.get("bayes_error_given", True):
            pct[2] += " (no estimate given)"
        body += ("<h3>Bias / variance</h3><p>bias = train error − Bayes error, variance = validation error − "
                 "train error, each \"high\" above 5 points (A. Ng, <i>Machine Learning Yearning</i>, ch. 20–23; "
                 "docs/diagnosis.md, \"The doctor\").</p>" + _table([[*pct, bv["verdict"]]], [
                     "train error", "validation error", "Bayes error", "bias", "variance", "verdict"]))
    return body


def _round(v):
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def _short_json(v) -> str:
    text = json.dumps(_round(v)) if not isinstance(v, str) else v
    return text if len(text) < 400 else text[:400] + " ..."


def relevant_spec(spec_dict: dict) -> dict:
    """The resolved spec without the model keys another model type would read (an MLP has no channels):
    each topology names the ``model.*`` keys only it reads (nn/topologies/)."""
    model = dict(spec_dict.get("model", {}))
    mine = TOPOLOGIES.get(model.get("type", "mlp"))
    keep = set(mine.model_keys(model)) if mine is not None else set()
    for other in TOPOLOGIES.values():
        for k in other.model_keys(model):
            if k not in keep:
                model.pop(k, None)
    return {**spec_dict, "model": model}


def _read(run: Run, run_dir: Path, attr: str, filename: str):
    """A table the fit left on the Run, or (a regenerated report) the CSV it wrote."""
    value = getattr(run, attr, None)
    if value is None and (run_dir / filename).exists():
        value = pd.read_csv(run_dir / filename)
    return value


def training_sections(run: Run, run_dir: Path) -> list[tuple[str, str]]:
    """Curves, learning rate, gradient flow and activation statistics (the doctor's figures)."""
    out = []
    curves = next((run_dir / f for f in ("curves.svg", "curves.png") if (run_dir / f).exists()), None)
    if curves is not None:                        # curves.png: a run written before the SVG figures
        out.append(("Training curves", embed(curves)))
    h = run.history
    if not h.empty and "lr" in h:
        if plots.lr_is_constant(h):
            out.append(("Learning rate", f"<p>The learning rate stayed at {float(h['lr'].iloc[0]):g} for all "
                                         f"{len(h)} epochs (schedule.name={html.escape(str(run.spec.schedule.name))}"
                                         f"; docs/training.md lists the schedules).</p>"))
        else:
            out.append(("Learning rate over time", embed(plots.plot_lr(h, run_dir / "lr.svg"))))
    diag = _read(run, run_dir, "diagnostics", "diagnostics.csv")
    if diag is not None and not diag.empty:
        out.append(("Gradient flow", embed(plots.plot_gradient_flow(diag, run_dir / "gradient_flow.svg"))))
        body = embed(plots.plot_activation_stats(diag, run_dir / "activations.svg"))
        if "act_mean" in diag and plots.nothing_dead(diag.dropna(subset=["act_mean"])):
            body += ("<p class='ok'>No dead units: no ReLU unit output 0 for a whole monitored batch, and no "
                     "sigmoid/tanh output sat at its bounds, in any layer at any sampled step.</p>")
        out.append(("Activation statistics", body))
    return out


def output_sections(run: Run, run_dir: Path) -> list[tuple[str, str]]:
    """What the model predicts on the test split (report/outputs.py): classification or regression views."""
    preds = _read(run, run_dir, "test_predictions", "test_predictions.csv")
    if preds is None or preds.empty:
        return []
    if "true" not in preds:
        if not outputs.regression_columns(preds):
            return []
        fig = outputs.plot_regression(preds, run_dir / "pred_vs_true.svg")
        errors = outputs.largest_errors(preds)
        return [("Predicted vs true and residuals", embed(fig)),
                ("Largest errors", "<p>Test rows (0 = first row of the test split) with the largest absolute "
                                   "error on the first target.</p>" + _frame_table(errors))]
    found = getattr(run.pre.coder, "classes", None)
    names = outputs.class_names(preds, [str(c) for c in found] if found is not None else None)
    out = [("Confusion matrix", embed(plots.plot_confusion(preds, names, run_dir / "confusion_matrix.svg")))]
    per_class = outputs.per_class_table(preds["true"].to_numpy(), preds["pred"].to_numpy(), names)
    out.append(("Per-class precision, recall and F1", "<p>Test split; precision = TP / (TP + FP), recall = TP / "
                "(TP + FN), F1 = their harmonic mean (0 where undefined), support = rows of that class.</p>"
                + _frame_table(per_class)))
    cols = outputs.proba_columns(preds)
    if len(names) == 2 and len(cols) == 2 and preds["true"].nunique() == 2:
        fig = outputs.plot_roc_pr(preds["true"].to_numpy(int), preds[cols[1]].to_numpy(float), names[1],
                                  run_dir / "roc_pr.svg")
        out.append(("ROC and precision-recall curves", embed(fig)))
    if cols:
        errors = outputs.confident_errors(preds, names)
        text = ("<p>The wrong predictions the model was surest of (test row 0 = first row of the test split): "
                "often mislabelled rows or inputs the features cannot tell apart.</p>" + _frame_table(errors)
                if not errors.empty else "<p class='ok'>No wrong prediction on the test split.</p>")
        out.append(("Most confidently wrong", text))
    return out


def _frame_table(frame) -> str:
    return _table([list(r) for r in frame.itertuples(index=False)], [str(c) for c in frame.columns])


def sections(run: Run, run_dir: Path) -> list[tuple[str, str]]:
    """The report's sections as (title, html) pairs; later features add their own."""
    m = run.metrics
    splits = [s for s in ("train", "val", "test") if m.get(s)]
    keys = [k for k, v in m[splits[0]].items() if isinstance(v, (int, float))] if splits else []
    scores = _table([[k, *[m[s].get(k) for s in splits]] for k in keys], ["metric", *splits])
    arch = run.arch
    model = _table([[k, json.dumps(v) if isinstance(v, (list, dict)) else v] for k, v in arch.items()],
                   ["architecture", "value"])
    widths = [arch.get("n_inputs"), *(arch.get("hidden") or []), arch.get("n_outputs")]
    shape = arch.get("summary") or "-".join(str(w) for w in widths)
    model = (f"<p>{html.escape(str(shape))} {html.escape(str(arch.get('activation')))}"
             f" network, <b>{count_parameters(run.model):,} parameters</b></p>{model}")
    spec = (f"<p>The keys this {html.escape(str(run.spec.model.type))} run reads; spec.yaml in the run "
            f"directory holds every key.</p><pre>"
            f"{html.escape(yaml_text(relevant_spec(run.spec.to_dict())))}</pre>")
    out = []
    data = getattr(run, "data_summary", None)
    if data is None and (run_dir / "data.json").exists():
        data = json.loads((run_dir / "data.json").read_text())
    if data:
        rows = [[k, json.dumps(data[k]) if isinstance(data[k], (list, dict)) else data[k]]
                for k in ("source", "task", "n_train", "n_val", "n_test", "n_features", "split", "crossfit", "scale", "classes")
                if k in data]
        notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in data.get("notes", []))
        out.append(("Data and split", _table(rows, ["data", "value"]) + (f"<ul>{notes}</ul>" if notes else "")))
    out.append(("Scores", f"<p>task <b>{html.escape(str(m.get('task')))}</b>, best epoch {m.get('best_epoch')}, "
                          f"{m.get('epochs_run')} epochs run, stopped because: "
                          f"{html.escape(str(m.get('stopped_because')))}</p>{scores}"))
    out.append(("Diagnosis", _diagnosis_html(run.diagnosis or {})))
    out += training_sections(run, run_dir)
    out += output_sections(run, run_dir)
    out += calibration_sections(run, run_dir, embed)   # classifiers: reliability diagram and ECE
    if (run_dir / "reconstructions.png").exists():        # autoencoders: inputs / noisy / reconstructions
        out.append(("Reconstructions", embed(run_dir / "reconstructions.png")))
    out.append(("Model", model))
    out.append(("Resolved hyperparameters", spec))
    return out


def write_report(run: Run, run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, h in sections(run, run_dir))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>trainwell report — {html.escape(run_dir.name)}"
            f"</title><style>{CSS}</style></head><body><h1>trainwell report: {html.escape(run_dir.name)}</h1>"
            f"{body}</body></html>")
    path = run_dir / "report.html"
    atomic_write(path, page, sync=False)           # regenerated by `trainwell report` from the sealed files
    return path

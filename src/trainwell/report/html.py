"""report.html: one self-contained page per run (images embedded, no network)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from trainwell.report.calibration_plot import calibration_sections

if TYPE_CHECKING:
    from trainwell.run import Run

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child{text-align:left}img{max-width:100%}
.error{color:#b00020}.warning{color:#9a6700}.info{color:#555}code{background:#f3f3f3;padding:0 .2em}
.finding{border-left:4px solid currentColor;padding:.2em .8em;margin:.8em 0}.finding table{color:#222}.ok{color:#1a7f37}"""


def embed_png(path: Path) -> str:
    """An <img> tag with the PNG inlined as base64 (so the page needs no other file)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


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
        body += "<h3>Bias / variance (S3)</h3>" + _table([[*pct, bv["verdict"]]], [
            "train error", "validation error", "Bayes error", "bias", "variance", "verdict"])
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


def _figures(run: "Run", run_dir: Path) -> dict[str, Path]:
    """Draw the doctor's figures into the run directory (from what it holds) and return them by name."""
    import pandas as pd

    from trainwell.report import plots
    out: dict[str, Path] = {}
    h = run.history
    if not h.empty and "lr" in h:
        out["lr"] = plots.plot_lr(h, run_dir / "lr.png")
    diag = getattr(run, "diagnostics", None)
    if diag is None and (run_dir / "diagnostics.csv").exists():
        diag = pd.read_csv(run_dir / "diagnostics.csv")
    if diag is not None and not diag.empty:
        out["gradients"] = plots.plot_gradient_flow(diag, run_dir / "gradient_flow.png")
        out["activations"] = plots.plot_activation_stats(diag, run_dir / "activations.png")
    preds = getattr(run, "test_predictions", None)
    if preds is None and (run_dir / "test_predictions.csv").exists():
        preds = pd.read_csv(run_dir / "test_predictions.csv")
    if preds is not None and not preds.empty:
        if "true" in preds:
            classes = [str(c) for c in getattr(run.pre.coder, "classes", []) or []]
            out["outputs"] = plots.plot_confusion(preds, classes, run_dir / "confusion_matrix.png")
        elif any(c.startswith("true_") for c in preds.columns):
            out["outputs"] = plots.plot_pred_vs_true(preds, run_dir / "pred_vs_true.png")
    return out


def sections(run: "Run", run_dir: Path) -> list[tuple[str, str]]:
    """The report's sections as (title, html) pairs; later features add their own."""
    from trainwell.nn.models import count_parameters
    m = run.metrics
    splits = [s for s in ("train", "val", "test") if m.get(s)]
    keys = [k for k, v in m[splits[0]].items() if isinstance(v, (int, float))] if splits else []
    scores = _table([[k, *[m[s].get(k) for s in splits]] for k in keys], ["metric", *splits])
    arch = run.arch
    model = _table([[k, json.dumps(v) if isinstance(v, (list, dict)) else v] for k, v in arch.items()],
                   ["architecture", "value"])
    widths = [arch.get("n_inputs"), *(arch.get("hidden") or []), arch.get("n_outputs")]
    model = (f"<p>{html.escape('-'.join(str(w) for w in widths))} {html.escape(str(arch.get('activation')))}"
             f" network, <b>{count_parameters(run.model):,} parameters</b></p>{model}")
    spec = f"<pre>{html.escape(run.spec.to_yaml())}</pre>"
    figs = _figures(run, run_dir)
    out = []
    data = getattr(run, "data_summary", None)
    if data is None and (run_dir / "data.json").exists():
        data = json.loads((run_dir / "data.json").read_text())
    if data:
        rows = [[k, json.dumps(data[k]) if isinstance(data[k], (list, dict)) else data[k]]
                for k in ("source", "task", "n_train", "n_val", "n_test", "n_features", "split", "scale", "classes")
                if k in data]
        notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in data.get("notes", []))
        out.append(("Data and split", _table(rows, ["data", "value"]) + (f"<ul>{notes}</ul>" if notes else "")))
    out.append(("Scores", f"<p>task <b>{html.escape(str(m.get('task')))}</b>, best epoch {m.get('best_epoch')}, "
                          f"{m.get('epochs_run')} epochs run, stopped because: "
                          f"{html.escape(str(m.get('stopped_because')))}</p>{scores}"))
    out.append(("Diagnosis", _diagnosis_html(run.diagnosis or {})))
    if (run_dir / "curves.png").exists():
        out.append(("Training curves", embed_png(run_dir / "curves.png")))
    if "lr" in figs:
        out.append(("Learning rate over time", embed_png(figs["lr"])))
    if "gradients" in figs:
        out.append(("Gradient flow", embed_png(figs["gradients"])))
    if "activations" in figs:
        out.append(("Activation statistics", embed_png(figs["activations"])))
    if "outputs" in figs:
        title = "Confusion matrix" if figs["outputs"].name.startswith("confusion") else "Predicted vs true"
        out.append((title, embed_png(figs["outputs"])))
    out += calibration_sections(run, run_dir, embed_png)   # classifiers: reliability diagram and ECE
    if (run_dir / "reconstructions.png").exists():        # autoencoders: inputs / noisy / reconstructions
        out.append(("Reconstructions", embed_png(run_dir / "reconstructions.png")))
    out.append(("Model", model))
    out.append(("Resolved hyperparameters", spec))
    return out


def write_report(run: "Run", run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, h in sections(run, run_dir))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>trainwell report — {html.escape(run_dir.name)}"
            f"</title><style>{CSS}</style></head><body><h1>trainwell report: {html.escape(run_dir.name)}</h1>"
            f"{body}</body></html>")
    path = run_dir / "report.html"
    path.write_text(page)
    return path

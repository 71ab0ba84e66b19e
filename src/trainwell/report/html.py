"""report.html: one self-contained page per run (images embedded, no network)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainwell.run import Run

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child{text-align:left}img{max-width:100%}
.error{color:#b00020}.warning{color:#9a6700}.info{color:#555}code{background:#f3f3f3;padding:0 .2em}"""


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


def sections(run: "Run", run_dir: Path) -> list[tuple[str, str]]:
    """The report's sections as (title, html) pairs; later features add their own."""
    m = run.metrics
    splits = [s for s in ("train", "val", "test") if m.get(s)]
    keys = [k for k, v in m[splits[0]].items() if isinstance(v, (int, float))] if splits else []
    scores = _table([[k, *[m[s].get(k) for s in splits]] for k in keys], ["metric", *splits])
    arch = run.arch
    model = _table([[k, json.dumps(v) if isinstance(v, (list, dict)) else v] for k, v in arch.items()],
                   ["architecture", "value"])
    spec = f"<pre>{html.escape(run.spec.to_yaml())}</pre>"
    out = [("Scores", f"<p>task <b>{html.escape(str(m.get('task')))}</b>, best epoch {m.get('best_epoch')}, "
                      f"{m.get('epochs_run')} epochs run, stopped because: {html.escape(str(m.get('stopped_because')))}"
                      f"</p>{scores}")]
    if (run_dir / "curves.png").exists():
        out.append(("Training curves", embed_png(run_dir / "curves.png")))
    out.append(("Model", model))
    findings = run.diagnosis.get("findings", [])
    if findings:
        items = "".join(f'<li class="{html.escape(f["severity"])}"><b>{html.escape(f["title"])}</b> — '
                        f'{html.escape(f.get("remedy", ""))}</li>' for f in findings)
        out.append(("Diagnosis", f"<ul>{items}</ul>"))
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

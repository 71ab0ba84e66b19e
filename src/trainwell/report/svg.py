"""The report's charts as SVG text: axes, ticks, lines, points, bars, error bars, a legend, a colour bar.

A default run's report used to draw six matplotlib figures: importing matplotlib and laying out and
rasterising the figures cost about a second, more than training a small table (issue 16). These
charts are plain SVG 1.1 (https://www.w3.org/TR/SVG11/): a few hundred elements written as text in
milliseconds, sharp at any zoom, and embedded in report.html as ``data:image/svg+xml`` images so the
page still needs no other file. Only what the report draws is here: line charts on linear or log
axes, categorical layer axes, bars, error bars and a heat map; anything richer stays with matplotlib
(the lr finder's plot, an autoencoder's reconstructions).

Every panel is a ``<g class="panel">`` holding ``<g class="xticks">``, ``<g class="legend">`` (when
shown) and, for many layers, ``<g class="colourbar">``: the tests read the chart through these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
GREY = "#808080"
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))   # matplotlib's viridis
W, H = 440, 300                       # one panel, px
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 28, 44


def viridis(t: float) -> str:
    """A colour on viridis at ``t`` in [0, 1] (linear between five of matplotlib's viridis colours)."""
    t = min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)
    k = min(int(t), len(VIRIDIS) - 2)
    f = t - k
    r, g, b = (round(a + (c - a) * f) for a, c in zip(VIRIDIS[k], VIRIDIS[k + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass
class Series:
    """One thing drawn on a panel. kind: line | step | points | errorbar | bar | hline | vline."""
    kind: str
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    label: str | None = None
    colour: str = PALETTE[0]
    dash: bool = False
    err: list | None = None          # errorbar: +- per point
    width: list | None = None        # bar: widths (bars start at x)
    marker: bool = False             # line: a dot at each point


@dataclass
class Panel:
    title: str
    xlabel: str = ""
    ylabel: str = ""
    series: list[Series] = field(default_factory=list)
    xlog: bool = False
    ylog: bool = False
    xlim: tuple | None = None
    ylim: tuple | None = None
    xcats: list[str] | None = None   # categorical x: names at 1..n
    integer_x: bool = False
    legend: bool = True
    legend_at: str = "upper right"   # or "lower right", "lower left", "upper left" (where the curves are not)
    colourbar: tuple[int, str] | None = None    # (n layers, label): viridis 1..n beside the panel

    def add(self, kind: str, x, y, **kw) -> "Panel":
        self.series.append(Series(kind, [float(v) for v in x], [float(v) for v in y], **kw))
        return self


def _finite(values, log: bool) -> list[float]:
    return [v for v in values if math.isfinite(v) and (v > 0 or not log)]


def _limits(panel: Panel, axis: str) -> tuple[float, float]:
    """Data range of one axis over every series (with error bars and bar widths), padded 4 %."""
    log = panel.xlog if axis == "x" else panel.ylog
    fixed = panel.xlim if axis == "x" else panel.ylim
    if fixed:
        return fixed
    vals: list[float] = []
    for s in panel.series:
        if axis == "x" and s.kind != "hline":
            vals += s.x + ([a + w for a, w in zip(s.x, s.width)] if s.width else [])
        if axis == "y" and s.kind != "vline":
            vals += s.y + ([a - e for a, e in zip(s.y, s.err)] + [a + e for a, e in zip(s.y, s.err)] if s.err else [])
            if s.kind == "bar":
                vals.append(0.0)
    vals = _finite(vals, log)
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.04 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    return (10 ** lo, 10 ** hi) if log else (lo, hi)


def nice_ticks(lo: float, hi: float, log: bool = False, integer: bool = False, n: int = 5) -> list[float]:
    """Tick positions inside [lo, hi]: powers of ten on a log axis (thinned to at most 8), else steps of 1, 2 or
    5 x 10^k giving about ``n`` ticks (whole numbers only when ``integer``)."""
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        for mantissas in ((1,), (1, 2, 5), range(1, 10)):     # decades; else 1-2-5; else every digit
            ticks = [m * 10.0 ** k for k in range(a, b + 1) for m in mantissas if lo <= m * 10.0 ** k <= hi]
            if len(ticks) >= 2:
                return ticks[::max(1, math.ceil(len(ticks) / 8))]
        return nice_ticks(lo, hi, n=3)              # a sliver of one decade: a few plain values
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= 0.8 * raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e") if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3) \
        else f"{v:g}"


class _Frame:
    """Data -> pixel mapping of one panel placed at (ox, oy)."""

    def __init__(self, panel: Panel, ox: float, oy: float, w: float, h: float):
        self.p, self.ox, self.oy, self.w, self.h = panel, ox, oy, w, h
        self.xlim = (0.5, len(panel.xcats) + 0.5) if panel.xcats and not panel.xlim else _limits(panel, "x")
        self.ylim = _limits(panel, "y")

    def _t(self, v: float, lim: tuple, log: bool) -> float:
        if log:
            v, lim = math.log10(max(v, 1e-300)), (math.log10(lim[0]), math.log10(lim[1]))
        return (v - lim[0]) / (lim[1] - lim[0])

    def px(self, x: float) -> float:
        return self.ox + LEFT + self._t(x, self.xlim, self.p.xlog) * (self.w - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return self.oy + self.h - BOTTOM - self._t(y, self.ylim, self.p.ylog) * (self.h - TOP - BOTTOM)


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int = 11, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{extra}>{escape(s)}</text>'


def _axes(f: _Frame) -> str:
    """Frame, grid, ticks, labels and title of one panel."""
    p, x0, x1 = f.p, f.ox + LEFT, f.ox + f.w - RIGHT
    y0, y1 = f.oy + f.h - BOTTOM, f.oy + TOP
    out = [f'<rect x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" height="{y0 - y1:.1f}" fill="none" stroke="#444"/>']
    if p.xcats:
        xt = [(float(k + 1), name) for k, name in enumerate(p.xcats)]
    else:
        xt = [(v, _label(v)) for v in nice_ticks(*f.xlim, log=p.xlog, integer=p.integer_x)]
    out.append('<g class="xticks">')
    for v, name in xt:
        x = f.px(v)
        out.append(f'<line x1="{x:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y1:.1f}" stroke="#ddd"/>')
        out.append(_text(x, y0 + 14, name, size=10))
    out.append("</g><g class=\"yticks\">")
    for v in nice_ticks(*f.ylim, log=p.ylog):
        y = f.py(v)
        out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(_text(x0 - 4, y + 3.5, _label(v), anchor="end", size=10))
    out.append("</g>")
    out.append(_text((x0 + x1) / 2, y0 + 32, p.xlabel))
    yl = f"{f.ox + 14:.1f}", f"{(y0 + y1) / 2:.1f}"
    out.append(_text(float(yl[0]), float(yl[1]), p.ylabel, extra=f' transform="rotate(-90 {yl[0]} {yl[1]})"'))
    out.append(_text((x0 + x1) / 2, f.oy + 18, p.title, size=12, extra=' font-weight="bold"'))
    return "".join(out)


def _series(f: _Frame, s: Series) -> str:
    """One series as SVG elements (points outside a log axis's domain are left out)."""
    dash = ' stroke-dasharray="5,3"' if s.dash else ""
    xlog, ylog = f.p.xlog, f.p.ylog
    ok = [(x, y) for x, y in zip(s.x, s.y)
          if math.isfinite(x) and math.isfinite(y) and (x > 0 or not xlog) and (y > 0 or not ylog)]
    if s.kind in ("line", "step"):
        pts = ok if s.kind == "line" else [q for a, b in zip(ok, ok[1:]) for q in (a, (b[0], a[1]))] + ok[-1:]
        path = " ".join(f"{f.px(x):.1f},{f.py(y):.1f}" for x, y in pts)
        out = f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="1.6"{dash}/>'
        if s.marker:
            out += "".join(f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="2.2" fill="{s.colour}"/>' for x, y in ok)
        return out
    if s.kind == "points":
        return "".join(f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="2.6" fill="{s.colour}" fill-opacity="0.7"/>'
                       for x, y in ok)
    if s.kind == "errorbar":
        out = []
        for (x, y), e in zip(zip(s.x, s.y), s.err or [0.0] * len(s.x)):
            if not (math.isfinite(y) and math.isfinite(e)):
                continue
            X, lo, hi = f.px(x), f.py(y - e), f.py(y + e)
            out.append(f'<line x1="{X:.1f}" y1="{lo:.1f}" x2="{X:.1f}" y2="{hi:.1f}" stroke="{s.colour}"/>'
                       f'<line x1="{X - 3:.1f}" y1="{lo:.1f}" x2="{X + 3:.1f}" y2="{lo:.1f}" stroke="{s.colour}"/>'
                       f'<line x1="{X - 3:.1f}" y1="{hi:.1f}" x2="{X + 3:.1f}" y2="{hi:.1f}" stroke="{s.colour}"/>'
                       f'<circle cx="{X:.1f}" cy="{f.py(y):.1f}" r="3" fill="{s.colour}"/>')
        return "".join(out)
    if s.kind == "bar":
        return "".join(f'<rect x="{f.px(x):.1f}" y="{f.py(y):.1f}" width="{f.px(x + w) - f.px(x):.1f}" '
                       f'height="{f.py(0) - f.py(y):.1f}" fill="{s.colour}" fill-opacity="0.85" stroke="white"/>'
                       for x, y, w in zip(s.x, s.y, s.width or [0.0] * len(s.x)))
    if s.kind == "hline":
        y = f.py(s.y[0])
        return f'<line x1="{f.px(f.xlim[0]):.1f}" y1="{y:.1f}" x2="{f.px(f.xlim[1]):.1f}" y2="{y:.1f}" ' \
               f'stroke="{s.colour}"{dash}/>'
    x = f.px(s.x[0])                  # vline
    return f'<line x1="{x:.1f}" y1="{f.py(f.ylim[0]):.1f}" x2="{x:.1f}" y2="{f.py(f.ylim[1]):.1f}" ' \
           f'stroke="{s.colour}" stroke-dasharray="2,3"/>'


def _legend(f: _Frame) -> str:
    labelled = [s for s in f.p.series if s.label]
    if not f.p.legend or not labelled:
        return ""
    width = 26 + 6.2 * max(len(s.label) for s in labelled)
    height = 14 * len(labelled) + 6
    right, lower = "right" in f.p.legend_at, "lower" in f.p.legend_at
    x = f.ox + f.w - RIGHT - width - 6 if right else f.ox + LEFT + 6
    y = f.oy + f.h - BOTTOM - height - 6 if lower else f.oy + TOP + 6
    out = [f'<g class="legend"><rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height}" '
           f'fill="white" fill-opacity="0.85" stroke="#ccc"/>']
    for k, s in enumerate(labelled):
        yy = y + 13 + 14 * k
        dash = ' stroke-dasharray="5,3"' if s.dash or s.kind == "vline" else ""
        mark = (f'<circle cx="{x + 12:.1f}" cy="{yy - 4:.1f}" r="3" fill="{s.colour}"/>' if s.kind in ("points", "errorbar")
                else f'<rect x="{x + 6:.1f}" y="{yy - 9:.1f}" width="12" height="9" fill="{s.colour}"/>' if s.kind == "bar"
                else f'<line x1="{x + 4:.1f}" y1="{yy - 4:.1f}" x2="{x + 20:.1f}" y2="{yy - 4:.1f}" stroke="{s.colour}" '
                     f'stroke-width="2"{dash}/>')
        out.append(mark + _text(x + 24, yy, s.label, anchor="start", size=10))
    return "".join(out) + "</g>"


def _colourbar(f: _Frame) -> str:
    n, label = f.p.colourbar
    x, top, bottom = f.ox + f.w + 6, f.oy + TOP, f.oy + f.h - BOTTOM
    step = (bottom - top) / n
    out = ['<g class="colourbar">']
    out += [f'<rect x="{x:.1f}" y="{bottom - (k + 1) * step:.1f}" width="12" height="{step + 0.5:.1f}" '
            f'fill="{viridis(k / max(n - 1, 1))}"/>' for k in range(n)]
    for v in nice_ticks(0.5, n + 0.5, integer=True):
        if 1 <= v <= n:
            out.append(_text(x + 16, bottom - (v - 0.5) * step + 3.5, f"{int(v)}", anchor="start", size=10))
    cx, cy = x + 40, (top + bottom) / 2
    out.append(_text(cx, cy, label, extra=f' transform="rotate(-90 {cx:.1f} {cy:.1f})"'))
    return "".join(out) + "</g>"


def figure(panels: list[Panel], columns: int | None = None) -> str:
    """Panels in a grid (``columns`` per row, default all in one row) as one SVG document."""
    columns = columns or len(panels)
    extra = 60 if any(p.colourbar for p in panels) else 0
    rows = math.ceil(len(panels) / columns)
    width, height = columns * (W + extra), rows * H
    body = []
    for k, p in enumerate(panels):
        f = _Frame(p, (k % columns) * (W + extra), (k // columns) * H, W, H)
        body.append('<g class="panel">' + _axes(f) + "".join(_series(f, s) for s in p.series) + _legend(f)
                    + (_colourbar(f) if p.colourbar else "") + "</g>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>')


def heatmap(counts, labels: list[str], title: str, xlabel: str, ylabel: str) -> str:
    """A matrix of counts as coloured cells (white to blue) with each non-zero count written in its cell."""
    k = len(labels)
    cell = max(18, min(48, 360 // max(k, 1)))
    x0, y0 = 70, 36
    top = max(max(row) for row in counts) if k else 1
    out = [_text(x0 + k * cell / 2, 20, title, size=12, extra=' font-weight="bold"'), '<g class="cells">']
    for i in range(k):
        for j in range(k):
            v = int(counts[i][j])
            t = v / top if top else 0.0
            shade = f"#{round(247 - 239 * t):02x}{round(251 - 203 * t):02x}{round(255 - 148 * t):02x}"
            out.append(f'<rect x="{x0 + j * cell}" y="{y0 + i * cell}" width="{cell}" height="{cell}" fill="{shade}"/>')
            if v:
                out.append(_text(x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell + 4, str(v), size=10,
                                 extra=f' fill="{"white" if t > 0.5 else "black"}"'))
    out.append('</g><g class="xticks">')
    out += [_text(x0 + (j + 0.5) * cell, y0 + k * cell + 14, name, size=10) for j, name in enumerate(labels)]
    out.append('</g><g class="yticks">')
    out += [_text(x0 - 6, y0 + (i + 0.5) * cell + 4, name, anchor="end", size=10) for i, name in enumerate(labels)]
    out.append("</g>")
    out.append(_text(x0 + k * cell / 2, y0 + k * cell + 34, xlabel))
    cy = y0 + k * cell / 2
    out.append(_text(16, cy, ylabel, extra=f' transform="rotate(-90 16 {cy:.1f})"'))
    width, height = max(x0 + k * cell + 20, 260), y0 + k * cell + 46
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{"".join(out)}</svg>')

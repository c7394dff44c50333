"""Pictures for the run report, written as SVG on the server (no JavaScript, no CDN).

Each function returns markup safe to insert into a page: every text is escaped, every picture has a
title and a description for screen readers, and the numbers are also in a table next to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

INK = "#1f2933"
GRID = "#c9d1d9"
BLUE = "#1d4e89"
ORANGE = "#b3541e"
GREEN = "#2f6b3a"
PALETTE = (BLUE, ORANGE, GREEN, "#6b3fa0", "#8a6d00")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
_IDS = itertools.count(1)


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> SafeString:
    uid = next(_IDS)  # ids unique within the page, whatever the titles
    return mark_safe(  # noqa: S308 - every text below is escaped
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" '
        f'aria-labelledby="chart{uid}-t chart{uid}-d" class="chart" preserveAspectRatio="xMinYMin meet">'
        f'<title id="chart{uid}-t">{escape(title)}</title><desc id="chart{uid}-d">{escape(desc)}</desc>'
        + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, s: object, anchor: str = "middle", fill: str = INK, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" {FONT} {extra}>{escape(str(s))}</text>'


def confusion_matrix(labels: Sequence, matrix: Sequence[Sequence[int]], title: str = "Confusion matrix") -> SafeString:
    """Rows: the human score; columns: the model's score; darker = more answers."""
    k = len(labels)
    cell = 48 if k <= 6 else 32
    left, top = 90, 50
    w, h = left + k * cell + 20, top + k * cell + 40
    peak = max((max(r) for r in matrix if r), default=0) or 1
    body = [_text(left + k * cell / 2, 18, "model score"),
            _text(24, top + k * cell / 2, "human score", extra=f'transform="rotate(-90 24 {top + k * cell / 2})"')]
    for j, lab in enumerate(labels):
        body.append(_text(left + j * cell + cell / 2, top - 8, lab))
    for i, lab in enumerate(labels):
        body.append(_text(left - 10, top + i * cell + cell / 2 + 4, lab, anchor="end"))
        for j in range(k):
            n = int(matrix[i][j])
            shade = n / peak
            fill = f"rgb({int(235 - 206 * shade)},{int(241 - 163 * shade)},{int(250 - 113 * shade)})"
            txt = "#ffffff" if shade > 0.45 else INK
            stroke = f' stroke="{INK}" stroke-width="2"' if i == j else f' stroke="{GRID}"'
            body.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                        f'fill="{fill}"{stroke}/>')
            body.append(_text(left + j * cell + cell / 2, top + i * cell + cell / 2 + 4, n, fill=txt))
    diag = sum(int(matrix[i][i]) for i in range(k))
    total = sum(int(x) for r in matrix for x in r)
    desc = f"{diag} of {total} test answers on the diagonal (model and human agree)."
    return _svg(w, h, title, desc, body)


def grouped_bars(categories: Sequence, series: Mapping[str, Sequence[float | None]], title: str,
                 y_max: float | None = None, y_label: str = "", percent: bool = False) -> SafeString:
    """Vertical bars, one group per category, one colour per series (with a legend)."""
    names = list(series)
    n_cat, n_ser = max(len(categories), 1), max(len(names), 1)
    left, top, plot_h = 56, 36, 180
    group_w = max(24 * n_ser + 16, 56)
    w, h = left + n_cat * group_w + 20, top + plot_h + 50
    values = [v for s in series.values() for v in s if v is not None]
    peak = y_max if y_max is not None else (max(values) if values else 1) or 1
    body = []
    for t in range(5):
        frac = t / 4
        y = top + plot_h * (1 - frac)
        lab = f"{peak * frac:.0%}" if percent else (f"{peak * frac:.2f}" if peak <= 1 else f"{peak * frac:.0f}")
        body.append(f'<line x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y + 4, lab, anchor="end"))
    if y_label:
        body.append(_text(14, top + plot_h / 2, y_label, extra=f'transform="rotate(-90 14 {top + plot_h / 2})"'))
    bar_w = (group_w - 16) / n_ser
    for c, cat in enumerate(categories):
        x0 = left + c * group_w + 8
        for s, name in enumerate(names):
            v = series[name][c] if c < len(series[name]) else None
            if v is None:
                continue
            bh = plot_h * min(max(v / peak, 0), 1)
            body.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{top + plot_h - bh:.1f}" width="{bar_w - 2:.1f}" '
                        f'height="{bh:.1f}" fill="{PALETTE[s % len(PALETTE)]}"/>')
        body.append(_text(x0 + (group_w - 16) / 2, top + plot_h + 16, cat))
    lx = left
    for s, name in enumerate(names):
        body.append(f'<rect x="{lx}" y="{h - 20}" width="12" height="12" fill="{PALETTE[s % len(PALETTE)]}"/>')
        body.append(_text(lx + 16, h - 10, name, anchor="start"))
        lx += 24 + 8 * len(name)
    desc = "; ".join(f"{name}: " + ", ".join(f"{cat} {'-' if v is None else (f'{v:.0%}' if percent else f'{v:g}')}"
                                            for cat, v in zip(categories, series[name], strict=False))
                     for name in names)
    return _svg(max(w, lx + 10), h, title, desc, body)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str, x_label: str = "epoch",
               y_label: str = "", y_range: tuple[float, float] | None = None) -> SafeString:
    """Lines through (x, y) points, one colour per series (with a legend)."""
    pts = [p for s in series.values() for p in s]
    left, top, plot_w, plot_h = 56, 20, 360, 180
    w, h = left + plot_w + 20, top + plot_h + 60
    if not pts:
        return _svg(w, h, title, "No data.", [_text(w / 2, h / 2, "no data")])
    x_lo, x_hi = min(p[0] for p in pts), max(p[0] for p in pts)
    y_lo, y_hi = y_range or (min(p[1] for p in pts), max(p[1] for p in pts))
    if y_hi == y_lo:
        y_hi = y_lo + 1
    if x_hi == x_lo:
        x_hi = x_lo + 1
    sx = lambda x: left + plot_w * (x - x_lo) / (x_hi - x_lo)  # noqa: E731
    sy = lambda y: top + plot_h * (1 - (y - y_lo) / (y_hi - y_lo))  # noqa: E731
    body = []
    for t in range(5):
        yv = y_lo + (y_hi - y_lo) * t / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, sy(yv) + 4, f"{yv:.2f}", anchor="end"))
    xs = sorted({p[0] for p in pts})
    step = max(1, len(xs) // 8)
    for xv in xs[::step]:
        body.append(_text(sx(xv), top + plot_h + 16, f"{xv:g}"))
    body.append(_text(left + plot_w / 2, top + plot_h + 32, x_label))
    if y_label:
        body.append(_text(14, top + plot_h / 2, y_label, extra=f'transform="rotate(-90 14 {top + plot_h / 2})"'))
    lx = left
    for s, (name, points) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in points:
            body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        body.append(f'<rect x="{lx}" y="{h - 18}" width="12" height="12" fill="{color}"/>')
        body.append(_text(lx + 16, h - 8, name, anchor="start"))
        lx += 24 + 8 * len(name)
    desc = "; ".join(f"{name}: " + ", ".join(f"{x:g} -> {y:.3f}" for x, y in points) for name, points in series.items())
    return _svg(max(w, lx + 10), h, title, desc, body)


def horizontal_bars(rows: Sequence[tuple[str, float | None]], title: str, x_max: float = 1.0,
                    mark: float | None = None, mark_label: str = "") -> SafeString:
    """One bar per row (label, value), e.g. agreement per school; an optional vertical mark (threshold)."""
    left, top, plot_w, bar_h = 170, 16, 300, 22
    w, h = left + plot_w + 60, top + len(rows) * (bar_h + 6) + 36
    body = [f'<line x1="{left}" x2="{left}" y1="{top}" y2="{h - 30}" stroke="{INK}"/>']
    for i, (label, v) in enumerate(rows):
        y = top + i * (bar_h + 6)
        body.append(_text(left - 8, y + bar_h / 2 + 4, label[:24], anchor="end"))
        if v is None:
            body.append(_text(left + 6, y + bar_h / 2 + 4, "n/a", anchor="start"))
            continue
        bw = plot_w * min(max(v / x_max, 0), 1)
        body.append(f'<rect x="{left}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{BLUE}"/>')
        body.append(_text(left + bw + 6, y + bar_h / 2 + 4, f"{v:.3f}", anchor="start"))
    if mark is not None:
        mx = left + plot_w * min(max(mark / x_max, 0), 1)
        body.append(f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top - 4}" y2="{h - 30}" stroke="{ORANGE}" '
                    'stroke-width="2" stroke-dasharray="4 3"/>')
        body.append(_text(mx, h - 12, mark_label or f"{mark:g}", fill="#8a3a12"))
    desc = "; ".join(f"{label}: {'n/a' if v is None else f'{v:.3f}'}" for label, v in rows)
    return _svg(w, h, title, desc, body)

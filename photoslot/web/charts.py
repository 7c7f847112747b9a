"""The Statistics page's charts, drawn on the server as SVG: no script, no chart library, nothing
fetched — the page is complete when it arrives (and prints, and works offline).

The value axis has round ticks (counts whole numbers only: 0, 2, 4 … never 4.4), its unit named; a
money axis shows cents. Every bar and point carries its exact value as a tooltip (<title>)."""
from __future__ import annotations

import math

from markupsafe import Markup, escape

W, H = 640, 230
LEFT, RIGHT, TOP, BOTTOM = 64, 10, 12, 30
FONT = 12
COLORS = {"ok": "#2a9d8f", "timeout": "#e9c46a", "refused": "#8d99ae", "error": "#e76f51", "line": "#264653",
          "ref": "#9b2c14", "spend": "#264653"}
INK = "#4a555c"  # axis text: 7:1 on white


def nice_ticks(top: float, *, integer: bool) -> list[float]:
    """0 and round steps up to at least `top`, at most 6 ticks: 1, 2, 2.5 or 5 × 10^n (whole
    numbers only for counts)."""
    top = max(top, 1.0 if integer else 1e-9)
    raw = top / 4
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if integer and (step < 1 or step != int(step)):
            continue
        if math.ceil(top / step - 1e-9) <= 5:
            break
    count = max(1, math.ceil(top / step - 1e-9))
    return [round(step * i, 10) for i in range(count + 1)]


def _fmt(v: float, money: bool = False) -> str:
    if money:
        return f"{v:.2f}"
    if v == int(v):
        return f"{int(v)}"
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2g}"


def _frame(ticks: list[float], labels: list[str], unit: str, title: str, money: bool) -> list[str]:
    top = ticks[-1]
    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    ph = H - TOP - BOTTOM
    for t in ticks:
        y = TOP + ph - ph * t / top
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6e8"/>')
        out.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" font-size="{FONT}" text-anchor="end" fill="{INK}">'
                   f"{_fmt(t, money)}{escape(unit)}</text>")
    n = max(1, len(labels))
    step = max(1, math.ceil(n / 8))
    pw = W - LEFT - RIGHT
    for i, label in enumerate(labels):
        if i % step == 0:
            x = LEFT + pw * (i + 0.5) / n
            out.append(f'<text x="{x:.1f}" y="{H - 10}" font-size="{FONT}" text-anchor="middle" fill="{INK}">'
                       f"{escape(label)}</text>")
    return out


def stacked_bars(labels: list[str], stacks: list[tuple[str, list[float]]], title: str, unit: str = "",
                 *, money: bool = False) -> Markup:
    """One bar per period, the series stacked (name, values) in COLORS' order of their names; counts
    (whole-number ticks) unless `money` (ticks and tooltips in cents)."""
    totals = [sum(v[i] for _, v in stacks) for i in range(len(labels))]
    if money:  # whole cents
        ticks = [t / 100 for t in nice_ticks(max([0.0, *totals]) * 100, integer=True)]
    else:
        ticks = nice_ticks(max([0.0, *totals]), integer=True)
    top = ticks[-1]
    out = _frame(ticks, labels, unit, title, money)
    n = max(1, len(labels))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    bw = max(1.0, pw / n * 0.7)
    for i in range(len(labels)):
        x = LEFT + pw * i / n + (pw / n - bw) / 2
        base = 0.0
        for name, values in stacks:
            v = values[i]
            if v <= 0:
                continue
            h = ph * v / top
            y = TOP + ph - ph * base / top - h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{COLORS[name]}">'
                       f"<title>{escape(labels[i])}: {_fmt(v, money)}{escape(unit)}</title></rect>")
            base += v
    out.append("</svg>")
    return Markup("".join(out))


def line_with_reference(labels: list[str], values: list[float | None], reference: float, title: str,
                        unit: str = "", ref_label: str = "", bars: bool = False) -> Markup:
    """A series (line, or bars) against a horizontal reference line (the window, the 5 % limit)."""
    ticks = nice_ticks(max([reference, *[v for v in values if v is not None]]) * 1.05, integer=False)
    top = ticks[-1]
    out = _frame(ticks, labels, unit, title, False)
    n = max(1, len(labels))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    points = []
    for i, v in enumerate(values):
        if v is None:
            continue
        x = LEFT + pw * (i + 0.5) / n
        y = TOP + ph - ph * v / top
        if bars:
            bw = max(1.0, pw / n * 0.7)
            out.append(f'<rect x="{x - bw / 2:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{TOP + ph - y:.1f}" '
                       f'fill="{COLORS["timeout"]}"><title>{escape(labels[i])}: {_fmt(v)}{escape(unit)}</title></rect>')
        else:
            points.append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLORS["line"]}">'
                       f"<title>{escape(labels[i])}: {_fmt(v)}{escape(unit)}</title></circle>")
    if len(points) > 1:
        out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLORS["line"]}" stroke-width="2"/>')
    ry = TOP + ph - ph * reference / top
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ry:.1f}" y2="{ry:.1f}" stroke="{COLORS["ref"]}" '
               f'stroke-dasharray="6 4" stroke-width="1.5"/>')
    out.append(f'<text x="{W - RIGHT - 4}" y="{ry - 5:.1f}" font-size="{FONT}" text-anchor="end" fill="{COLORS["ref"]}">'
               f"{escape(ref_label)}</text>")
    out.append("</svg>")
    return Markup("".join(out))

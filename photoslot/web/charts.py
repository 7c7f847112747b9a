"""The Statistics page's charts, drawn on the server as SVG: no script, no chart library, nothing
fetched — the page is complete when it arrives (and prints, and works offline)."""
from __future__ import annotations

from markupsafe import Markup, escape

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 60, 8, 10, 28
COLORS = {"ok": "#2a9d8f", "timeout": "#e9c46a", "refused": "#8d99ae", "error": "#e76f51", "line": "#264653",
          "ref": "#9b2c14"}


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def _frame(top: float, labels: list[str], unit: str, title: str) -> list[str]:
    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    ph = H - TOP - BOTTOM
    for i in range(5):
        y = TOP + ph - ph * i / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6e8"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#5f6b73">'
                   f"{_fmt(top * i / 4)}{escape(unit)}</text>")
    n = max(1, len(labels))
    step = max(1, n // 8)
    pw = W - LEFT - RIGHT
    for i, label in enumerate(labels):
        if i % step == 0:
            x = LEFT + pw * (i + 0.5) / n
            out.append(f'<text x="{x:.1f}" y="{H - 10}" font-size="10" text-anchor="middle" fill="#5f6b73">'
                       f"{escape(label)}</text>")
    return out


def _top(values: list[float], floor: float) -> float:
    top = max([floor, *values])
    return top * 1.1 if top > 0 else 1.0


def stacked_bars(labels: list[str], stacks: list[tuple[str, list[float]]], title: str, unit: str = "") -> Markup:
    """One bar per period, the series stacked (name, values) in COLORS' order of their names."""
    totals = [sum(v[i] for _, v in stacks) for i in range(len(labels))]
    top = _top(totals, 1)
    out = _frame(top, labels, unit, title)
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
                       f"<title>{escape(labels[i])}: {_fmt(v)}</title></rect>")
            base += v
    out.append("</svg>")
    return Markup("".join(out))


def line_with_reference(labels: list[str], values: list[float | None], reference: float, title: str,
                        unit: str = "", ref_label: str = "", bars: bool = False) -> Markup:
    """A series (line, or bars) against a horizontal reference line (the window, the 5 % limit)."""
    top = _top([v for v in values if v is not None], reference)
    out = _frame(top, labels, unit, title)
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
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{COLORS["line"]}">'
                       f"<title>{escape(labels[i])}: {_fmt(v)}{escape(unit)}</title></circle>")
    if len(points) > 1:
        out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLORS["line"]}" stroke-width="2"/>')
    ry = TOP + ph - ph * reference / top
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ry:.1f}" y2="{ry:.1f}" stroke="{COLORS["ref"]}" '
               f'stroke-dasharray="6 4" stroke-width="1.5"/>')
    out.append(f'<text x="{W - RIGHT - 4}" y="{ry - 4:.1f}" font-size="11" text-anchor="end" fill="{COLORS["ref"]}">'
               f"{escape(ref_label)}</text>")
    out.append("</svg>")
    return Markup("".join(out))

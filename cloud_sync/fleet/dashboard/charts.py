"""Line charts as numbers for the SVG the templates draw (no JavaScript, nothing fetched).

`line_chart` turns named series of (time ns, value) into pixel coordinates, axis ticks and a
legend; `templates/_chart.html` writes the SVG, and Jinja escapes every label there (series
names come from devices: model versions, device ids). At most `max_lines` series are drawn,
the ones with the highest values (the worst latency or miss rate first); the rest are counted.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

# Okabe-Ito: told apart with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


@dataclass(frozen=True)
class Line:
    label: str
    color: str
    points: list[tuple[float, float, str]]      # x px, y px, the value as text

    @property
    def svg_points(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    lines: list[Line] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str, str]] = field(default_factory=list)   # x, text, anchor
    omitted: int = 0                            # series not drawn (over max_lines)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    top: int = TOP
    bottom_edge: int = HEIGHT - BOTTOM


def line_chart(chart_id: str, title: str, unit: str,
               series: dict[str, list[tuple[int, float]]], span_ns: tuple[int, int],
               max_lines: int = len(PALETTE)) -> Chart:
    """`series`: label → [(time ns, value)] (None values already left out); `span_ns`: the
    time range on the x axis; `unit` '%' shows fractions as percent. A value that is not
    finite (or not once scaled) is left out: it has no place on an axis."""
    scale = 100.0 if unit == "%" else 1.0
    drawn = {k: finite for k, v in series.items()
             if (finite := [(t, y) for t, y in v if math.isfinite(y * scale)])}
    ranked = sorted(drawn, key=lambda k: (-max(v for _, v in drawn[k]), k))
    keep = sorted(ranked[:max_lines])
    top_value = _nice_ceiling(max((v * scale for k in keep for _, v in drawn[k]), default=0.0))
    start, end = span_ns
    width_px, height_px = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP

    def x(ts: int) -> float:
        return LEFT + width_px * min(max((ts - start) / max(end - start, 1), 0.0), 1.0)

    def y(value: float) -> float:
        return TOP + height_px * (1.0 - value * scale / top_value)

    lines = [Line(label, PALETTE[i % len(PALETTE)],
                  [(x(ts), y(v), _fmt(v * scale, unit)) for ts, v in sorted(drawn[label])])
             for i, label in enumerate(keep)]
    y_ticks = [(y(top_value * i / 4 / scale), _fmt(top_value * i / 4, unit)) for i in range(5)]
    x_ticks = [(x(t), time.strftime("%H:%M", time.gmtime(t / 1e9)), anchor)
               for t, anchor in zip((start + (end - start) * i // 4 for i in range(5)),
                                    ("start", "middle", "middle", "middle", "end"))]
    return Chart(chart_id, title, unit, lines, y_ticks, x_ticks, len(ranked) - len(keep))


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least `value` (and at least 1e-3); the largest float
    for a value whose ceiling no float holds."""
    if value <= 0:
        return 1.0
    if value > 1e307:
        return sys.float_info.max
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return max(step * power, 1e-3)
    return 10 * power


def _fmt(value: float, unit: str) -> str:
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}".rstrip()

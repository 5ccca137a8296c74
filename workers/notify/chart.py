"""Small charts of an anomaly in its context: a PNG for email, a text sparkline for chat."""
from __future__ import annotations

import io
import math
from typing import Sequence

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int = 32) -> str:
    """The last ``width`` values as block characters (gaps as spaces)."""
    vals = [v for v in values][-width:]
    finite = [v for v in vals if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    return "".join(" " if v is None or not math.isfinite(v) else BARS[min(7, int((v - lo) / span * 7.999))]
                   for v in vals)


def png(observed: Sequence[float | None], expected: Sequence[float | None], band: float | None,
        marks: Sequence[int] = (), width: int = 480, height: int = 140) -> bytes:
    """A PNG line chart: expected value with its band (grey), observed (blue), anomalies (red dots)."""
    from PIL import Image, ImageDraw

    n = len(observed)
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    pts = [v for v in list(observed) + list(expected) if v is not None and math.isfinite(v)]
    if band:
        pts += [e + band for e in expected if e is not None] + [e - band for e in expected if e is not None]
    if n < 2 or not pts:
        return _save(img)
    lo, hi = min(pts), max(pts)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad
    mx, my = 8, 8

    def xy(i: int, v: float) -> tuple[float, float]:
        return (mx + i * (width - 2 * mx) / (n - 1), height - my - (v - lo) / (hi - lo) * (height - 2 * my))

    if band:
        upper = [xy(i, e + band) for i, e in enumerate(expected) if e is not None]
        lower = [xy(i, e - band) for i, e in enumerate(expected) if e is not None]
        if len(upper) > 1:
            d.polygon(upper + lower[::-1], fill=(225, 228, 235))
    exp = [xy(i, e) for i, e in enumerate(expected) if e is not None]
    if len(exp) > 1:
        d.line(exp, fill=(140, 140, 150), width=1)
    obs = [xy(i, v) for i, v in enumerate(observed) if v is not None and math.isfinite(v)]
    if len(obs) > 1:
        d.line(obs, fill=(30, 90, 200), width=2)
    for i in marks:
        v = observed[i] if 0 <= i < n else None
        if v is not None and math.isfinite(v):
            x, y = xy(i, v)
            d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(200, 20, 40))
    return _save(img)


def _save(img: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)  # type: ignore[attr-defined]
    return buf.getvalue()

"""Running the streaming detector over recorded data, and scoring it against ground truth.

Exactly the code the workers run: points go through :meth:`Detector.update`
in order, refits happen when the detector asks for them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from harewatch.workers.detection.detector import Detector, PointResult


def run_series(det: Detector, ts: Sequence[float], values: Sequence[float], missing_check: bool = True
               ) -> list[PointResult]:
    """One result per input point (in input order); ``missing_data`` results are folded into the
    first point after the silence, as the periodic check would have raised them in between."""
    st = det.new_state()
    out: list[PointResult] = []
    for t, v in zip(ts, values):
        if missing_check and st.last_ts is not None and st.interval:
            miss = det.missing_due(st, t - 1e-6)
            if miss is not None:
                # the periodic check would have fired when the silence passed its limit
                fired = st.last_ts + det.missing_limit(st) + st.interval
                r = det.update(st, t, v)
                if not r.anomaly:
                    r.anomaly, r.type, r.event, r.onset, r.severity = True, "missing_data", True, True, "warning"
                    r.surprise = r._s01 = max(r.surprise, miss.surprise)
                    r.at = min(fired, t)
                out.append(r)
                continue
        out.append(det.update(st, t, v))   # refits happen inside, exactly as in the workers
    return out


@dataclass
class Window:
    """A labelled anomaly: [start, end] in epoch seconds, with its type."""

    start: float
    end: float
    type: str = "anomaly"
    magnitude: float = math.inf


@dataclass
class TypeScore:
    windows: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.windows if self.windows else math.nan


@dataclass
class Evaluation:
    """Precision, recall, F1 and detection delay (in points) for a set of series."""

    by_type: dict[str, TypeScore] = field(default_factory=dict)
    events: int = 0
    true_events: int = 0
    false_events: int = 0
    points: int = 0
    interval: float = 60.0

    @property
    def precision(self) -> float:
        return self.true_events / self.events if self.events else math.nan

    @property
    def recall(self) -> float:
        w = sum(s.windows for s in self.by_type.values())
        return sum(s.detected for s in self.by_type.values()) / w if w else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p and r and not (math.isnan(p) or math.isnan(r)) else math.nan

    def false_per_series_week(self, n_series: int) -> float:
        weeks = self.points * self.interval / (7 * 86400.0)
        return self.false_events / weeks if weeks else math.nan

    def merge(self, other: "Evaluation") -> None:
        for k, v in other.by_type.items():
            mine = self.by_type.setdefault(k, TypeScore())
            mine.windows += v.windows
            mine.detected += v.detected
            mine.delays.extend(v.delays)
        self.events += other.events
        self.true_events += other.true_events
        self.false_events += other.false_events
        self.points += other.points

    def table(self) -> str:
        rows = [f"{'type':16} {'windows':>8} {'detected':>8} {'recall':>7} {'delay p50':>9} {'delay max':>9}"]
        for k in sorted(self.by_type):
            s = self.by_type[k]
            d = sorted(s.delays)
            p50 = f"{d[len(d) // 2]:.0f}" if d else "-"
            mx = f"{d[-1]:.0f}" if d else "-"
            rows.append(f"{k:16} {s.windows:8d} {s.detected:8d} {s.recall:7.3f} {p50:>9} {mx:>9}")
        rows.append(f"alert events {self.events}, true {self.true_events}, false {self.false_events}; "
                    f"precision {self.precision:.3f} recall {self.recall:.3f} F1 {self.f1:.3f}")
        return "\n".join(rows)


def evaluate(results: Sequence[PointResult], windows: Iterable[Window], interval: float,
             tolerance_points: int = 5, min_magnitude: dict[str, float] | None = None) -> Evaluation:
    """Score alert events against labelled windows.

    A window counts as detected when an anomalous point falls within
    [start, end + tolerance]; for one-point anomalies (spike, dip) it must be
    within ``tolerance_points`` of the start. An alert event (the onset of an
    anomalous run) outside every window (plus tolerance) is a false alert.
    Windows below ``min_magnitude`` for their type are excluded from recall
    but their alerts are not counted false.
    """
    tol = tolerance_points * interval
    wins = sorted(windows, key=lambda w: w.start)
    ev = Evaluation(interval=interval, points=len(results))
    anomalous = [r for r in results if r.anomaly]
    for w in wins:
        if min_magnitude and w.magnitude < min_magnitude.get(w.type, 0.0):
            continue
        sc = ev.by_type.setdefault(w.type, TypeScore())
        sc.windows += 1
        hi = w.start + tol if w.type in ("spike", "dip", "level_shift") else w.end + tol
        hits = [r.at or r.ts for r in anomalous if w.start - 1e-9 <= (r.at or r.ts) <= hi]
        if hits:
            sc.detected += 1
            sc.delays.append((hits[0] - w.start) / interval)
    for r in results:
        if not r.onset:
            continue
        ev.events += 1
        t = r.at or r.ts
        if any(w.start - tol <= t <= w.end + 4 * tol for w in wins):
            ev.true_events += 1
        else:
            ev.false_events += 1
    return ev


def row(r: PointResult) -> dict[str, Any]:
    """One backtest CSV row's result columns.

    ``score`` is the alert score (one threshold for every series; an episode
    scores high once, at its onset); ``surprise`` the calibrated surprise of
    the point itself; ``anomaly`` marks the episode's span and ``onset`` its
    first point, the one alert.
    """
    return {"score": round(r.score01, 6), "surprise": round(r.surprise, 6), "anomaly": int(r.anomaly),
            "onset": int(r.onset), "type": r.type or "",
            "expected": "" if r.expected is None else round(r.expected, 6),
            "lower": "" if r.lower is None else round(r.lower, 6),
            "upper": "" if r.upper is None else round(r.upper, 6)}

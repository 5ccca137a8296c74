"""`harewatch demo --duration 60s`: simulated anomalies travel through RabbitMQ to the local webhook sink."""
from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.broker, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_in_its_own_namespace_says_what_happens_and_leaves_nothing(mgmt, redis_db):
    import redis
    from harewatch.settings import load_settings

    vhost = f"harewatch-test-demo-{uuid.uuid4().hex[:6]}"
    prefix = f"tdemo{uuid.uuid4().hex[:4]}."
    s = load_settings(prefix=prefix)           # the user's own broker and Redis, vhost '/'
    r = redis.Redis.from_url(redis_db)
    root_queues = sorted(q["name"] for q in mgmt.queues("/"))
    base = free_port()
    proc = run_cli(s, "demo", "--duration", "60s", "--series", "14", "--vhost", vhost, "--sink-port",
                   str(free_port()), "--smtp-port", str(free_port()), "--metrics-port", str(base),
                   "--serve-port", str(free_port()), timeout=180)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    # it said where things are, and they were where it said
    assert f"vhost '{vhost}'" in out and f"/#/queues/{vhost}" in out and "notify.<channel>.dlq" in out
    assert re.search(r"pages +http://127\.0\.0\.1:\d+/", out)
    webhook = [line for line in out.splitlines() if re.search(r"delivered by webhook +FIRING", line)]
    assert webhook, out[-3000:]
    assert re.search(r"value [-\d.]+ expected [-\d.]+", webhook[0])
    assert re.search(r"status: +[\d,]+ readings/s \| [\d,]+ anomalies \| \d+ notifications", out)
    counters = dict(re.findall(r"(\w+)=([\d.]+)", out.split("metrics: ")[1].splitlines()[0]))
    assert float(counters["readings_consumed_total"]) > 10_000
    assert float(counters["anomalies_total"]) > 0 and float(counters["notifications_total"]) > 0
    # quiet: one line per notification, the status and the summary; nothing from libraries
    noise = [ln for ln in (out + proc.stderr).splitlines()
             if re.search(r"\b(INFO|DEBUG|WARNING)\b|pika|mail\.log|Traceback", ln)]
    assert noise == [], noise[:5]
    # nothing left behind: not its vhost, not a key, not a queue in '/', not its log folder
    assert vhost not in [v["name"] for v in mgmt.get("/vhosts")]
    assert list(r.scan_iter(f"{prefix}*")) == []
    assert sorted(q["name"] for q in mgmt.queues("/")) == root_queues
    logdir = re.search(r"logs in (\S+)\)", out).group(1)
    assert not Path(logdir).exists()

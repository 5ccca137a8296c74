"""Notifier workers end to end: broker-held retries with backoff, dead-lettering, replay, and a
worker killed during a retry wait — against a real HTTP endpoint."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from harewatch.routing.config import load_config
from harewatch.broker.declare import declare
from harewatch.routing.loader import load_full_config
from harewatch.broker.topology import topology_from_config
from tests.conftest import make_settings, run_cli
from tests.workers.notify.test_channels import sample_notification
from harewatch.workers.store import StateStore

pytestmark = [pytest.mark.broker, pytest.mark.e2e]


@pytest.fixture
def nsettings(vhost, tmp_path, http_sink):
    cfg = tmp_path / "harewatch.yaml"
    cfg.write_text(f"""
channels: [webhook]
route: {{receiver: hook}}
receivers:
  - name: hook
    webhook_configs:
      - url: {http_sink.url}/hook
        max_attempts: 4
""")
    s = make_settings(vhost, prefix=f"n{uuid.uuid4().hex[:6]}.", config=str(cfg))
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    yield s
    StateStore(s.redis_url, s.prefix).clear()


def publish_notification(settings, note):
    """What the router does: a harewatch.notify task to the alerts exchange."""
    from kombu import Connection, Producer
    body = json.dumps([[], {"notification": note}, {"callbacks": None, "errbacks": None, "chain": None,
                                                     "chord": None}])
    with Connection(settings.amqp_url.replace("amqp://", "pyamqp://"), transport_options={"confirm_publish": True}) as c:
        Producer(c.channel()).publish(
            body, exchange=settings.prefix + "alerts", routing_key="webhook.payments.spike.critical",
            serializer=None, content_type="application/json", content_encoding="utf-8", delivery_mode=2,
            headers={"lang": "py", "task": "harewatch.notify", "id": note["id"], "root_id": note["id"],
                     "parent_id": None, "group": None, "retries": 0, "argsrepr": "()", "kwargsrepr": "{}",
                     "origin": "test", "ignore_result": True})


def note_for(receiver="hook"):
    n = sample_notification()
    n.update({"receiver": receiver, "channel": "webhook", "integration": 0, "id": str(uuid.uuid4())})
    return n


def start_notifier(worker_factory, s, name="n"):
    return worker_factory(s, "-Q", s.prefix + "notify.webhook", "--pool", "threads", "--concurrency", "2",
                          name=name).start()


def test_500_three_times_then_delivered_once_with_backoff(nsettings, worker_factory, http_sink):
    http_sink.respond("/hook", (500, "boom"), (500, "boom"), (500, "boom"))
    start_notifier(worker_factory, nsettings)
    note = note_for()
    publish_notification(nsettings, note)
    reqs = http_sink.wait("/hook", 4, timeout=60)
    assert len(reqs) == 4
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    assert gaps[0] >= 1.5 and gaps[1] >= 3.0 and gaps[2] >= 6.0      # exponential, held by the broker
    assert {r.headers["idempotency-key"] for r in reqs} == {note["id"]}
    time.sleep(2)
    assert len(http_sink.on("/hook")) == 4                            # delivered once, not again


def test_endpoint_down_dead_letters_then_replay_delivers_once(nsettings, worker_factory, http_sink):
    http_sink.respond("/hook", *[(503, "down")] * 4)
    start_notifier(worker_factory, nsettings)
    note = note_for()
    publish_notification(nsettings, note)
    deadline = time.monotonic() + 60
    shown = []
    while time.monotonic() < deadline:
        proc = run_cli(nsettings, "dlq", "show", "notify.webhook.dlq", "--json")
        shown = json.loads(proc.stdout) if proc.returncode == 0 else []
        if shown:
            break
        time.sleep(1)
    assert len(shown) == 1, proc.stderr
    d = shown[0]
    assert d["id"] == note["id"] and d["reason"] == "exhausted" and d["attempts"] == 4
    assert "503" in d["last_error"] and d["receiver"] == "hook" and d["routing_key"] == "webhook.payments.spike.critical"
    assert len(http_sink.on("/hook")) == 4
    listing = run_cli(nsettings, "dlq", "list").stdout
    assert "notify.webhook.dlq" in listing and " 1 " in listing
    dry = run_cli(nsettings, "dlq", "replay", "notify.webhook.dlq", "--dry-run")
    assert "1 message(s) would be replayed" in dry.stdout
    proc = run_cli(nsettings, "dlq", "replay", "notify.webhook.dlq", "--where", "receiver=hook")
    assert "1 message(s) replayed" in proc.stdout, proc.stderr
    reqs = http_sink.wait("/hook", 5, timeout=30)
    time.sleep(2)
    reqs = http_sink.on("/hook")
    assert len(reqs) == 5 and reqs[-1].headers["idempotency-key"] == note["id"]
    assert json.loads(run_cli(nsettings, "dlq", "show", "notify.webhook.dlq", "--json").stdout) == []


def test_permanent_error_goes_straight_to_dlq_and_purge(nsettings, worker_factory, http_sink):
    http_sink.respond("/hook", (400, "bad payload"))
    start_notifier(worker_factory, nsettings)
    publish_notification(nsettings, note_for())
    publish_notification(nsettings, note_for(receiver="nobody"))   # not in the config any more
    deadline = time.monotonic() + 30
    shown = []
    while time.monotonic() < deadline and len(shown) < 2:
        shown = json.loads(run_cli(nsettings, "dlq", "show", "notify.webhook.dlq", "--json").stdout or "[]")
        time.sleep(0.5)
    assert sorted(s["reason"] for s in shown) == ["permanent", "permanent"]
    assert any("400" in s["last_error"] for s in shown) and any("not in the config" in s["last_error"] for s in shown)
    assert len(http_sink.on("/hook")) == 1
    assert "1 message(s) purged" in run_cli(nsettings, "dlq", "purge", "notify.webhook.dlq", "--where",
                                            "receiver=nobody", "--yes").stdout
    assert len(json.loads(run_cli(nsettings, "dlq", "show", "notify.webhook.dlq", "--json").stdout)) == 1


def test_sigkill_during_retry_wait_still_retries(nsettings, worker_factory, http_sink):
    http_sink.respond("/hook", (500, "boom"), (500, "boom"))
    w = start_notifier(worker_factory, nsettings, name="k1")
    note = note_for()
    publish_notification(nsettings, note)
    assert len(http_sink.wait("/hook", 1, timeout=20)) == 1
    time.sleep(0.5)
    w.kill()                       # the retry now waits in notify.retry.*, not in the worker
    time.sleep(4)
    start_notifier(worker_factory, nsettings, name="k2")
    reqs = http_sink.wait("/hook", 3, timeout=40)
    assert len(reqs) == 3 and {r.headers["idempotency-key"] for r in reqs} == {note["id"]}
    _ = load_config

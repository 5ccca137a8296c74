"""The broker topology, shown by publishing real messages and reading them back."""
from __future__ import annotations

import json
import subprocess
import sys

import pika
import pytest

from harewatch.routing.config import load_config
from harewatch.broker.declare import declare
from harewatch.broker.topology import Names, build_topology, definitions_json, topology_from_config
from tests.conftest import ROOT, get_all, make_settings

pytestmark = pytest.mark.broker


@pytest.fixture
def topo(settings):
    cfg = load_config(settings.config)
    t = topology_from_config(cfg)
    outcomes = declare(t, settings)
    assert {o.status for o in outcomes} == {"created"}
    return t


def publish(ch, exchange, key, body=b"{}", headers=None):
    ch.confirm_delivery()
    ch.basic_publish(exchange, key, body, pika.BasicProperties(delivery_mode=2, headers=headers),
                     mandatory=True)


def test_reading_for_configured_metric_lands_in_its_queue(topo, pika_channel):
    publish(pika_channel, "readings", "cpu_util.web-01", b'{"metric":"cpu_util","value":1}')
    msgs = get_all(pika_channel, "detect.cpu_util", expect=1)
    assert [m[2] for m in msgs] == [b'{"metric":"cpu_util","value":1}']
    assert get_all(pika_channel, "detect.default") == []


def test_reading_for_unconfigured_metric_lands_in_default(topo, pika_channel):
    publish(pika_channel, "readings", "disk_free.db-01.sda")
    assert len(get_all(pika_channel, "detect.default", expect=1)) == 1
    assert get_all(pika_channel, "detect.cpu_util") == []


def test_anomaly_and_notification_routing(topo, pika_channel):
    publish(pika_channel, "anomalies", "payments.spike.critical")
    publish(pika_channel, "alerts", "slack.payments.spike.critical")
    assert len(get_all(pika_channel, "alerts.route", expect=1)) == 1
    assert len(get_all(pika_channel, "notify.slack", expect=1)) == 1
    for ch in ("email", "webhook", "pagerduty"):
        assert get_all(pika_channel, f"notify.{ch}") == []


def test_rejected_notification_is_dead_lettered_with_origin(topo, pika_channel):
    publish(pika_channel, "alerts", "slack.payments.spike.critical", b"boom")
    method, _, _ = pika_channel.basic_get("notify.slack")
    assert method is not None
    pika_channel.basic_reject(method.delivery_tag, requeue=False)  # notify queues allow basic.get
    [(m, props, body)] = get_all(pika_channel, "notify.slack.dlq", expect=1)
    assert body == b"boom"
    death = props.headers["x-death"][0]
    assert death["queue"] == "notify.slack"
    assert death["reason"] == "rejected"
    assert death["routing-keys"] == ["slack.payments.spike.critical"]


def test_declare_twice_changes_nothing(topo, settings, mgmt):
    before = sorted((q["name"], json.dumps(q["arguments"], sort_keys=True)) for q in mgmt.queues(settings.vhost))
    outcomes = declare(topo, settings)
    assert {o.status for o in outcomes} == {"kept"}
    after = sorted((q["name"], json.dumps(q["arguments"], sort_keys=True)) for q in mgmt.queues(settings.vhost))
    assert before == after


def test_drift_is_reported_not_raised(settings, pika_channel):
    # someone made detect.cpu_util a classic queue by hand
    pika_channel.queue_declare("detect.cpu_util", durable=True, arguments={"x-max-length": 10})
    t = topology_from_config(load_config(settings.config))
    outcomes = {o.name: o for o in declare(t, settings)}
    drift = outcomes["detect.cpu_util"]
    assert drift.status == "drift"
    args = {d.argument: d for d in drift.drifts}
    assert args["x-queue-type"].current == "classic" and args["x-queue-type"].wanted == "quorum"
    assert args["x-max-length"].current == 10 and args["x-max-length"].wanted is None
    assert outcomes["detect.http_latency_ms"].status == "created"  # the rest still declared


def test_cli_declare_reports_drift_with_exit_code(settings, pika_channel):
    pika_channel.queue_declare("alerts.route", durable=True)
    env = {"AMQP_URL": settings.amqp_url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "harewatch", "topology", "declare"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 3, proc.stderr
    assert "drift" in proc.stdout and "alerts.route" in proc.stdout
    assert "x-queue-type is 'classic' on the broker but the config wants 'quorum'" in proc.stdout


def test_exported_definitions_yield_same_topology(topo, settings, mgmt, vhost_factory):
    other = vhost_factory("import")
    mgmt.import_definitions(other, json.loads(definitions_json(topo, other)))

    def shape(v):
        qs = sorted((q["name"], json.dumps(q["arguments"], sort_keys=True), q["durable"]) for q in mgmt.queues(v))
        xs = sorted((x["name"], x["type"], json.dumps(x["arguments"], sort_keys=True))
                    for x in mgmt.exchanges(v) if x["name"] and not x["name"].startswith("amq."))
        bs = sorted((b["source"], b["routing_key"], b["destination"]) for b in mgmt.bindings(v) if b["source"])
        return qs, xs, bs

    assert shape(other) == shape(settings.vhost)
    # and the imported topology is re-declarable without drift
    assert {o.status for o in declare(topo, make_settings(other))} == {"kept"}


def test_prefix_namespaces_every_name():
    t = build_topology({"detect.cpu_util": ["cpu_util"]}, ["slack"], prefix="prod.")
    names = [q.name for q in t.queues] + [e.name for e in t.exchanges]
    assert all(n.startswith("prod.") for n in names)
    assert t.exchange("prod.readings").arguments["alternate-exchange"] == "prod.readings.unrouted"
    assert Names("prod.").dlq(Names("prod.").notify_queue("slack")) == "prod.notify.slack.dlq"

"""The publishing client, the publish CLI and stdin, against the real broker."""
from __future__ import annotations

import json
import threading
import time

import pytest

from harewatch.errors import BrokerUnreachable, UnroutableMessage
from harewatch.producers.formats import parse_body
from harewatch.producers.publisher import Publisher
from tests.conftest import get_all, run_cli

pytestmark = pytest.mark.broker


def bodies(ch, queue, expect=None):
    return get_all(ch, queue, expect=expect)


def test_publish_one_reading_field_by_field(declared, pika_channel):
    with Publisher(settings=declared) as pub:
        n = pub.publish({"metric": "cpu_util", "value": 73.2, "ts": "2026-11-22T07:39:46Z",
                         "labels": {"host": "web-01", "team": "payments"}})
    assert n == 1
    [(method, props, body)] = bodies(pika_channel, "detect.cpu_util", expect=1)
    assert method.routing_key == "cpu_util.web-01"
    assert props.delivery_mode == 2 and props.content_type == "application/json"
    assert json.loads(body) == {"metric": "cpu_util", "value": 73.2, "ts": "2026-11-22T07:39:46Z",
                                "labels": {"host": "web-01", "team": "payments"}}


def test_batching_sends_json_arrays_and_flushes_on_close(declared, pika_channel):
    readings = [{"metric": "http_latency_ms", "value": float(i), "ts": 1795333186 + i, "labels": {"host": "a"}}
                for i in range(250)]
    with Publisher(settings=declared, batch_size=100, linger=60) as pub:
        assert pub.publish(readings) == 200      # two full batches confirmed
        assert pub.pending == 50
    msgs = bodies(pika_channel, "detect.http_latency_ms", expect=3)
    got = [r.value for _, p, b in msgs for r in parse_body(b, p.content_type)]
    assert [len(json.loads(b)) for _, _, b in msgs] == [100, 100, 50]
    assert got == [float(i) for i in range(250)]


def test_unroutable_publish_surfaces(declared, pika_channel):
    pika_channel.exchange_declare("test.nobind", "topic", durable=False, auto_delete=True)
    with pytest.raises(UnroutableMessage) as exc:
        with Publisher(settings=declared, exchange="test.nobind") as pub:
            pub.publish({"metric": "cpu_util", "value": 1})
    assert "cpu_util" in str(exc.value)


def test_broker_down_at_start_is_a_clear_error(settings):
    down = settings.with_overrides(amqp_url="amqp://guest:guest@127.0.0.1:1/%2F")
    t0 = time.monotonic()
    with pytest.raises(BrokerUnreachable) as exc:
        Publisher(settings=down, connect_attempts=2).connect()
    assert "127.0.0.1:1" in str(exc.value) and time.monotonic() - t0 < 10
    proc = run_cli(down, "publish", "cpu_util", "1")
    assert proc.returncode == 4 and "unreachable" in proc.stderr


def test_connection_killed_mid_stream_loses_nothing_confirmed(declared, pika_channel, mgmt):
    confirmed: list[int] = []
    pub = Publisher(settings=declared, client_name=f"hw-kill-{declared.vhost}").connect()
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set() and i < 20000:
            if pub.publish({"metric": "orders_per_min", "value": float(i), "ts": 1795333186 + i,
                            "labels": {"host": "p"}}):
                confirmed.append(i)
            i += 1

    th = threading.Thread(target=produce)
    th.start()
    killed = 0
    deadline = time.monotonic() + 30
    while not killed and time.monotonic() < deadline:
        for c in mgmt.connections(declared.vhost):
            if c.get("client_properties", {}).get("connection_name") == f"hw-kill-{declared.vhost}":
                mgmt.close_connection(c["name"], "test kills the publisher's connection")
                killed += 1
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    th.join(30)
    pub.close()
    assert killed and pub.reconnects >= 1
    seen = {int(r.value) for _, p, b in bodies(pika_channel, "detect.orders_per_min", expect=len(confirmed))
            for r in parse_body(b, p.content_type)}
    assert set(confirmed) <= seen and len(confirmed) > 10


def test_cli_publish_one_and_stdin(declared, pika_channel):
    proc = run_cli(declared, "publish", "cpu_util", "73.2", "host=web-01", "team=payments",
                   "--ts", "2026-11-22T07:39:46Z")
    assert proc.returncode == 0, proc.stderr
    [(m, _, body)] = bodies(pika_channel, "detect.cpu_util", expect=1)
    assert json.loads(body)["labels"] == {"host": "web-01", "team": "payments"} and m.routing_key == "cpu_util.web-01"

    now = int(time.time())
    influx = "".join(f"cpu,host=h{i} util={i}.5 {(now + i) * 10**9}\n" for i in range(5)) + "garbage line\n"
    proc = run_cli(declared, "publish", "-f", "-", "--format", "influx", input=influx)
    assert proc.returncode == 1  # one line rejected
    assert "5 readings published, 1 lines rejected" in proc.stdout and "-:6: rejected" in proc.stderr
    got = [r for _, p, b in bodies(pika_channel, "detect.cpu_util", expect=1) for r in parse_body(b, p.content_type)]
    assert sorted(r.value for r in got) == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert {r.metric for r in got} == {"cpu_util"}


def test_cli_publish_file(declared, pika_channel, tmp_path):
    now = int(time.time())
    f = tmp_path / "r.csv"
    f.write_text("metric,value,ts,host\n" + "".join(f"cpu_util,{i},{now + i},h\n" for i in range(50)))
    proc = run_cli(declared, "publish", "--file", str(f), "--speed", "1000x")
    assert proc.returncode == 0, proc.stderr
    assert "50 readings published, 0 lines rejected" in proc.stdout
    got = [r for _, p, b in bodies(pika_channel, "detect.cpu_util", expect=1) for r in parse_body(b, p.content_type)]
    assert len(got) == 50


def test_amqp_tools_peer_publishes_readings_we_accept(declared, pika_channel):
    """amqp-publish (the C client) as a foreign producer: a Graphite body, no content type."""
    import shutil
    import subprocess
    if not shutil.which("amqp-publish"):
        pytest.skip("amqp-tools not installed")
    now = int(time.time())
    subprocess.run(["amqp-publish", "--url", declared.amqp_url, "-e", "readings", "-r", "cpu_util.collectd",
                    "-b", f"cpu_util;host=web-07 55.5 {now}\n"], check=True)
    [(_, props, body)] = bodies(pika_channel, "detect.cpu_util", expect=1)
    [r] = parse_body(body, props.content_type)
    assert (r.metric, r.value, r.labels) == ("cpu_util", 55.5, {"host": "web-07"})


def test_cli_publish_file_cut_off_says_how_far_the_broker_confirmed(declared, pika_channel, tmp_path):
    """When publishing fails part-way, the user learns which lines are safely in, to resume from the next."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT
    t0 = int(time.time()) - 4000
    f = tmp_path / "r.jsonl"
    f.write_text("".join(json.dumps({"metric": "cpu_util", "value": i, "ts": t0 + i, "labels": {"host": "a"}}) + "\n"
                         for i in range(3000)))
    env = {"AMQP_URL": declared.amqp_url, "HAREWATCH_CONFIG": declared.config, "HAREWATCH_PREFIX": declared.prefix,
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "harewatch", "publish", "--file", str(f), "--speed", "1000x",
                             "--batch", "10"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    # Watched by the queue's depth: a tap bound to ``readings`` would be a second destination, and a reading
    # routed there alone while the exchange's bindings are being deleted would be confirmed, yet not queued
    while pika_channel.queue_declare("detect.cpu_util", passive=True).method.message_count == 0:
        assert time.monotonic() < deadline, "nothing published in 30 s"   # publishing is under way ...
        time.sleep(0.01)
    pika_channel.exchange_delete("readings")                     # ... and now it cannot go on
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    m = re.search(r"(\d+) readings confirmed by the broker: every reading of lines 1-(\d+); resume from line (\d+)",
                  err)
    assert m, err
    confirmed, upto, resume = map(int, m.groups())
    assert 0 < upto < 3000 and resume == upto + 1 and confirmed >= upto
    # A reading routed while the exchange is being deleted may find no binding: the alternate exchange takes it to
    # detect.default, where it awaits detection as well
    got = {r.value for q in ("detect.cpu_util", "detect.default") for _, p, b in bodies(pika_channel, q)
           for r in parse_body(b, p.content_type)}
    assert set(range(upto)) <= got

"""The guarantees, each under one fault: readings in, notifications out.

Every test runs the whole pipeline (detection, router and notifier workers as
separate Celery processes) against a real RabbitMQ, a real Redis and a real
HTTP endpoint; publishes the same readings (series with one gross spike each);
injects one fault at an observed point; then counts:

- every reading was scored exactly once (no loss, redeliveries not counted twice);
- every spike reached the endpoint as a notification;
- a notification delivered twice (at-least-once) carried the same id both times.

Read the test names as the list: a worker, the router or a notifier killed
with SIGKILL; the broker restarted; Redis restarted; the endpoint failing and
then healing; garbage interleaved with good readings.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pika
import pytest

from harewatch.messages import fingerprint
from harewatch.settings import Settings
from harewatch.producers.publisher import Publisher
from harewatch.broker.declare import declare
from harewatch.routing.loader import load_full_config
from harewatch.broker.topology import topology_from_config
from tests.conftest import make_settings
from harewatch.workers.detection.detector import SeriesState
from harewatch.workers.store import StateStore

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

SERIES, POINTS, SPIKE_AT, STEP = 12, 150, 120, 60.0
METRIC = "guarantee_load"


def readings(seed: int = 0) -> list[dict[str, Any]]:
    """SERIES series of POINTS one-minute points ending now, each with one +60 sigma spike."""
    rng = np.random.default_rng(seed)
    t0 = math.floor(time.time() / STEP) * STEP - POINTS * STEP
    out = []
    for s in range(SERIES):
        x = 100 + rng.normal(0, 1, POINTS)
        x[SPIKE_AT] += 60
        out += [{"metric": METRIC, "value": round(float(x[i]), 3), "ts": t0 + i * STEP,
                 "labels": {"host": f"h{s:02d}", "team": "ops"}} for i in range(POINTS)]
    out.sort(key=lambda r: r["ts"])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout}s")


class PrivateRabbit:
    """A RabbitMQ node of this test's own (own node name, ports and data dir), so it can be restarted."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port, self.dist = free_port(), free_port()
        self.node = f"hwfault{uuid.uuid4().hex[:6]}@{socket.gethostname().split('.')[0]}"
        (base / "mnesia").mkdir(parents=True)
        (base / "log").mkdir()
        (base / "plugins").write_text("[].\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist), "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"), "RABBITMQ_CONFIG_FILE": str(self.base / "none"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "plugins"),
                "RABBITMQ_FEATURE_FLAGS_FILE": str(self.base / "mnesia" / "feature_flags")}

    def start(self) -> None:
        self.proc = subprocess.Popen([_rabbit_bin("rabbitmq-server")], env=self.env(),
                                     stdout=open(self.base / "out.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_port(self.port, 90)

    def stop(self) -> None:
        subprocess.run([_rabbit_bin("rabbitmqctl"), "-n", self.node, "stop"], env=self.env(),
                       capture_output=True, timeout=60)
        if self.proc is not None:
            self.proc.wait(60)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"


def _rabbit_bin(name: str) -> str:
    # the scripts under /usr/lib/rabbitmq/bin run as the caller; the /usr/sbin wrappers switch user
    for d in ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


class PrivateRedis:
    """A redis-server of this test's own with an fsync-always append-only file, so a restart keeps its data."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = base, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", str(self.base), "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Pipeline:
    """Detection, router and notifier workers on one settings object, and the endpoint they deliver to."""

    def __init__(self, settings: Settings, worker_factory: Any, sink: Any) -> None:
        self.s, self.factory, self.sink = settings, worker_factory, sink
        self.workers: dict[str, Any] = {}
        self.data = readings()

    def args(self, kind: str) -> list[str]:
        tasks = self.s.prefix + "harewatch.tasks"
        return {"detect": ["--detect", "all", "-Q", tasks],
                "route": ["--route", "-Q", tasks],
                "notify": ["-Q", self.s.prefix + "notify.webhook", "--pool", "threads", "--concurrency", "2"]}[kind]

    def start(self, *kinds: str) -> "Pipeline":
        for kind in kinds or ("detect", "route", "notify"):
            self.workers[kind] = self.factory(self.s, *self.args(kind), name=f"{kind}-{uuid.uuid4().hex[:4]}").start()
        return self

    def kill(self, kind: str) -> None:
        self.workers.pop(kind).kill()

    def publish(self, part: slice = slice(None), batch: int = 6) -> int:
        rs = self.data[part]
        with Publisher(settings=self.s, batch_size=batch) as pub:
            pub.publish(rs)
        return len(rs)

    def scored(self) -> int:
        """Points the stored series states have taken in."""
        store = StateStore(self.s.redis_url, self.s.prefix)
        fps = sorted({fingerprint(METRIC, r["labels"]) for r in self.data})
        return sum(SeriesState.from_bytes(b).n for b in store.get_states(fps).values())

    def wait_scored(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scored() >= n:
                return
            time.sleep(0.1)
        raise AssertionError(f"scored {self.scored()} of {n}")

    def notified(self) -> dict[str, set[str]]:
        """Host -> the ids (Idempotency-Key) of the notifications that reached the endpoint about it."""
        out: dict[str, set[str]] = {}
        for req in self.sink.on("/hook"):
            if not 200 <= getattr(req, "status", 200) < 300:
                continue
            for alert in req.json().get("alerts", []):
                out.setdefault(alert["labels"]["host"], set()).add(req.headers["idempotency-key"])
        return out

    def wait_notified(self, timeout: float = 120.0) -> dict[str, set[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.notified()
            if len(got) >= SERIES:
                return got
            time.sleep(0.2)
        return self.notified()

    def check(self) -> None:
        """Nothing lost: every reading scored once, every spike notified, duplicates with one id each."""
        self.wait_scored(len(self.data))
        got = self.wait_notified()
        assert sorted(got) == [f"h{s:02d}" for s in range(SERIES)], got
        assert self.scored() == len(self.data)   # redelivered readings were recognised, not scored again
        assert StateStore(self.s.redis_url, self.s.prefix).readings_total() == len(self.data)   # nor counted
        assert all(len(ids) == 1 for ids in got.values()), got


def write_config(path: Path, sink_url: str) -> str:
    path.write_text(f"""
defaults: {{periods: none}}
channels: [webhook]
route: {{receiver: hook, group_by: ['...'], group_wait: 1s, group_interval: 2s, repeat_interval: 1h}}
receivers:
  - name: hook
    webhook_configs: [{{url: "{sink_url}/hook", max_attempts: 30, send_resolved: false}}]
""")
    return str(path)


@pytest.fixture
def pipeline(vhost: str, tmp_path: Path, http_sink: Any, worker_factory: Any) -> Iterator[Pipeline]:
    s = make_settings(vhost, prefix=f"g{uuid.uuid4().hex[:6]}.", config=write_config(tmp_path / "hw.yaml", http_sink.url))
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    yield Pipeline(s, worker_factory, http_sink)
    StateStore(s.redis_url, s.prefix).clear()


def test_detection_worker_sigkill_mid_stream(pipeline: Pipeline) -> None:
    p = pipeline.start()
    half = len(p.data) // 2
    p.publish(slice(0, half))
    p.wait_scored(half // 3)             # an observed point, mid-stream
    p.kill("detect")
    assert p.scored() < len(p.data)      # the second half is not even published yet
    p.publish(slice(half, None))
    p.start("detect")
    p.check()


@pytest.mark.parametrize("kind", ["route", "notify"], ids=["router", "notifier"])
def test_sigkill_after_first_notification(pipeline: Pipeline, kind: str) -> None:
    p = pipeline.start()
    p.publish()
    assert p.sink.wait("/hook", 1, timeout=120)
    p.kill(kind)
    p.start(kind)
    p.check()


def test_endpoint_failing_then_healing(pipeline: Pipeline) -> None:
    pipeline.sink.respond("/hook", *[(503, "down for maintenance")] * 8)
    p = pipeline.start()
    p.publish()
    p.check()
    assert sum(r.status == 503 for r in p.sink.on("/hook")) == 8   # the endpoint did fail, and was retried


def test_garbage_interleaved_with_good_readings(pipeline: Pipeline) -> None:
    p = pipeline.start()
    garbage = [b"", b" ", os.urandom(64), b"{", b'{"metric": "x"}', b'[{"metric": 1, "value": 2}]', b"\x00\xff"]
    conn = pika.BlockingConnection(pika.URLParameters(p.s.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    ex = p.s.prefix + "readings"
    for i in range(0, len(p.data), 12):
        ch.basic_publish(ex, f"{METRIC}.h", json.dumps(p.data[i:i + 12]).encode(),
                         pika.BasicProperties(content_type="application/json", delivery_mode=2))
        bad = garbage[(i // 12) % len(garbage)]
        ch.basic_publish(ex, f"{METRIC}.bad", bad, pika.BasicProperties(delivery_mode=2))
    p.check()
    sent = len(range(0, len(p.data), 12))
    invalid = []
    for method, props, body in ch.consume(p.s.prefix + "readings.invalid", inactivity_timeout=2):
        if method is None:
            break
        ch.basic_ack(method.delivery_tag)
        invalid.append(props.headers)
    conn.close()
    assert len(invalid) == sent
    assert {h["x-harewatch-queue"] for h in invalid} == {p.s.prefix + "detect.default"}
    assert all(h["x-harewatch-reason"] for h in invalid)


@pytest.fixture
def private_rabbit() -> Iterator[PrivateRabbit]:
    rabbit = PrivateRabbit(Path(tempfile.mkdtemp(prefix="hw-rabbit-")))
    rabbit.start()
    yield rabbit
    rabbit.stop()
    shutil.rmtree(rabbit.base, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    red = PrivateRedis(tmp_path)
    red.start()
    yield red
    red.kill()


def test_broker_restart_mid_stream(private_rabbit: PrivateRabbit, tmp_path: Path, http_sink: Any,
                                   worker_factory: Any) -> None:
    from harewatch.settings import load_settings
    s = load_settings(amqp_url=private_rabbit.url, prefix=f"g{uuid.uuid4().hex[:6]}.",
                      config=write_config(tmp_path / "hw.yaml", http_sink.url),
                      management_url=f"http://guest:guest@127.0.0.1:{free_port()}")
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    p = Pipeline(s, worker_factory, http_sink).start()
    try:
        half = len(p.data) // 2
        p.publish(slice(0, half))
        p.wait_scored(half // 3)
        private_rabbit.stop()
        private_rabbit.start()
        p.publish(slice(half, None))
        p.check()
    finally:
        StateStore(s.redis_url, s.prefix).clear()


def test_redis_restart_mid_stream(private_redis: PrivateRedis, vhost: str, tmp_path: Path, http_sink: Any,
                                  worker_factory: Any) -> None:
    s = make_settings(vhost, prefix=f"g{uuid.uuid4().hex[:6]}.", redis_url=private_redis.url,
                      config=write_config(tmp_path / "hw.yaml", http_sink.url))
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    p = Pipeline(s, worker_factory, http_sink).start()
    half = len(p.data) // 2
    p.publish(slice(0, half))
    p.wait_scored(half // 3)
    private_redis.kill()
    publisher = threading.Thread(target=p.publish, args=(slice(half, None),))
    publisher.start()                     # readings keep arriving while Redis is away
    private_redis.start()
    publisher.join(120)
    p.check()

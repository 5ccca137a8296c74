"""Fixtures: a fresh RabbitMQ vhost per test session, settings pointing at it, a Redis db.

A missing broker is a failure, never a silent skip: the suite is about the
real broker.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pika
import pytest

from harewatch.settings import Settings, load_settings
from harewatch.broker.management import Management

ROOT = Path(__file__).resolve().parent.parent
BASE = load_settings()


def _url_for_vhost(url: str, vhost: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


@pytest.fixture(scope="session")
def mgmt() -> Management:
    m = Management(BASE.management_url)
    if not m.available():
        pytest.fail(f"RabbitMQ management API not reachable at {m.base}: run scripts/services.sh")
    return m


@pytest.fixture(scope="session")
def vhost_factory(mgmt: Management) -> Iterator[Callable[[str], str]]:
    """Creates uniquely named vhosts; every one is deleted at the end of the session."""
    made: list[str] = []

    def make(tag: str = "t") -> str:
        name = f"harewatch-test-{tag}-{uuid.uuid4().hex[:8]}"
        mgmt.create_vhost(name, description="harewatch test run (deleted after)")
        made.append(name)
        return name

    yield make
    for v in made:
        mgmt.delete_vhost(v)


@pytest.fixture(scope="session")
def session_vhost(vhost_factory: Callable[[str], str]) -> str:
    return vhost_factory("s")


@pytest.fixture
def vhost(mgmt: Management) -> Iterator[str]:
    """A vhost of this test's own, deleted when the test ends."""
    name = f"harewatch-test-f-{uuid.uuid4().hex[:8]}"
    mgmt.create_vhost(name, description="harewatch test (deleted after)")
    yield name
    mgmt.delete_vhost(name)


@pytest.fixture(scope="session")
def redis_db() -> Iterator[str]:
    """A Redis URL with a unique key prefix namespace; keys are removed after the session."""
    import redis
    base = BASE.redis_url
    r = redis.Redis.from_url(base)
    try:
        r.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Redis not reachable at {base}: {exc}; run scripts/services.sh")
    yield base


def make_settings(vhost: str, **kw: Any) -> Settings:
    return load_settings(amqp_url=_url_for_vhost(BASE.amqp_url, vhost),
                         config=kw.pop("config", str(ROOT / "routing" / "routes.yaml")), **kw)


@pytest.fixture
def settings(vhost: str) -> Settings:
    return make_settings(vhost)


@pytest.fixture
def pika_channel(settings: Settings) -> Iterator[Any]:
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    yield ch
    if conn.is_open:
        conn.close()


def get_all(channel: Any, queue: str, expect: int | None = None, timeout: float = 5.0) -> list[tuple[Any, Any, bytes]]:
    """Every message now in ``queue`` (consumed and acked), waiting up to ``timeout`` for ``expect`` of them.

    Uses a consumer rather than basic.get, which quorum queues with a single
    active consumer refuse.
    """
    import time
    out: list[tuple[Any, Any, bytes]] = []
    deadline = time.monotonic() + timeout
    for method, props, body in channel.consume(queue, auto_ack=False, inactivity_timeout=0.3):
        if method is None:
            if expect is None or len(out) >= expect or time.monotonic() > deadline:
                break
            continue
        channel.basic_ack(method.delivery_tag)
        out.append((method, props, body))
    channel.cancel()
    return out


@pytest.fixture
def declared(settings: Settings) -> Settings:
    """The default config's topology declared in this test's vhost."""
    from harewatch.routing.config import load_config
    from harewatch.broker.declare import declare
    from harewatch.broker.topology import topology_from_config

    declare(topology_from_config(load_config(settings.config), settings.prefix), settings)
    return settings


def run_cli(settings: Settings, *args: str, input: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> "subprocess.CompletedProcess[str]":
    """Run ``harewatch ARGS`` in a subprocess against ``settings``' broker and config."""
    import subprocess
    import sys
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
    full.update({"AMQP_URL": settings.amqp_url, "HAREWATCH_CONFIG": settings.config,
                 "REDIS_URL": settings.redis_url, "HAREWATCH_PREFIX": settings.prefix})
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "harewatch", *args], input=input, capture_output=True,
                          text=True, env=full, cwd=ROOT, timeout=timeout)


@pytest.fixture
def http_sink() -> Iterator[Any]:
    from tests.servers import start_http
    rec = start_http()
    yield rec
    rec.server.shutdown()


@pytest.fixture
def smtp_sink() -> Iterator[Any]:
    from tests.servers import SMTPSink
    s = SMTPSink()
    yield s
    s.stop()


class Worker:
    def __init__(self, settings: Settings, args: list[str], name: str) -> None:
        self.settings, self.args, self.name = settings, args, name
        self.proc: subprocess.Popen[str] | None = None
        self.log = ROOT / ".pytest_cache" / f"worker-{name}-{uuid.uuid4().hex[:6]}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
        env.update({"AMQP_URL": self.settings.amqp_url, "REDIS_URL": self.settings.redis_url,
                    "HAREWATCH_CONFIG": self.settings.config, "HAREWATCH_PREFIX": self.settings.prefix,
                    "HAREWATCH_MANAGEMENT_URL": self.settings.management_url, "PYTHONUNBUFFERED": "1"})
        return env

    def start(self, wait: float = 60.0) -> "Worker":
        self.log.parent.mkdir(exist_ok=True)
        fh = open(self.log, "a")
        argv = [sys.executable, "-m", "celery", "-A", "harewatch.workers", "worker", "-n", f"{self.name}@%h",
                "--without-mingle", "--without-gossip", "--loglevel", "INFO", *self.args]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=True, text=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if " ready." in self.log.read_text():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(settings: Settings, *args: str, name: str = "w") -> Worker:
        w = Worker(settings, list(args), name)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


@pytest.fixture
def wsettings(vhost: str) -> Iterator[Settings]:
    """Settings on a fresh vhost with a unique prefix (which also namespaces the Redis keys)."""
    from harewatch.routing.config import load_config
    from harewatch.broker.declare import declare
    from harewatch.broker.topology import topology_from_config
    from harewatch.workers.store import StateStore

    s = make_settings(vhost, prefix=f"t{uuid.uuid4().hex[:6]}.")
    declare(topology_from_config(load_config(s.config), s.prefix), s)
    yield s
    StateStore(s.redis_url, s.prefix).clear()


def queue_depth(settings: Settings, name: str) -> int:
    from harewatch.broker.management import Management
    q = Management(settings.management_url).queue(settings.vhost, settings.prefix + name)
    return int((q or {}).get("messages", 0) or 0)

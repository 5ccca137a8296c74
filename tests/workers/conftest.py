"""Fixtures for worker tests: a declared vhost with its own name prefix, running Celery workers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Callable, Iterator

import pika
import pytest

from harewatch.settings import Settings
from routing.config import load_config
from routing.declare import declare
from routing.topology import topology_from_config
from tests.conftest import ROOT, make_settings
from workers.store import StateStore


@pytest.fixture
def wsettings(vhost: str) -> Iterator[Settings]:
    """Settings on a fresh vhost with a unique prefix (which also namespaces the Redis keys)."""
    s = make_settings(vhost, prefix=f"t{uuid.uuid4().hex[:6]}.")
    declare(topology_from_config(load_config(s.config), s.prefix), s)
    yield s
    StateStore(s.redis_url, s.prefix).clear()


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
        argv = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-n", f"{self.name}@%h",
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
def watch(wsettings: Settings) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """A queue bound to the anomalies exchange; call it to collect the events seen so far."""
    import json
    conn = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, wsettings.prefix + "anomalies", "#")
    seen: list[dict[str, Any]] = []

    def collect(until: Callable[[list[dict[str, Any]]], bool] = lambda s: False, timeout: float = 30.0
                ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                if until(seen):
                    break
                conn.sleep(0.2)
                continue
            ev = json.loads(body)
            ev["_routing_key"] = method.routing_key
            seen.append(ev)
        return seen

    yield collect
    conn.close()


def queue_depth(settings: Settings, name: str) -> int:
    from routing.management import Management
    q = Management(settings.management_url).queue(settings.vhost, settings.prefix + name)
    return int((q or {}).get("messages", 0) or 0)

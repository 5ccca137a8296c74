"""Fixtures for `harewatch serve`: the real command in a subprocess on a free port, events in the router's
real Redis state, amtool (Debian's Alertmanager client) and a headless Chromium driven by Selenium."""
from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from harewatch.messages import AnomalyEvent
from harewatch.routing.dispatch import Router
from harewatch.routing.loader import load_full_config
from harewatch.settings import Settings
from harewatch.times import iso
from harewatch.workers.store import StateStore
from tests.conftest import ROOT, make_settings


class Served:
    """``harewatch serve`` running in a subprocess; ``url`` is where it said it listens."""

    def __init__(self, settings: Settings, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
        env.update({"AMQP_URL": settings.amqp_url, "HAREWATCH_CONFIG": settings.config,
                    "REDIS_URL": settings.redis_url, "HAREWATCH_PREFIX": settings.prefix,
                    "HAREWATCH_MANAGEMENT_URL": settings.management_url, "PYTHONUNBUFFERED": "1"})
        self.log = ROOT / ".pytest_cache" / f"serve-{uuid.uuid4().hex[:6]}.log"
        self.log.parent.mkdir(exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "harewatch", "serve", "--port", "0", *args], cwd=ROOT,
                                     env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"on (http://\S+/) \(", self.log.read_text())
            if m:
                self.url = m.group(1).rstrip("/")
                self.line = self.log.read_text().splitlines()[0]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"harewatch serve did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    made: list[Served] = []

    def start(settings: Settings, *args: str) -> Served:
        s = Served(settings, *args)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()


@pytest.fixture
def ssettings(redis_db: str) -> Iterator[Settings]:
    """Settings with a Redis prefix of their own and the shipped config (no broker needed)."""
    s = make_settings("unused", prefix=f"sv{uuid.uuid4().hex[:6]}.")
    yield s
    Router(load_full_config(s.config).routing, s.redis_url, s.prefix).clear()
    StateStore(s.redis_url, s.prefix).clear()


def anomaly(metric: str = "cpu_util", host: str = "web-01", team: str = "payments", typ: str = "spike",
            severity: str = "critical", value: float = 97.0, now: float | None = None) -> AnomalyEvent:
    """An anomaly event as a detection worker publishes it, with a chart window of 64 points."""
    now = time.time() if now is None else now
    ts = [now - (63 - k) * 60 for k in range(64)]
    exp = [40 + 10 * math.sin(k / 10) for k in range(64)]
    obs = [e + (0.4 if k % 3 else -0.4) for k, e in enumerate(exp)]
    obs[-1] = value
    return AnomalyEvent.from_dict({
        "metric": metric, "labels": {"host": host}, "team": team, "type": typ, "severity": severity, "ts": iso(now),
        "value": value, "expected": exp[-1], "lower": exp[-1] - 5, "upper": exp[-1] + 5, "score": 0.93,
        "model": {"method": "stl", "periods": [86400]},
        "window": {"ts": [iso(t) for t in ts], "observed": obs, "expected": exp}})


def firing(settings: Settings) -> Router:
    """Three alerts in the router's state: two on web-01 (a critical spike inhibits the warning one, by the
    shipped inhibit rule) and a level shift on web-03 for another team."""
    r = Router(load_full_config(settings.config).routing, settings.redis_url, settings.prefix)
    for ev in (anomaly(), anomaly(severity="warning"), anomaly("http_latency_ms", "web-03", "search", "level_shift",
                                                                "warning", 480.0)):
        r.receive(ev)
    return r


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver (Debian's chromium and chromium-driver)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromium-driver are not installed (scripts/test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.binary_location = chromium
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def screenshot_has_content(path: Path, box: tuple[int, int, int, int] | None = None, colors: int = 12) -> bool:
    """The screenshot (or a box of it) shows more than a blank area: many distinct colours."""
    from PIL import Image
    with Image.open(path) as im:
        part = im.convert("RGB").crop(box) if box else im.convert("RGB")
        return len(part.getcolors(1 << 24) or []) >= colors

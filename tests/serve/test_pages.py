"""harewatch's pages in a real headless Chromium: an alert from the demo with its chart, a silence made in
the page muting the alert in the router, a dead letter replayed from the page and delivered, and a
screenshot of each page checked for what it must show."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from harewatch.routing.loader import load_full_config
from tests.conftest import ROOT, make_settings
from tests.serve.conftest import firing, screenshot_has_content
from tests.test_demo import free_port

pytestmark = [pytest.mark.broker, pytest.mark.e2e]
SHOTS = ROOT / ".pytest_cache" / "screenshots"


def shoot(browser: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def wait_for(browser: Any, css: str, timeout: float = 15.0) -> Any:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(browser, timeout).until(ec.visibility_of_element_located(("css selector", css)))


def chart_box(browser: Any, el: Any) -> tuple[int, int, int, int]:
    """The element's box in screenshot pixels."""
    r = browser.execute_script("const b = arguments[0].getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom];", el)
    scale = browser.execute_script("return window.devicePixelRatio") or 1
    return tuple(int(v * scale) for v in r)  # type: ignore[return-value]


def test_alerts_page_shows_a_firing_alert_from_the_demo_with_its_chart(browser: Any, mgmt: Any, redis_db: str) -> None:
    from harewatch.settings import load_settings
    vhost, prefix, port = f"harewatch-test-pages-{uuid.uuid4().hex[:6]}", f"tpg{uuid.uuid4().hex[:4]}.", free_port()
    s = load_settings(prefix=prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
    env.update({"AMQP_URL": s.amqp_url, "REDIS_URL": s.redis_url, "HAREWATCH_PREFIX": prefix, "PYTHONUNBUFFERED": "1"})
    log = ROOT / ".pytest_cache" / f"demo-pages-{uuid.uuid4().hex[:6]}.log"
    demo = subprocess.Popen([sys.executable, "-m", "harewatch", "demo", "--duration", "240s", "--series", "14",
                             "--vhost", vhost, "--sink-port", str(free_port()), "--smtp-port", str(free_port()),
                             "--metrics-port", str(free_port()), "--serve-port", str(port)],
                            cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not alerts:
            assert demo.poll() is None, log.read_text()[-3000:]
            try:
                alerts = [a for a in requests.get(url + "/api/v2/alerts", timeout=5).json()
                          if a["annotations"].get("value")]
            except requests.RequestException:
                pass
            time.sleep(1)
        assert alerts, "no alert fired in the demo:\n" + log.read_text()[-3000:]
        assert f"{url}/" in log.read_text()          # the demo says where the pages are
        browser.get(url + "/alerts")
        card = wait_for(browser, "article.alert .chart canvas")
        article = browser.find_element("css selector", "article.alert")
        text = article.text
        assert re.search(r"value [-\d.e+]+", text) and "expected" in text and "score" in text and "since" in text
        chart = article.find_element("css selector", ".chart")
        assert int(chart.get_attribute("data-points")) > 10
        path = shoot(browser, "alerts")
        assert screenshot_has_content(path, chart_box(browser, card))     # the chart is drawn, not blank
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(90)
    out = log.read_text()
    assert "removed the demo's" in out, out[-2000:]


def test_a_silence_made_in_the_page_mutes_the_alert_in_the_router(browser: Any, ssettings: Any, serve: Any) -> None:
    router = firing(ssettings)
    srv = serve(ssettings)
    browser.get(srv.url + "/silences")
    field = wait_for(browser, "input[name=matchers]")
    field.send_keys('{alertname="http_latency_ms", host="web-03"}')
    preview = wait_for(browser, "#preview ul.would li")
    assert "http_latency_ms" in preview.text and "host=web-03" in preview.text     # what it would silence
    browser.find_element("css selector", "input[name=comment]").send_keys("failover drill")
    browser.find_element("css selector", "input[name=duration]").clear()
    browser.find_element("css selector", "input[name=duration]").send_keys("1h")
    browser.find_element("css selector", ".silence-form button[type=submit]").click()
    done = wait_for(browser, "p.done")
    assert "created" in done.text
    shoot(browser, "silences")
    [s] = router.silences()
    assert s.matchers == ['alertname="http_latency_ms"', 'host="web-03"'] and s.comment == "failover drill"
    assert 3590 <= s.ends_at - s.starts_at <= 3610
    # the router does not notify it: its group's flush sends nothing for it
    sent: list[Any] = []
    router.tick(lambda notes: sent.extend(notes), now=time.time() + 60)
    reported = {a.labels["alertname"] for _, n in sent for a in n.alerts}
    assert "http_latency_ms" not in reported and "cpu_util" in reported
    browser.get(srv.url + "/alerts")
    wait_for(browser, "article.alert.suppressed")
    [card] = [c for c in browser.find_elements("css selector", "article.alert.suppressed") if "http_latency_ms" in c.text]
    assert "silenced by" in card.text and s.id[:8] in card.text
    # expired from the page (after a confirmation), it is not active in the router any more
    browser.get(srv.url + "/silences")
    browser.find_element("css selector", f"tr#s-{s.id} button").click()
    browser.switch_to.alert.accept()
    wait_for(browser, "p.done")
    assert not router.silences()[0].active(time.time())


def test_a_dead_letter_replayed_from_the_page_is_delivered(browser: Any, vhost: str, tmp_path: Path, http_sink: Any,
                                                          worker_factory: Any, serve: Any) -> None:
    from harewatch.broker.declare import declare
    from harewatch.broker.topology import topology_from_config
    from harewatch.workers.store import StateStore
    from tests.workers.notify.test_notifier_worker import note_for, publish_notification
    cfg = tmp_path / "harewatch.yaml"
    cfg.write_text(f"channels: [webhook]\nroute: {{receiver: hook}}\nreceivers:\n  - name: hook\n"
                   f"    webhook_configs:\n      - url: {http_sink.url}/hook/T0/secret-token\n        max_attempts: 2\n")
    s = make_settings(vhost, prefix=f"dl{uuid.uuid4().hex[:6]}.", config=str(cfg))
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    try:
        http_sink.respond("/hook/T0/secret-token", (400, "bad payload"))       # permanent: straight to the DLQ
        worker_factory(s, "-Q", s.prefix + "notify.webhook", "--pool", "threads", "--concurrency", "2").start()
        note = note_for()
        publish_notification(s, note)
        srv = serve(s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            browser.get(srv.url + "/dead-letters")
            row = wait_for(browser, "table.list tbody")
            if re.search(r"notify\.webhook\.dlq\s+1\b", row.text):
                break
            time.sleep(0.5)
        assert re.search(r"notify\.webhook\.dlq\s+1\b", row.text), row.text
        shoot(browser, "dead-letters")
        browser.find_element("link text", "notify.webhook.dlq").click()
        item = wait_for(browser, "tr.dead-letter")
        assert "permanent" in item.text and "hook" in item.text and "400" in item.text
        assert "secret-token" not in browser.page_source                   # a webhook URL is a secret
        shoot(browser, "dead-letter-queue")
        item.find_element("css selector", "button").click()                 # Replay
        browser.switch_to.alert.accept()
        assert "replayed 1 message" in wait_for(browser, "p.done").text
        got = http_sink.wait("/hook/T0/secret-token", 2, timeout=30)        # the second try is delivered
        assert len(got) == 2 and got[1].json()["groupKey"]
        assert got[1].headers.get("idempotency-key") == note["id"]
        browser.get(srv.url + "/dead-letters")
        assert re.search(r"notify\.webhook\.dlq\s+0\b", wait_for(browser, "table.list tbody").text)
    finally:
        StateStore(s.redis_url, s.prefix).clear()


def test_each_page_shows_what_it_must(browser: Any, ssettings: Any, serve: Any) -> None:
    """Series, series detail, routing with a test, on a laptop and a phone; screenshots checked."""
    import math

    from harewatch.workers.engine import Engine, InMessage
    from harewatch.workers.store import StateStore
    firing(ssettings)
    eng = Engine(load_full_config(ssettings.config), StateStore(ssettings.redis_url, ssettings.prefix))
    t0 = (time.time() // 60) * 60 - 2 * 86400
    rows = [{"metric": "cpu_util", "value": round(40 + 15 * math.sin(2 * math.pi * i / 1440) + (i * 7919 % 13) / 5
                                                   + (45 if i == 2 * 1440 - 200 else 0), 2),
             "ts": t0 + i * 60, "labels": {"host": "web-01", "team": "payments"}} for i in range(2 * 1440)]
    for k in range(0, len(rows), 1000):
        eng.process([InMessage(json.dumps(r).encode(), "application/json") for r in rows[k:k + 1000]])
        eng.persist()
    srv = serve(ssettings, "--read-only")
    browser.get(srv.url + "/series?metric=cpu_util")
    link = wait_for(browser, "table.list tbody a")
    assert 'cpu_util{host="web-01",team="payments"}' in link.text
    assert "2880" in browser.find_element("css selector", "table.list tbody").text
    assert "cpu_util: 1 series" in browser.find_element("css selector", "ul.summary").text
    shoot(browser, "series")
    link.click()
    canvas = wait_for(browser, ".chart.tall canvas")
    model = browser.find_element("css selector", "dl.model").text
    assert re.search(r"method\n(stl|mstl|seasonal_naive)", model) and "86400" in model and "high" in model
    assert "spike" in browser.find_element("css selector", "table.anomalies").text
    path = shoot(browser, "series-detail")
    assert screenshot_has_content(path, chart_box(browser, canvas), colors=20)
    browser.get(srv.url + "/routing?labels=team%3Dpayments+severity%3Dcritical")
    result = wait_for(browser, ".result")
    assert [e.text for e in result.find_elements("css selector", "b.to")] == [
        "payments-pagerduty", "payments-slack", "payments-webhook"]
    assert len(browser.find_elements("css selector", "ul.tree li")) >= 5
    assert "http" not in browser.find_element("css selector", "ul.tree").text    # no receiver secrets
    shoot(browser, "routing")
    # read-only: no write forms; on a phone the alerts still read, one card per row
    browser.get(srv.url + "/silences")
    assert browser.find_elements("css selector", "form.silence-form") == [] and "read-only" in browser.page_source
    browser.set_window_size(390, 844)
    browser.get(srv.url + "/alerts")
    cards = [c for c in browser.find_elements("css selector", "article.alert") if c.is_displayed()]
    assert len(cards) >= 2
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert all(c.rect["width"] <= width for c in cards)          # nothing wider than the phone
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width + 1
    shoot(browser, "alerts-phone")

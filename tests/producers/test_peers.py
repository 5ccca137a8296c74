"""Agents nobody here wrote, configured with the README's own snippets: collectd (run for real) and Telegraf."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pika
import pytest

from harewatch.producers.formats import parse_body
from tests.conftest import ROOT, queue_depth
from harewatch.workers.store import StateStore

pytestmark = [pytest.mark.broker, pytest.mark.e2e]
README = (ROOT / "README.md").read_text()
COLLECTD_SECONDS = int(os.environ.get("HAREWATCH_TEST_COLLECTD_SECONDS", "60"))


def readme_block(after: str, fence: str = "```") -> str:
    """The first fenced block after the line containing ``after``."""
    rest = README.split(after, 1)[1]
    return rest.split(fence, 1)[1].split("\n", 1)[1].split("```", 1)[0]


def tap(settings: Any) -> tuple[Any, str]:
    """A queue that receives a copy of what goes to ``detect.default``.

    Bound to the alternate exchange, not to ``readings``: a binding there would
    make the messages routable, and the alternate exchange would never see them.
    """
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, settings.prefix + "readings.unrouted", "")
    return ch, q


def drain(ch: Any, q: str) -> list[tuple[Any, Any, bytes]]:
    out = []
    while True:
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            return out
        out.append((method, props, body))


def wait_accepted(settings: Any, want: int, timeout: float = 90.0) -> int:
    store = StateStore(settings.redis_url, settings.prefix)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and store.readings_total() < want:
        time.sleep(0.2)
    return store.readings_total()


def collectd_conf(snippet: str, settings: Any, base: Path) -> str:
    """The README's <Plugin amqp> block pointed at the test vhost, published once as Graphite and once as JSON."""
    vhost = settings.vhost
    block = snippet.replace('Host "rabbitmq"', f'Host "127.0.0.1"\n    VHost "{vhost}"\n    User "guest"\n'
                                               f'    Password "guest"')
    block = block.replace('Exchange "readings"', f'Exchange "{settings.prefix}readings"')
    publish = re.search(r"(<Publish .*?</Publish>)", block, re.S)
    assert publish, snippet
    as_json = publish.group(1).replace('Format "Graphite"', 'Format "JSON"').replace('<Publish "harewatch">',
                                                                                     '<Publish "harewatch-json">')
    block = block.replace(publish.group(1), publish.group(1) + "\n  " + as_json)
    return f"""Interval 1
FQDNLookup false
Hostname "peer-test"
BaseDir "{base}"
PIDFile "{base}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{base}/collectd.log"
</Plugin>
LoadPlugin load
LoadPlugin memory
LoadPlugin cpu
{block}
"""


@pytest.mark.skipif(not shutil.which("collectd"), reason="collectd is not installed (scripts/test installs it as root)")
def test_collectd_with_the_readme_snippet_delivers_every_reading(wsettings, worker_factory, tmp_path):
    worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    ch, q = tap(wsettings)
    conf = tmp_path / "collectd.conf"
    conf.write_text(collectd_conf(readme_block("**From collectd**"), wsettings, tmp_path))
    proc = subprocess.Popen(["collectd", "-f", "-C", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        proc.wait(COLLECTD_SECONDS)
    except subprocess.TimeoutExpired:
        proc.terminate()
    out = proc.communicate(timeout=30)[0].decode()
    log = (tmp_path / "collectd.log").read_text() if (tmp_path / "collectd.log").exists() else ""
    msgs = drain(ch, q)
    kinds = {p.content_type for _, p, _ in msgs}
    assert kinds == {"text/graphite", "application/json"}, (kinds, out[-2000:], log[-2000:])
    readings = [r for _, p, b in msgs for r in parse_body(b, p.content_type)]   # raises on what we would refuse
    assert len(readings) > 10 * COLLECTD_SECONDS
    # One value per series and time: collectd stalled on a busy host catches up by sending a time twice
    sent = len({(r.series, r.ts) for r in readings})
    assert wait_accepted(wsettings, sent) == sent, (queue_depth(wsettings, "detect.default"),
                                                    queue_depth(wsettings, "readings.invalid"))
    assert queue_depth(wsettings, "readings.invalid") == 0


def test_telegraf_snippet_is_what_the_broker_and_workers_accept(wsettings, worker_factory):
    """Telegraf is not packaged here: its README settings are checked against the topology, then a body
    published the way its amqp output publishes (influx, routing key = the host tag, no content type)."""
    conf = tomllib.loads(readme_block("**From Telegraf**"))["outputs"]["amqp"][0]
    assert conf["exchange"] == "readings" and conf["exchange_passive"] is True   # never declares our exchange
    assert conf["data_format"] == "influx" and conf["delivery_mode"] == "persistent"
    worker_factory(wsettings, "--detect", "all", "-Q", wsettings.prefix + "harewatch.tasks").start()
    conn = pika.BlockingConnection(pika.URLParameters(wsettings.amqp_url))
    ch = conn.channel()
    ch.exchange_declare(wsettings.prefix + conf["exchange"], conf["exchange_type"], passive=True)
    ch.confirm_delivery()
    now = int(time.time())
    body = "".join(f"cpu,host=web-1,cpu=cpu-total usage_idle={90 + i % 3},usage_user={5 + i % 2} "
                   f"{(now - 600 + 10 * i) * 10**9}\n" for i in range(60))
    ch.basic_publish(wsettings.prefix + conf["exchange"], "web-1", body.encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()
    assert wait_accepted(wsettings, 120) == 120

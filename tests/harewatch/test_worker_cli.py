"""``harewatch worker ...`` started exactly as README says, as a user would."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from harewatch.broker.declare import declare
from harewatch.routing.loader import load_full_config
from harewatch.broker.topology import topology_from_config
from tests.conftest import ROOT, make_settings
from tests.workers.notify.test_notifier_worker import note_for, publish_notification

pytestmark = [pytest.mark.broker, pytest.mark.e2e]
README = (ROOT / "README.md").read_text()


def readme_command(kind: str) -> list[str]:
    line = next(ln for ln in README.splitlines() if ln.startswith(f"harewatch worker {kind}"))
    return line.split("#", 1)[0].split()


def test_worker_notify_as_readme_says_delivers(vhost, tmp_path, http_sink):
    cfg = tmp_path / "harewatch.yaml"
    cfg.write_text(f"""
channels: [webhook, slack]
route: {{receiver: hook}}
receivers:
  - name: hook
    webhook_configs: [{{url: "{http_sink.url}/hook"}}]
""")
    s = make_settings(vhost, prefix=f"wc{uuid.uuid4().hex[:6]}.", config=str(cfg))
    declare(topology_from_config(load_full_config(s.config), s.prefix), s)
    argv = readme_command("notify")
    assert argv[:3] == ["harewatch", "worker", "notify"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
    env.update({"AMQP_URL": s.amqp_url, "HAREWATCH_CONFIG": s.config, "HAREWATCH_PREFIX": s.prefix})
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "harewatch", *argv[1:]], env=env, cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and " ready." not in log.read_text() and proc.poll() is None:
            time.sleep(0.2)
        assert " ready." in log.read_text(), log.read_text()[-3000:]
        note = note_for()
        publish_notification(s, note)
        reqs = http_sink.wait("/hook", 1, timeout=30)
        assert [r.headers["idempotency-key"] for r in reqs] == [note["id"]]
        assert re.search(r"\.> .*notify\.webhook", log.read_text())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)

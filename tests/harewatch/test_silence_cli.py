"""`harewatch silence add | list | expire` against real Redis."""
from __future__ import annotations

import json
import uuid

from tests.conftest import make_settings, run_cli


def test_silence_lifecycle(redis_db):
    s = make_settings("unused", prefix=f"sil{uuid.uuid4().hex[:6]}.")
    proc = run_cli(s, "silence", "add", "team=payments", 'alertname=~"cpu.*"', "--for", "2h", "--comment", "deploy")
    assert proc.returncode == 0, proc.stderr
    sid = proc.stdout.strip()
    listed = json.loads(run_cli(s, "silence", "list", "--json").stdout)
    assert [x["id"] for x in listed] == [sid] and listed[0]["matchers"] == ["team=payments", 'alertname=~"cpu.*"']
    assert "deploy" in run_cli(s, "silence", "list").stdout
    assert run_cli(s, "silence", "expire", sid[:8]).returncode == 0
    assert run_cli(s, "silence", "list").stdout.strip() == "no silences"
    assert sid[:8] in run_cli(s, "silence", "list", "--all").stdout
    bad = run_cli(s, "silence", "add", 'x=~"("', "--comment", "c")
    assert bad.returncode != 0 and "error parsing regexp" in bad.stderr
    import redis
    r = redis.Redis.from_url(redis_db)
    for k in r.scan_iter(f"{s.prefix}hw:*"):
        r.delete(k)

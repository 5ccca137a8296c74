"""docker-compose.yml is accepted by `docker compose config` (or docker-compose v1) where a client exists,
and the exported definitions give each component only what it needs."""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pika
import pytest
import yaml

from harewatch.routing.config import load_config
from harewatch.broker.topology import export_definitions, topology_from_config
from tests.conftest import ROOT, make_settings

COMPOSE = str(ROOT / "docker-compose.yml")


def compose_config() -> subprocess.CompletedProcess[str]:
    if shutil.which("docker"):
        if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
            return subprocess.run(["docker", "compose", "-f", COMPOSE, "config"], capture_output=True, text=True)
    if shutil.which("docker-compose"):
        return subprocess.run(["docker-compose", "-f", COMPOSE, "config"], capture_output=True, text=True)
    pytest.skip("neither `docker compose` nor docker-compose is installed")


def test_compose_file_is_accepted():
    proc = compose_config()
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert {"rabbitmq", "redis", "detect", "router", "notifier", "beat", "simulator", "mailpit", "sink", "serve"} <= set(services)
    assert "9093" in json.dumps(services["serve"]["ports"]) and services["serve"]["environment"]["HAREWATCH_SERVE_BASIC_AUTH"]
    assert "15672" in json.dumps(services["rabbitmq"]["ports"])
    assert all("healthcheck" in s for s in services.values())
    assert all(s.get("restart") == "unless-stopped" for s in services.values())
    assert "appendonly" in " ".join(services["redis"]["command"])
    assert "harewatch-producer" in services["simulator"]["environment"]["AMQP_URL"]


@pytest.mark.broker
def test_exported_users_have_least_privilege(vhost, mgmt):
    s = make_settings(vhost)
    t = topology_from_config(load_config(s.config))
    prefix = f"hwt{uuid.uuid4().hex[:6]}-"
    doc = export_definitions(t, vhost, {"producer": "p-secret", "notifier": "n-secret"}, user_prefix=prefix)
    mgmt.import_definitions(vhost, {k: v for k, v in doc.items() if k not in ("vhosts", "users", "permissions")})
    try:
        for u in doc["users"]:
            mgmt.request("PUT", f"/users/{mgmt.q(u['name'])}", json={
                "password_hash": u["password_hash"], "hashing_algorithm": u["hashing_algorithm"], "tags": ""}
            ).raise_for_status()
        for p in doc["permissions"]:
            mgmt.request("PUT", f"/permissions/{mgmt.q(vhost)}/{mgmt.q(p['user'])}",
                         json={k: p[k] for k in ("configure", "write", "read")}).raise_for_status()
        url = f"amqp://{prefix}producer:p-secret@127.0.0.1:5672/{vhost}"
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("readings", "cpu_util.h", b'{"metric":"cpu_util","value":1}')   # allowed
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.basic_publish("anomalies", "x.spike.warning", b"{}")
        assert exc.value.reply_code == 403
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.basic_get("readings.invalid")
        assert exc.value.reply_code == 403
        conn.close()
    finally:
        for u in doc["users"]:
            mgmt.request("DELETE", f"/users/{mgmt.q(u['name'])}")

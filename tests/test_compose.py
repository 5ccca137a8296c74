"""docker-compose.yml is accepted by `docker compose config` (or docker-compose v1) where a client exists."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

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
    assert {"rabbitmq", "redis"} <= set(services)
    assert "15672" in json.dumps(services["rabbitmq"]["ports"])
    assert all("healthcheck" in s for s in services.values() if "image" in s)

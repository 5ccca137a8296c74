"""The README's two commands, as a newcomer would run them (the run command with --duration)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid

import pytest

from tests.conftest import ROOT, make_settings
from harewatch.workers.store import StateStore

README = (ROOT / "README.md").read_text()


def two_commands() -> list[str]:
    block = README.split("## Two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    run, test = two_commands()
    assert (run, test) == ("scripts/run", "scripts/test")
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    for cmd in (run, test):
        assert os.access(ROOT / cmd, os.X_OK)


@pytest.mark.broker
@pytest.mark.e2e
def test_run_command_brings_the_pipeline_up(vhost):
    run, _ = two_commands()
    s = make_settings(vhost, prefix=f"rd{uuid.uuid4().hex[:4]}.")
    ports = []
    for _ in range(4):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "HAREWATCH_", "REDIS_"))}
    env.update({"AMQP_URL": s.amqp_url, "HAREWATCH_PREFIX": s.prefix})
    try:
        proc = subprocess.run([str(ROOT / run), "--duration", "45s", "--vhost", f"harewatch-test-run-{s.prefix}",
                               "--sink-port", str(ports[0]),
                               "--smtp-port", str(ports[1]), "--metrics-port", str(ports[2] + 100),
                               "--serve-port", str(ports[3])],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        StateStore(s.redis_url, s.prefix).clear()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "where to look" in proc.stdout
    assert re.search(r"delivered by (webhook|slack|pagerduty|email)", proc.stdout), proc.stdout[-3000:]

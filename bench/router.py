"""Router benchmark: alert intake and flush latency, beside a bare consumer and Alertmanager, same run.

    python -m bench.router [--events 20000] [--alerts 2000]

The workload: 20 teams, each with a route grouping by team and alertname to a
webhook receiver and a child route sending critical alerts to PagerDuty, and an
inhibition rule (a critical alert mutes the warnings of its rack); 20,000
anomaly events over 2,000 distinct alerts (10 rounds, shuffled), each event
carrying a 64-point chart window as the detector sends it.

1. bare: a pika consumer drains the 20,000 messages from a quorum queue (prefetch
   2000, one multiple ack per 500): the broker's pace on this machine, now.
2. harewatch: the same events preloaded on ``alerts.route``, drained by one
   ``celery -A harewatch.workers worker --route``, start-up excluded (timed from the
   first recorded batch to the last event recorded in Redis); once with group_wait
   1s (groups flush during the drain) and once with 10m (no flushing).
3. Alertmanager (when ``prometheus-alertmanager`` is installed): the same alerts
   POSTed to /api/v2/alerts, 100 per request, on one connection.
4. storm: with the router running and group_wait 2s, 2,000 new alerts across 200
   groups are published as fast as confirms allow (100 in flight); for each group,
   the time from the start of the publish of its first event to its first
   notification on ``notify.webhook`` (bar: group_wait + 1 s).

Prints one table. Uses its own vhost and Redis prefix, removed afterwards.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pika

from bench.common import bare_drain, preload, start_worker, stop_worker, wait_consuming
from harewatch.broker.connection import pika_parameters
from harewatch.broker.declare import declare
from harewatch.broker.management import Management
from harewatch.broker.publish import ConfirmedPublisher, OutMessage
from harewatch.broker.topology import Names, topology_from_config
from harewatch.routing.loader import load_full_config
from harewatch.routing.store import RouterStore
from harewatch.settings import Settings, load_settings
from harewatch.messages import fingerprint as series_fingerprint
from harewatch.times import iso

ROOT = Path(__file__).resolve().parent.parent
TEAMS, METRICS, HOSTS = 20, 5, 20
GROUP_INTERVAL = 5
BARE = "bare pika consumer (quorum queue, prefetch 2000)"
AM = "Alertmanager, HTTP, 100 alerts per POST, one connection"


# -- the workload ---------------------------------------------------------------------------
def routing_yaml(sink: str, group_wait: str, teams: int = TEAMS) -> str:
    """Alertmanager's routing sections, valid for both Alertmanager and harewatch."""
    lines = ["global: {resolve_timeout: 5m}", "route:", "  receiver: default", "  group_by: [team, alertname]",
             f"  group_wait: {group_wait}", f"  group_interval: {GROUP_INTERVAL}s", "  repeat_interval: 4h", "  routes:"]
    for t in range(teams):
        lines += [f"    - matchers: ['team=\"t{t:02d}\"']", f"      receiver: t{t:02d}-hook", "      routes:",
                  "        - matchers: ['severity=\"critical\"']", f"          receiver: t{t:02d}-pager",
                  "          group_by: [team]", "          continue: true",
                  f"        - receiver: t{t:02d}-hook"]
    lines += ["receivers:", "  - name: default", f"    webhook_configs: [{{url: '{sink}/default'}}]"]
    for t in range(teams):
        lines += [f"  - name: t{t:02d}-hook", f"    webhook_configs: [{{url: '{sink}/t{t:02d}'}}]",
                  f"  - name: t{t:02d}-pager",
                  f"    pagerduty_configs: [{{routing_key: 'k{t:02d}', url: '{sink}/pd'}}]"]
    lines += ["inhibit_rules:", "  - source_matchers: ['severity=\"critical\"']",
              "    target_matchers: ['severity=\"warning\"']", "    equal: [team, alertname, rack]"]
    return "\n".join(lines) + "\n"


def alert_labels(team: int, metric: int, host: int) -> dict[str, str]:
    """Hosts 0-3 of each (team, metric) are critical; hosts 4-7 share their rack, so they are inhibited."""
    critical = host < 4
    return {"team": f"t{team:02d}", "metric": f"m{metric}", "host": f"h{host:02d}",
            "rack": "r0" if host < 8 else f"r{host // 4}", "severity": "critical" if critical else "warning",
            "type": "level_shift" if critical else "spike"}


def route_key(lab: dict[str, str]) -> str:
    return f"{lab['team']}.{lab['type']}.{lab['severity']}"


def event_body(lab: dict[str, str], ts: float, seq: int) -> bytes:
    window_ts = [iso(ts - 60 * (63 - i)) for i in range(64)]
    obs = [round(50 + 10 * ((i * 7919 + seq) % 13) / 13, 3) for i in range(64)]
    ev = {"id": str(uuid.uuid4()), "series": series_fingerprint(lab["metric"], {"host": lab["host"], "rack": lab["rack"]}),
          "metric": lab["metric"],
          "labels": {"host": lab["host"], "rack": lab["rack"]}, "team": lab["team"], "type": lab["type"],
          "severity": lab["severity"], "ts": iso(ts), "value": 97.0 + seq % 3, "expected": 52.0, "lower": 44.0,
          "upper": 60.0, "score": 0.93, "confidence": "high",
          "model": {"method": "stl", "periods": [86400], "fitted_at": iso(ts - 3600)},
          "window": {"ts": window_ts, "observed": obs, "expected": [52.0] * 64}}
    return json.dumps(ev, separators=(",", ":")).encode()


def workload(n_events: int, teams: int, metrics: int, hosts: int, seed: int = 1) -> list[tuple[dict, bytes]]:
    rng = random.Random(seed)
    alerts = [alert_labels(t, m, h) for t in range(teams) for m in range(metrics) for h in range(hosts)]
    out: list[tuple[dict, bytes]] = []
    now = time.time()
    seq = 0
    while len(out) < n_events:
        order = alerts[:]
        rng.shuffle(order)
        for lab in order[:n_events - len(out)]:
            out.append((lab, event_body(lab, now - 600 + seq * 0.01, seq)))
            seq += 1
    return out


# -- the pieces ---------------------------------------------------------------------------------
class Sink(BaseHTTPRequestHandler):
    """Accepts whatever Alertmanager sends (its notifications are not what is measured)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def router_drain(settings: Settings, bodies: list[tuple[dict, bytes]], store: RouterStore,
                 notified: dict[str, Any] | None = None) -> float:
    """Events/s one router takes in from a preloaded alerts.route, start-up excluded. With ``notified``,
    the router then runs one group_interval more, and the last notification of each group is kept."""
    store.clear()
    names = Names(settings.prefix)
    conn = pika.BlockingConnection(pika_parameters(settings))
    ch = conn.channel()
    for chan in ("webhook", "pagerduty"):
        ch.queue_purge(names.notify_queue(chan))
    preload(settings, names.anomalies, [(route_key(lab), body) for lab, body in bodies])
    p = start_worker(settings, ["--route"], "bench-router.log")
    try:
        n = len(bodies)
        first = t_first = 0.0
        deadline = time.monotonic() + 300
        rate = None
        while time.monotonic() < deadline and rate is None:
            got = store.events_total()
            now = time.perf_counter()
            if got and not first:
                first, t_first = got, now
            if got >= n:
                rate = (n - first) / (now - t_first)
            if p.poll() is not None:
                raise SystemExit(f"the router exited with {p.returncode} (log: .pytest_cache/bench-router.log)")
            time.sleep(0.01)
        if rate is None:
            raise SystemExit(f"the router took in {store.events_total()} of {n} events in 300 s")
        if notified is not None:
            time.sleep(GROUP_INTERVAL + 2)        # the groups' last flush after the drain
            for chan in ("webhook", "pagerduty"):
                for method, _props, body in ch.consume(names.notify_queue(chan), auto_ack=True,
                                                       inactivity_timeout=0.5):
                    if method is None:
                        break
                    note = json.loads(body)[1]["notification"]
                    notified[note["group_key"] + "|" + note["receiver"]] = note
                ch.cancel()
        return rate
    finally:
        conn.close()
        stop_worker(p)


def storm(settings: Settings, store: RouterStore, group_wait: float) -> tuple[list[float], int]:
    """Per group, seconds from its first event's publish to its first notification; and groups seen."""
    store.clear()
    names = Names(settings.prefix)
    bodies = workload(2000, 20, 10, 10, seed=7)     # 200 (team, alertname) groups of 10
    conn = pika.BlockingConnection(pika_parameters(settings))
    ch = conn.channel()
    ch.queue_purge(names.notify_queue("webhook"))
    p = start_worker(settings, ["--route"], "bench-router-storm.log")
    try:
        wait_consuming(settings, "alerts.route", p)
        first_pub: dict[tuple[str, str], float] = {}
        pub = ConfirmedPublisher(settings)
        t0 = time.time()
        for i in range(0, len(bodies), 100):     # 100 in flight at a time; a group's clock starts with its chunk
            chunk = bodies[i:i + 100]
            started = time.time()
            pub.publish([OutMessage(names.anomalies, route_key(lab), body, {"content_type": "application/json"})
                         for lab, body in chunk])
            for lab, _ in chunk:
                first_pub.setdefault((lab["team"], lab["metric"]), started)
        pub.close()
        published = time.time() - t0
        latency: dict[tuple[str, str], float] = {}
        intake_done = None
        end = time.monotonic() + group_wait + 30
        for method, _props, body in ch.consume(names.notify_queue("webhook"), auto_ack=True, inactivity_timeout=0.1):
            if intake_done is None and store.events_total() >= len(bodies):
                intake_done = time.time() - t0
            if method is not None:
                note = json.loads(body)[1]["notification"]
                g = note["group_labels"]
                key = (g.get("team", ""), g.get("alertname", ""))
                if key in first_pub and key not in latency:
                    latency[key] = time.time() - first_pub[key]
            if len(latency) >= len(first_pub) or time.monotonic() > end:
                break
        ch.cancel()
        storm.published, storm.intake_done = published, intake_done  # type: ignore[attr-defined]
        return sorted(latency.values()), len(first_pub)
    finally:
        conn.close()
        stop_worker(p)


def alertmanager(bodies: list[tuple[dict, bytes]], sink: str) -> float | None:
    """Alerts/s Alertmanager takes in over HTTP, 100 per POST, one connection; None if not installed."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="hw-am-"))
    (tmp / "am.yml").write_text(routing_yaml(sink, "1s"))
    port = free_port()
    p = subprocess.Popen([binary, f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp}",
                          f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/-/ready")
                if c.getresponse().status == 200:
                    c.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        now = datetime.now(timezone.utc).isoformat()
        posts = []
        for i in range(0, len(bodies), 100):
            chunk = []
            for lab, body in bodies[i:i + 100]:
                ev = json.loads(body)
                labels = {**ev["labels"], "alertname": ev["metric"], "metric": ev["metric"], "team": ev["team"],
                          "type": ev["type"], "severity": ev["severity"]}
                chunk.append({"labels": labels, "startsAt": now,
                              "annotations": {"value": str(ev["value"]), "expected": str(ev["expected"])}})
            posts.append(json.dumps(chunk).encode())
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        t0 = time.perf_counter()
        for data in posts:
            c.request("POST", "/api/v2/alerts", body=data, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"Alertmanager answered {r.status}")
        el = time.perf_counter() - t0
        c.close()
        return len(bodies) / el
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--storm-only", action="store_true", help="only the storm (group_wait latency)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each drain (medians are printed)")
    args = ap.parse_args()
    base = load_settings()
    mgmt = Management(base.management_url)
    vhost = f"harewatch-bench-{uuid.uuid4().hex[:6]}"
    mgmt.create_vhost(vhost)
    tmp = Path(tempfile.mkdtemp(prefix="hw-bench-router-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{server.server_address[1]}"
    url = base.amqp_url.rsplit("/", 1)[0] + "/" + vhost
    prefix = f"bench{uuid.uuid4().hex[:4]}."
    bodies = workload(args.events, TEAMS, METRICS, HOSTS)
    notified: dict[str, Any] = {}
    try:
        settings = None
        drains = (("group_wait 1s (flushing during the drain)", "1s"), ("group_wait 10m (no flushing)", "10m"))
        runs: dict[str, list[float]] = {}
        for rep in range(args.repeat if not args.storm_only else 0):   # interleaved: the machine is shared
            for label, gw in drains:
                cfg = tmp / f"routes-{gw}.yaml"
                cfg.write_text("channels: [webhook, pagerduty]\n" + routing_yaml(sink, gw))
                settings = base.with_overrides(amqp_url=url, prefix=prefix, config=str(cfg))
                declare(topology_from_config(load_full_config(settings.config), settings.prefix), settings)
                store = RouterStore(settings.redis_url, settings.prefix, time.time)
                if gw == "1s":
                    runs.setdefault(BARE, []).append(bare_drain(settings, [b for _, b in bodies]))
                runs.setdefault(f"harewatch worker --route, {label}", []).append(
                    router_drain(settings, bodies, store, notified if gw == "1s" and rep == 0 else None))
            rate = alertmanager(bodies, sink)
            if rate is not None:
                runs.setdefault(AM, []).append(rate)
        rows = [(name, statistics.median(v), min(v), max(v)) for name, v in runs.items()]
        am = statistics.median(runs[AM]) if AM in runs else None
        cfg = tmp / "routes-storm.yaml"
        cfg.write_text("channels: [webhook, pagerduty]\n" + routing_yaml(sink, "2s"))
        settings = base.with_overrides(amqp_url=url, prefix=prefix, config=str(cfg))
        declare(topology_from_config(load_full_config(settings.config), settings.prefix), settings)
        store = RouterStore(settings.redis_url, settings.prefix, time.time)
        lat, groups = storm(settings, store, 2.0)
        store.clear()
        bare = statistics.median(runs[BARE]) if BARE in runs else float("nan")
        print(f"router benchmark: {args.events:,} anomaly events over {TEAMS * METRICS * HOSTS:,} alerts, "
              f"{TEAMS} teams, one inhibition rule; one router on this {os.cpu_count()}-core machine")
        print()
        print(f"{'median of ' + str(args.repeat) + ' runs (min - max)':58} {'events/s':>9} {'min - max':>15} "
              f"{'vs bare':>8} {'vs AM':>6}")
        for name, rate, lo, hi in rows:
            print(f"{name:58} {rate:>9,.0f} {f'{lo:,.0f} - {hi:,.0f}':>15} {rate / bare:>8.2f} "
                  f"{rate / am if am else float('nan'):>6.2f}")
        if not am:
            print("(prometheus-alertmanager is not installed: no Alertmanager row)")
        hooks = [n for n in notified.values() if n["channel"] == "webhook"]
        pages = [n for n in notified.values() if n["channel"] == "pagerduty"]
        print(f"notifications (group_wait 1s, last of each group): {len(hooks)} webhook groups, firing alerts "
              f"per payload {sorted({n['firing'] for n in hooks})} (20 per group, 4 inhibited); "
              f"{len(pages)} PagerDuty groups, {sorted({n['firing'] for n in pages})} each")
        print()
        if lat:
            print(f"storm: 2,000 new alerts in {groups} groups, group_wait 2s: first notification of "
                  f"{len(lat)}/{groups} groups after p50 {statistics.median(lat):.2f} s, "
                  f"max {max(lat):.2f} s (bar: group_wait + 1 s = 3.00 s); the storm was published (confirmed) "
                  f"in {storm.published:.2f} s and taken in by {storm.intake_done or float('nan'):.2f} s")  # type: ignore[attr-defined]
        else:
            print("storm: no notification arrived")
    finally:
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        mgmt.delete_vhost(vhost)


if __name__ == "__main__":
    main()

"""``harewatch demo``: the whole pipeline on this machine, with a simulator and local sinks."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from harewatch.cli import Context, pass_ctx
from harewatch.durations import parse_duration
from harewatch.broker.topology import Names
from harewatch.settings import Settings


DEMO_VHOST = "harewatch-demo"
DEMO_PREFIX = "demo."


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _metrics(port: int) -> dict[str, float]:
    """The harewatch_* counters one worker reports on its /metrics endpoint."""
    out: dict[str, float] = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("harewatch_") and "_total" in line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            base = name.split("{")[0]
            out[base] = out.get(base, 0.0) + float(value)
    return out


@click.command("demo")
@click.option("--duration", default=None,
              help="Stop after the pipeline has run this long, start-up not counted (default: until Ctrl-C).")
@click.option("--series", default=20, show_default=True, help="Simulated series.")
@click.option("--rate", default=60.0, show_default=True, help="Speed-up of the simulated clock until it is live.")
@click.option("--sink-port", default=8025, show_default=True, help="Local webhook/Slack/PagerDuty sink.")
@click.option("--smtp-port", default=1025, show_default=True, help="Local SMTP catcher (if the port is free).")
@click.option("--metrics-port", default=9101, show_default=True, help="First of three worker metrics ports.")
@click.option("--quiet-workers/--show-workers", default=True, help="Worker logs to files (default) or here.")
@click.option("--vhost", default=DEMO_VHOST, show_default=True,
              help="RabbitMQ vhost of the demo's own: created, and deleted on exit.")
@click.option("--keep", is_flag=True, help="Leave the demo's vhost and Redis keys in place on exit.")
@click.option("--serve-port", default=9093, show_default=True,
              help="Port of the pages and Alertmanager API (harewatch serve on 127.0.0.1; 0: none).")
@pass_ctx
def cli(ctx: Context, duration: str | None, series: int, rate: float, sink_port: int, smtp_port: int,
        metrics_port: int, quiet_workers: bool, vhost: str, keep: bool, serve_port: int) -> None:
    """Declare the topology, start detection, router and notifier workers, a simulator, and local sinks;
    show alerts as they are delivered. Ctrl-C stops everything.

    The demo runs in a RabbitMQ vhost and under a Redis key prefix of its own, and removes both when it
    stops (unless --keep), so it never touches your queues or keys."""
    from harewatch.broker.management import Management

    t0 = time.time()
    click.secho("harewatch demo", bold=True)
    s, made_vhost = _own_namespace(ctx.settings, vhost)
    _declare(s, ctx.config)
    status = StatusLine(sys.stdout.isatty())
    sinks = Sinks(sink_port, smtp_port, status)
    env = _environment(s, sinks.base, smtp_port)
    logdir = Path(tempfile.mkdtemp(prefix="harewatch-demo-"))
    procs = _start_workers(s, ctx.config, env, logdir, metrics_port, quiet_workers)
    sim = subprocess.Popen([sys.executable, "-m", "harewatch", "simulate", "--series", str(series), "--interval", "1m",
                            "--backfill", "2d", "--live-from", "3h", "--rate", str(rate), "--anomalies", "1%",
                            "--seed", str(int(t0) % 1000)], env=env, stdout=open(logdir / "simulate.log", "w"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    pages = _start_serve(env, logdir, serve_port) if serve_port else None
    click.echo(_where_to_look(s, sinks.base, [port for _, _, port in procs], keep, series, rate,
                              f"http://127.0.0.1:{serve_port}/" if pages else None))
    # the workers are up (or waited for long enough): the duration counts from here, so a slow start on a
    # busy machine cannot use it all up before a single reading is scored
    running = time.time()
    end = running + parse_duration(duration) if duration else float("inf")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    management = Management(s.management_url, timeout=5)
    failed = False
    watch = Progress(s, management, [port for _, _, port in procs])
    try:
        while not stopping and time.time() < end:
            time.sleep(0.5)
            if status.due():
                status.update(watch.line(sinks.delivered))
            for name, p, _ in procs:
                if p.poll() is not None:
                    status.print(f"  worker {name} exited ({p.returncode}); see {logdir / (name + '.log')}")
                    stopping = failed = True
    finally:
        status.done()
        counters = watch.counters()
        _stop([sim] + [p for _, p, _ in procs] + ([pages] if pages else []))
        sinks.close()
        click.echo("\n  metrics: " + ", ".join(f"{k.removeprefix('harewatch_')}={v:g}" for k, v in sorted(counters.items())))
        click.echo(f"  {len(sinks.delivered)} notifications delivered to the local sinks in {time.time() - running:.0f}s")
        if failed or keep:
            click.echo(f"  worker logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
        if keep:
            click.echo(f"  kept: vhost {s.vhost!r} and Redis keys {s.prefix}* (delete the vhost in the RabbitMQ UI)")
        else:
            _remove_namespace(s, made_vhost, management)
            click.echo(f"  removed the demo's {'vhost ' + repr(s.vhost) + ' and ' if made_vhost else 'queues and '}"
                       f"Redis keys {s.prefix}*")


def _declare(s: Settings, cfg: Any) -> None:
    """Declare the topology, refusing to start on drift (workers on mismatched queues would misbehave)."""
    from harewatch.broker.connection import redact_url
    from harewatch.broker.declare import declare
    from harewatch.broker.topology import topology_from_config

    outcomes = declare(topology_from_config(cfg, s.prefix), s)
    drifted = [o for o in outcomes if o.status == "drift"]
    if drifted:
        for o in drifted:
            for d in o.drifts:
                click.echo(f"  drift: {d}", err=True)
        raise click.ClickException("the broker has queues declared differently from this version's topology "
                                   "(see above); delete them after draining, or set HAREWATCH_PREFIX to start "
                                   "fresh, then run again")
    click.echo(f"  topology: {sum(o.status == 'created' for o in outcomes)} created, "
               f"{sum(o.status == 'kept' for o in outcomes)} kept on {redact_url(s.amqp_url)}")


class Sinks:
    """The local webhook/Slack/PagerDuty sink and SMTP catcher; one line per delivery."""

    def __init__(self, sink_port: int, smtp_port: int, status: "StatusLine") -> None:
        from harewatch.cli.sinks import HTTPSink, SMTPSink, summarize

        self.delivered: list[str] = []
        self.status = status
        if not _free(sink_port):
            raise click.ClickException(f"port {sink_port} is taken; pass --sink-port")
        self.http = HTTPSink(sink_port, on_receive=lambda path, body: self.show(path.strip("/"), summarize(path, body)))
        self.smtp = None
        if _free(smtp_port):
            try:
                self.smtp = SMTPSink(smtp_port, on_receive=lambda to, subj: self.show("email", f"mail to {to}: {subj}"))
            except Exception as exc:  # noqa: BLE001 - email is optional in the demo
                click.echo(f"  (no SMTP catcher: {exc})")
        self.base = f"http://127.0.0.1:{self.http.port}"

    def show(self, channel: str, text: str) -> None:
        self.delivered.append(text)
        self.status.print(f"  {time.strftime('%H:%M:%S')} delivered by {channel:9} {text}")

    def close(self) -> None:
        self.http.close()
        if self.smtp:
            self.smtp.close()


def _environment(s: Settings, base: str, smtp_port: int) -> dict[str, str]:
    """The workers' and simulator's environment: the demo's namespace, and channels pointed at the sinks."""
    env = dict(os.environ)
    env.update({"AMQP_URL": s.amqp_url, "REDIS_URL": s.redis_url, "HAREWATCH_CONFIG": s.config,
                "HAREWATCH_PREFIX": s.prefix, "HAREWATCH_MANAGEMENT_URL": s.management_url,
                "WEBHOOK_URL": f"{base}/webhook", "SLACK_PAYMENTS": f"{base}/slack",
                "PAGERDUTY_URL": f"{base}/pagerduty", "SMTP_HOST": f"127.0.0.1:{smtp_port}",
                "PYTHONUNBUFFERED": "1"})
    return env


def _start_workers(s: Settings, cfg: Any, env: dict[str, str], logdir: Path, metrics_port: int,
                   quiet: bool) -> list[tuple[str, subprocess.Popen[bytes], int]]:
    """Detection (with beat), router and notifier workers as Celery processes; waits until they answer."""
    from harewatch.broker.topology import topology_from_config

    py = [sys.executable, "-m", "celery", "-A", "harewatch.workers", "worker", "--without-mingle", "--without-gossip",
          "--loglevel", "INFO"]
    tasks_q = Names(s.prefix).tasks
    notify_qs = ",".join(q.name for q in topology_from_config(cfg, s.prefix).notify_queues.values())
    specs = [("detect", ["--detect", "all", "-Q", tasks_q, "-n", "detect@%h", "--concurrency", "1", "-B"]),
             ("route", ["--route", "-Q", tasks_q, "-n", "route@%h", "--concurrency", "1"]),
             ("notify", ["-Q", notify_qs, "-n", "notify@%h", "--pool", "threads", "--concurrency", "4"])]
    procs: list[tuple[str, subprocess.Popen[bytes], int]] = []
    for i, (name, args) in enumerate(specs):
        penv = dict(env, HAREWATCH_METRICS_PORT=str(metrics_port + i))
        out = open(logdir / f"{name}.log", "w") if quiet else None
        p = subprocess.Popen(py + args + ["-s", str(logdir / "beat-schedule")] * (name == "detect"), env=penv,
                             stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)
        procs.append((name, p, metrics_port + i))
    click.echo(f"  workers: detect, route, notify (logs in {logdir})")
    deadline = time.time() + 60
    while time.time() < deadline and not all(_ready(port) for _, _, port in procs):
        time.sleep(0.5)
    return procs


def _start_serve(env: dict[str, str], logdir: Path, port: int) -> subprocess.Popen[bytes] | None:
    """``harewatch serve`` on 127.0.0.1:``port`` over the demo's namespace; None (and why) if it cannot listen."""
    import socket
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            click.echo(f"  (port {port} is taken: no pages; try --serve-port)")
            return None
    return subprocess.Popen([sys.executable, "-m", "harewatch", "serve", "--port", str(port)], env=env,
                            stdout=open(logdir / "serve.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _where_to_look(s: Settings, base: str, ports: list[int], keep: bool, series: int, rate: float,
                   pages: str | None = None) -> str:
    mgmt = s.management_url.split("@")[-1]
    shown = (f"    pages            {pages}   (alerts with charts, series, silences, dead letters, routing;\n"
             f"                     also Alertmanager's API: amtool --alertmanager.url={pages.rstrip('/')} alert query)\n"
             if pages else "")
    return f"""
  where to look:
{shown}    RabbitMQ UI      http://{mgmt.removeprefix('http://')}/#/queues/{urllib.parse.quote(s.vhost, safe='')}   (guest/guest)
    namespace        vhost {s.vhost!r}, names and Redis keys prefixed {s.prefix!r}{'' if keep else ' (removed on exit)'}
    queues           {s.prefix}detect.*  readings awaiting detection
                     {s.prefix}alerts.route  anomalies awaiting the router
                     {s.prefix}notify.<channel>  notifications being sent; {s.prefix}notify.retry.*  retries waiting
    dead letters     {s.prefix}notify.<channel>.dlq  (harewatch dlq list / show / replay)
    sink             {base}/received  (what the webhook, Slack and PagerDuty channels sent)
    metrics          {', '.join(f'http://127.0.0.1:{port}/metrics' for port in ports)}
    series           HAREWATCH_PREFIX={s.prefix} harewatch series list   (and series show METRIC label=value ...)
  simulating {series} series: 2 days of history, then 3 hours at {rate:g}x, then live. Alerts appear below.
"""


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group, then SIGKILL what has not exited 20 s later."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def _own_namespace(settings: Settings, vhost: str) -> tuple[Settings, bool]:
    """Settings in a vhost and Redis prefix of the demo's own; says where, and what it could not do."""
    from harewatch.broker.management import Management

    url = urllib.parse.urlsplit(settings.amqp_url)
    try:
        Management(settings.management_url, timeout=10).create_vhost(
            vhost, user=urllib.parse.unquote(url.username or "guest"), description="harewatch demo (removed on exit)")
    except Exception as exc:  # noqa: BLE001 - no management API or no rights: a prefix of its own instead
        prefix = f"{DEMO_PREFIX.rstrip('.')}-{os.getpid()}."
        click.echo(f"  could not create vhost {vhost!r} ({exc}); running in {settings.vhost!r} under prefix "
                   f"{prefix!r} instead")
        return replace(settings, prefix=settings.prefix + prefix), False
    amqp = urllib.parse.urlunsplit(url._replace(path="/" + urllib.parse.quote(vhost, safe="")))
    return replace(settings, amqp_url=amqp, prefix=settings.prefix or DEMO_PREFIX), True


def _remove_namespace(settings: Settings, made_vhost: bool, management: Any) -> None:
    """Delete what the demo made: its vhost (or, sharing one, its queues and exchanges) and its Redis keys."""
    import redis

    if made_vhost:
        management.delete_vhost(settings.vhost)
    else:
        for q in management.queues(settings.vhost):
            if q["name"].startswith(settings.prefix):
                management.request("DELETE", f"/queues/{management.q(settings.vhost)}/{management.q(q['name'])}")
        for ex in management.exchanges(settings.vhost):
            if ex["name"].startswith(settings.prefix):
                management.request("DELETE", f"/exchanges/{management.q(settings.vhost)}/{management.q(ex['name'])}")
    r = redis.Redis.from_url(settings.redis_url)
    for key in r.scan_iter(f"{settings.prefix}*", count=1000):
        r.delete(key)


class StatusLine:
    """One line of progress that updates in place on a terminal (every second), or a plain line every
    ten seconds elsewhere; other output goes above it."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.every = 1.0 if tty else 10.0
        self.next = time.monotonic() + self.every
        self.text = ""
        self.lock = threading.Lock()

    def due(self) -> bool:
        return time.monotonic() >= self.next

    def update(self, text: str) -> None:
        self.next = time.monotonic() + self.every
        with self.lock:
            self.text = text
            if self.tty:
                sys.stdout.write("\r\x1b[2K  " + text)
                sys.stdout.flush()
            else:
                click.echo("  status: " + text)

    def print(self, line: str) -> None:
        with self.lock:
            if self.tty:
                sys.stdout.write("\r\x1b[2K" + line + "\n  " + self.text)
                sys.stdout.flush()
            else:
                click.echo(line)

    def done(self) -> None:
        if self.tty and self.text:
            sys.stdout.write("\n")


class Progress:
    """Readings per second, anomalies and notifications (worker metrics), queue depths and dead letters."""

    def __init__(self, settings: Settings, management: Any, ports: list[int]) -> None:
        self.s, self.management, self.ports = settings, management, ports
        self.last: tuple[float, float] | None = None

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for port in self.ports:
            for k, v in _metrics(port).items():
                out[k] = out.get(k, 0.0) + v
        return out

    def line(self, delivered: list[str]) -> str:
        c = self.counters()
        readings = c.get("harewatch_readings_consumed_total", 0.0)
        now = time.monotonic()
        rate = (readings - self.last[1]) / (now - self.last[0]) if self.last and now > self.last[0] else 0.0
        self.last = (now, readings)
        waiting = dead = 0
        try:
            for q in self.management.queues(self.s.vhost):
                if not q["name"].startswith(self.s.prefix):
                    continue
                n = int(q.get("messages") or 0)
                if q["name"].endswith(".dlq"):
                    dead += n
                elif not q["name"].startswith(self.s.prefix + "notify.retry."):
                    waiting += n
        except Exception:  # noqa: BLE001 - the status line is best effort
            pass
        return (f"{rate:7,.0f} readings/s | {c.get('harewatch_anomalies_total', 0):,.0f} anomalies | "
                f"{len(delivered)} notifications | {waiting:,} queued | {dead} dead-lettered")


def _ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3).status == 200
    except OSError:
        return False


@click.command("sink")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True)
@click.option("--smtp-port", default=0, help="Also catch mail on this port (0: no).")
def sink_cli(host: str, port: int, smtp_port: int) -> None:
    """A local endpoint that accepts what the webhook, Slack, PagerDuty, Teams and robot channels send,
    and prints one line per notification (GET / lists them as JSON)."""
    from harewatch.cli.sinks import HTTPSink, SMTPSink, summarize

    HTTPSink(port, host, on_receive=lambda p, b: click.echo(f"{time.strftime('%H:%M:%S')} {p}: {summarize(p, b)}"))
    if smtp_port:
        SMTPSink(smtp_port, on_receive=lambda to, subj: click.echo(f"{time.strftime('%H:%M:%S')} mail to {to}: {subj}"))
    click.echo(f"sink listening on http://{host}:{port}/" + (f" and smtp://{host}:{smtp_port}" if smtp_port else ""))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass

"""``harewatch worker detect|route|notify``: start a Celery worker of one kind."""
from __future__ import annotations

import click

from harewatch.broker.topology import Names
from harewatch.settings import Settings

from harewatch.cli import Context, pass_ctx


def _celery(argv: list[str], settings: Settings) -> None:
    from harewatch.workers import runtime
    from harewatch.workers.celery_app import app
    runtime.use(settings)
    app().worker_main(argv=["worker", *argv])


@click.group("worker")
def cli() -> None:
    """Start workers (each is `celery -A harewatch.workers worker ...` underneath)."""


@cli.command()
@click.option("--metrics", default="all", show_default=True,
              help="Metrics whose detect queues to consume (comma list; 'default' for detect.default).")
@click.option("--concurrency", default=1, show_default=True, help="Processes for refit tasks.")
@click.option("--beat/--no-beat", default=False, help="Also run the periodic checks: missing data, retirement, self-watch (one per system).")
@click.option("--loglevel", default="INFO")
@pass_ctx
def detect(ctx: Context, metrics: str, concurrency: int, beat: bool, loglevel: str) -> None:
    """Score readings from detect.<metric> queues and publish anomalies."""
    from harewatch.workers.detect import select_queues
    select_queues(ctx.config, ctx.settings.prefix, metrics)  # fail early, naming unknown metrics
    argv = ["--detect", metrics, "-Q", Names(ctx.settings.prefix).tasks, "-n", "detect@%h",
            "--concurrency", str(concurrency), "--loglevel", loglevel, "--without-mingle", "--without-gossip"]
    if beat:
        argv.append("-B")
    _celery(argv, ctx.settings)


@cli.command()
@click.option("--concurrency", default=1, show_default=True)
@click.option("--beat/--no-beat", default=False, help="Also run the periodic checks: missing data, retirement, self-watch (one per system).")
@click.option("--loglevel", default="INFO")
@pass_ctx
def route(ctx: Context, concurrency: int, beat: bool, loglevel: str) -> None:
    """Group, deduplicate, silence and inhibit anomalies from alerts.route; publish notifications."""
    argv = ["--route", "-Q", Names(ctx.settings.prefix).tasks, "-n", "route@%h", "--concurrency",
            str(concurrency), "--loglevel", loglevel, "--without-mingle", "--without-gossip"]
    if beat:
        argv.append("-B")
    _celery(argv, ctx.settings)


@cli.command()
@click.option("--channels", default="all", show_default=True, help="Channels whose notify queues to consume.")
@click.option("--concurrency", default=4, show_default=True, help="Notifications sent at once.")
@click.option("--pool", default="threads", show_default=True, help="Celery pool (threads suit network-bound sends).")
@click.option("--loglevel", default="INFO")
@pass_ctx
def notify(ctx: Context, channels: str, concurrency: int, pool: str, loglevel: str) -> None:
    """Send notifications from notify.<channel> queues (retries held by the broker, DLQ when they fail)."""
    from harewatch.broker.topology import topology_from_config
    names = Names(ctx.settings.prefix)
    have = sorted(topology_from_config(ctx.config, ctx.settings.prefix).notify_queues)
    wanted = have if channels == "all" else [c.strip() for c in channels.split(",") if c.strip()]
    unknown = set(wanted) - set(have)
    if unknown:
        raise click.BadParameter(f"no notify queue for {sorted(unknown)}; configured channels: {have}")
    from harewatch.workers.notify.render import check_templates
    check_templates(tuple(d for d in (ctx.settings.templates_dir,) if d))   # a broken template fails here
    argv = ["-Q", ",".join(names.notify_queue(c) for c in wanted), "-n", f"notify-{'-'.join(wanted)}@%h",
            "--concurrency", str(concurrency), "--pool", pool, "--loglevel", loglevel,
            "--without-mingle", "--without-gossip"]
    _celery(argv, ctx.settings)

"""``harewatch worker detect|route|notify``: start a Celery worker of one kind."""
from __future__ import annotations

import os

import click

from harewatch.cli import Context, pass_ctx


def _celery(argv: list[str], settings) -> None:  # noqa: ANN001
    os.environ.setdefault("AMQP_URL", settings.amqp_url)
    os.environ.setdefault("REDIS_URL", settings.redis_url)
    os.environ.setdefault("HAREWATCH_CONFIG", settings.config)
    os.environ.setdefault("HAREWATCH_PREFIX", settings.prefix)
    from workers import app
    app.worker_main(argv=["worker", *argv])


@click.group("worker")
def cli() -> None:
    """Start workers (each is `celery -A workers worker ...` underneath)."""


@cli.command()
@click.option("--metrics", default="all", show_default=True,
              help="Metrics whose detect queues to consume (comma list; 'default' for detect.default).")
@click.option("--concurrency", default=1, show_default=True, help="Processes for refit tasks.")
@click.option("--beat/--no-beat", default=False, help="Also run the periodic missing-data check (one per system).")
@click.option("--loglevel", default="INFO")
@pass_ctx
def detect(ctx: Context, metrics: str, concurrency: int, beat: bool, loglevel: str) -> None:
    """Score readings from detect.<metric> queues and publish anomalies."""
    from workers.detect import select_queues
    select_queues(ctx.config, ctx.settings.prefix, metrics)  # fail early, naming unknown metrics
    argv = ["--detect", metrics, "-Q", ctx.settings.prefix + "harewatch.tasks", "-n", "detect@%h",
            "--concurrency", str(concurrency), "--loglevel", loglevel, "--without-mingle", "--without-gossip"]
    if beat:
        argv.append("-B")
    _celery(argv, ctx.settings)

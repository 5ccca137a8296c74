"""``harewatch dlq list | show | replay | purge``."""
from __future__ import annotations

import json

import click

from harewatch.cli import Context, pass_ctx
from harewatch.durations import parse_duration


def _dlq(ctx: Context):  # noqa: ANN202
    from harewatch.broker.dlq import DLQ
    return DLQ(ctx.settings)


def _queue(ctx: Context, name: str) -> str:
    from harewatch.broker.topology import topology_from_config
    t = topology_from_config(ctx.config, ctx.settings.prefix)
    full = name if name in t.dlqs else ctx.settings.prefix + name
    if full not in t.dlqs:
        short = [q.removeprefix(ctx.settings.prefix) for q in t.dlqs]
        raise click.BadParameter(f"{name!r} is not a dead-letter queue; these are: {', '.join(short)}")
    return full


def _where(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            raise click.BadParameter(f"--where takes key=value (glob), got {it!r}")
        out[k] = v
    return out


@click.group("dlq")
def cli() -> None:
    """Inspect and replay dead-lettered notifications (and anomalies the router could not take)."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Messages and the oldest message's age per DLQ."""
    from harewatch.broker.topology import topology_from_config
    rows = _dlq(ctx).counts(topology_from_config(ctx.config, ctx.settings.prefix))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    w = max(len(r["queue"]) for r in rows)
    click.echo(f"{'queue':{w}}  messages  oldest")
    for r in rows:
        age = "-" if r["oldest_age_s"] is None else f"{r['oldest_age_s']}s"
        click.echo(f"{r['queue']:{w}}  {r['messages'] if r['messages'] is not None else '?':>8}  {age}")


@cli.command()
@click.argument("queue")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, queue: str, limit: int, as_json: bool) -> None:
    """Reason, attempts, last error, first seen, receiver and summary of the first messages."""
    items = [d.summary() for d in _dlq(ctx).show(_queue(ctx, queue), limit)]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("empty")
    for s in items:
        click.echo(f"{s['id']}  {s['reason']} after {s['attempts']} attempt(s), first seen {s['first_seen']}\n"
                   f"    receiver {s['receiver']}, key {s['routing_key']}: {s['summary']}\n"
                   f"    last error: {s['last_error']}")


@cli.command()
@click.argument("queue")
@click.option("--limit", type=int, default=None, help="Replay at most this many.")
@click.option("--older-than", default=None, help="Only messages first seen longer ago than this (e.g. 10m).")
@click.option("--where", multiple=True, help="key=value (glob) on reason, receiver, status, channel, id or a label.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed, change nothing.")
@pass_ctx
def replay(ctx: Context, queue: str, limit: int | None, older_than: str | None, where: tuple[str, ...],
           dry_run: bool) -> None:
    """Send messages back where they came from with their original routing key and attempts reset."""
    age = parse_duration(older_than) if older_than else None
    n = _dlq(ctx).replay(_queue(ctx, queue), limit, _where(where), age, dry_run,
                         on_each=lambda d: click.echo(f"{'would replay' if dry_run else 'replayed'} "
                                                      f"{d.fields()['id'] or 'message'} -> {d.original_routing_key}"))
    click.echo(f"{n} message(s) {'would be ' if dry_run else ''}replayed")


@cli.command()
@click.argument("queue")
@click.option("--where", multiple=True)
@click.option("--older-than", default=None)
@click.option("--yes", is_flag=True, help="Really delete.")
@pass_ctx
def purge(ctx: Context, queue: str, where: tuple[str, ...], older_than: str | None, yes: bool) -> None:
    """Delete messages from a DLQ (all, or those matching --where / --older-than)."""
    if not yes:
        raise click.UsageError("purge deletes messages for good; add --yes")
    age = parse_duration(older_than) if older_than else None
    click.echo(f"{_dlq(ctx).purge(_queue(ctx, queue), _where(where), age)} message(s) purged")

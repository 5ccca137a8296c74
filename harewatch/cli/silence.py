"""``harewatch silence add | list | expire``: mute alerts by label matchers for a while."""
from __future__ import annotations

import getpass
import json
import time

import click

from harewatch.cli import Context, pass_ctx
from harewatch.durations import parse_duration
from harewatch.times import iso


def _router(ctx: Context):  # noqa: ANN202
    from harewatch.routing.dispatch import Router
    return Router(ctx.config.routing, ctx.settings.redis_url, ctx.settings.prefix)


@click.group("silence")
def cli() -> None:
    """Silences: alerts matching every matcher are not notified while the silence is active."""


@cli.command("add")
@click.argument("matchers", nargs=-1, required=True)
@click.option("--for", "duration", default="1h", show_default=True, help="How long (e.g. 2h, 30m, 1d).")
@click.option("--comment", "-c", required=True, help="Why (shown in `silence list`).")
@click.option("--author", default=None, help="Who (default: your user name).")
@pass_ctx
def add(ctx: Context, matchers: tuple[str, ...], duration: str, comment: str, author: str | None) -> None:
    """Silence alerts matching MATCHERS (e.g. team=payments 'alertname=~"cpu.*"')."""
    from harewatch.routing.matchers import parse_matchers
    try:
        for m in matchers:
            parse_matchers(m)
        secs = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    s = _router(ctx).add_silence(list(matchers), secs, comment, author or getpass.getuser())
    click.echo(s.id)


@cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, show_all: bool, as_json: bool) -> None:
    """Active silences (with --all, expired ones too)."""
    now = time.time()
    items = [s for s in _router(ctx).silences() if show_all or s.active(now) or s.starts_at > now]
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in items], indent=2))
        return
    if not items:
        click.echo("no silences")
        return
    for s in items:
        state = "active" if s.active(now) else ("pending" if s.starts_at > now else "expired")
        click.echo(f"{s.id[:8]}  {state:7}  until {iso(s.ends_at)}  {' '.join(s.matchers)}  "
                   f"by {s.created_by}: {s.comment}")


@cli.command("expire")
@click.argument("silence_id")
@pass_ctx
def expire(ctx: Context, silence_id: str) -> None:
    """End a silence now (an unambiguous id prefix will do)."""
    if not _router(ctx).expire_silence(silence_id):
        raise click.ClickException(f"no single silence with id {silence_id!r}")
    click.echo(f"expired {silence_id}")

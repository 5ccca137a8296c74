"""``harewatch routes test | show | check``: amtool's ``config routes`` for harewatch configs."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from harewatch.cli import Context, label_pairs, pass_ctx
from harewatch.errors import ConfigError


def _group_by(timings: dict[str, Any]) -> str:
    return "..." if timings["group_by"] == "..." else ",".join(timings["group_by"])


def _load(ctx: Context, path: str | None) -> Any:
    from harewatch.routing.loader import load_full_config
    return load_full_config(path or ctx.settings.config)


@click.group("routes")
def cli() -> None:
    """Test, draw and validate the routing tree (harewatch or bare Alertmanager config)."""


@cli.command("test")
@click.argument("labels", nargs=-1)
@click.option("--config", "path", type=click.Path(dir_okay=False), default=None,
              help="harewatch config or Alertmanager config file (default: the configured file).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of receivers and timings.")
@click.option("--firing", type=click.Path(exists=True, dir_okay=False), default=None,
              help='JSON list of {"labels": {...}, "status": "firing"|"resolved"}: apply inhibit_rules first.')
@pass_ctx
def test(ctx: Context, labels: tuple[str, ...], path: str | None, as_json: bool, firing: str | None) -> None:
    """Which receivers an alert with LABELS (name=value ...) reaches, in routing order, with timings."""
    cfg = _load(ctx, path)
    lab = label_pairs(labels)
    rc = cfg.routing
    if firing:
        with open(firing, encoding="utf-8") as fh:
            alerts = json.load(fh)
        active = [dict(a.get("labels") or {}) for a in alerts if a.get("status", "firing") == "firing"]
        by = rc.inhibited_by(lab, active)
        if by is not None:
            if as_json:
                click.echo(json.dumps({"inhibited": True, "by": by}))
            else:
                click.echo("inhibited by " + ",".join(f'{k}="{v}"' for k, v in sorted(by.items())))
            return
    routes = rc.match(lab)
    if as_json:
        click.echo(json.dumps([r.timings() for r in routes]))
        return
    for r in routes:
        t = r.timings()
        click.echo(f"{t['receiver']}  group_by=[{_group_by(t)}] group_wait={t['group_wait']} "
                   f"group_interval={t['group_interval']} repeat_interval={t['repeat_interval']}")


@cli.command("show")
@click.option("--config", "path", type=click.Path(dir_okay=False), default=None)
@pass_ctx
def show(ctx: Context, path: str | None) -> None:
    """Draw the routing tree with matchers, receivers and timings."""
    cfg = _load(ctx, path)
    for r, depth in cfg.routing.root.walk():
        ms = ", ".join(str(m) for m in r.matchers) or ("(root: every alert)" if depth == 0 else "(every alert)")
        cont = "  continue" if r.continue_ else ""
        t = r.timings()
        gb = _group_by(t)
        ints = ""
        if r.mute_time_intervals:
            ints += f" mute={','.join(r.mute_time_intervals)}"
        if r.active_time_intervals:
            ints += f" active={','.join(r.active_time_intervals)}"
        rec = cfg.routing.receivers[r.receiver]
        chans = ",".join(i.channel for i in rec.integrations) or "no integrations"
        click.echo(f"{'  ' * depth}{'└─ ' if depth else ''}{{{ms}}} -> {r.receiver} ({chans}){cont}  "
                   f"[group_by={gb} wait={t['group_wait']} interval={t['group_interval']} "
                   f"repeat={t['repeat_interval']}{ints}]")
    for i, rule in enumerate(cfg.routing.inhibit_rules):
        click.echo(f"inhibit[{i}]: {{{', '.join(map(str, rule.source))}}} mutes "
                   f"{{{', '.join(map(str, rule.target))}}} when equal {list(rule.equal)}")


@cli.command("check")
@click.option("--config", "path", type=click.Path(dir_okay=False), default=None)
@pass_ctx
def check(ctx: Context, path: str | None) -> None:
    """Validate the config; exit 0 when it loads, 1 with the error when it does not."""
    try:
        cfg = _load(ctx, path)
        from harewatch.workers.notify.render import check_templates
        dirs = {ctx.settings.templates_dir} | {str(i.settings["templates_dir"]) for r in cfg.routing.receivers.values()
                                               for i in r.integrations if i.settings.get("templates_dir")}
        n_templates = check_templates(tuple(sorted(d for d in dirs if d)))
    except ConfigError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    rc = cfg.routing
    for w in rc.warnings:
        click.echo(f"warning: {w}", err=True)
    n_routes = sum(1 for _ in rc.root.walk())
    click.echo(f"ok: {cfg.path}: {n_routes} routes, {len(rc.receivers)} receivers, "
               f"{len(rc.inhibit_rules)} inhibit rules, channels: {', '.join(sorted(rc.channels())) or 'none'}, "
               f"{n_templates} templates")

"""``harewatch series list | show | forget``: what harewatch knows about each series it watches."""
from __future__ import annotations

import json
from typing import Any

import click

from harewatch.cli import Context, label_pairs, pass_ctx
from harewatch.durations import format_duration
from harewatch.times import iso


def _view(ctx: Context) -> Any:
    from harewatch.serve.view import View
    return View(ctx.config, ctx.settings)


def _find(view: Any, metric: str, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The one series of ``metric`` with exactly these labels, else the one whose labels include them
    (``host=web-01`` is enough when only one series has it); a clear error otherwise."""
    from harewatch.messages import series_name
    hits = view.find_series(metric, labels)
    if len(hits) == 1:
        return hits[0]
    if hits:
        names = "\n  ".join(series_name(metric, lab) for _, lab in hits[:10])
        more = f"\n  ... and {len(hits) - 10} more" if len(hits) > 10 else ""
        raise click.ClickException(f"{len(hits)} series of {metric} have these labels; name one:\n  {names}{more}")
    known = view.series.series_of(metric)
    hint = f" ({len(known)} series of {metric}; see `harewatch series list {metric}`)" if known else ""
    raise click.ClickException(f"no series {series_name(metric, labels)}{hint}")


def _size(n: float) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{int(n)} B"


@click.group("series")
def cli() -> None:
    """The series harewatch watches: list them, look at one, forget one."""


@cli.command("list")
@click.argument("metric", required=False)
@click.argument("matchers", nargs=-1)
@click.option("--limit", default=50, show_default=True, help="At most this many series per metric (newest first).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, metric: str | None, matchers: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Series of METRIC (all metrics if omitted) matching MATCHERS (e.g. 'host=~"web.*"'): last seen,
    points, periods, confidence, state size and open alert; then each metric's count against its
    max_series, series retired so far and readings rejected by the limit."""
    from harewatch.routing.matchers import parse_matchers
    try:
        ms = [m for text in matchers for m in parse_matchers(text)]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    rows, summary = _view(ctx).list_series(metric, ms, limit)
    if as_json:
        click.echo(json.dumps({"series": rows, "metrics": summary}, indent=2))
        return
    if not rows and not summary:
        click.echo("no series yet")
        return
    for r in rows:
        lab = ",".join(f'{k}="{v}"' for k, v in sorted(r["labels"].items()))
        periods = "/".join(format_duration(p) for p in r["periods"]) or "-"
        click.echo(f"{r['metric']}{{{lab}}}  last {r['last_seen'] or '-'}  {r['points']} points  periods {periods}  "
                   f"{r['confidence'] or '-'} confidence  {_size(r['state_bytes'])}"
                   + (f"  ALERT {', '.join(r['open_alerts'])}" if r["open_alerts"] else ""))
    for m in summary:
        cap = "no limit" if m["max_series"] is None else f"max_series {m['max_series']}"
        extra = f", {m['rejected_readings']} readings of new series rejected" if m["rejected_readings"] else ""
        click.echo(f"{m['metric']}: {m['series']} series ({cap}), {m['retired']} retired{extra}")


@cli.command("show")
@click.argument("metric")
@click.argument("labels", nargs=-1)
@click.option("--points", default=20, show_default=True, help="Recent points to print.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, metric: str, labels: tuple[str, ...], points: int, as_json: bool) -> None:
    """One series (METRIC label=value ...): its model, recent points with the expected band, last refit
    and recent anomalies."""
    from harewatch.messages import series_name
    view = _view(ctx)
    fp, lab = _find(view, metric, label_pairs(labels))
    d = view.series_detail(fp)
    if d is None:
        raise click.ClickException(f"no series {series_name(metric, lab)} (its state is gone)")
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    m = d["model"]
    periods = ", ".join(format_duration(p) for p in m["periods"]) or "none"
    followed = [p for p in m["periods"] if p not in m.get("decomposed", m["periods"])]
    if followed:
        periods += f" ({', '.join(format_duration(p) for p in followed)} followed by the level)"
    if m.get("timezone"):
        periods += f" on {m['timezone']} time"
    click.echo(f"{d['name']}  (series {fp})")
    every = format_duration(d["interval_seconds"]) if d["interval_seconds"] else "not known yet"
    click.echo(f"  points {d['points']}, last seen {d['last_seen']}, one every {every}")
    click.echo(f"  model {m['method']}, periods {periods}, last refit {m['fitted_at'] or 'never'}, "
               f"next refit {d['refit_at'] or '-'}, confidence {d['confidence']}")
    band = f"-{d['band_below']:.4g}/+{d['band_above']:.4g}" if d["band_above"] is not None else "not yet"
    click.echo(f"  alert score threshold {d['threshold']:.3f}, band {band}; missing after "
               f"{format_duration(d['missing_after_seconds'])}, retired after "
               f"{format_duration(d['retire_after_seconds'])} without readings; state {_size(d['state_bytes'])}")
    if d["model"].get("returned_after_seconds"):
        click.echo(f"  came back after {format_duration(d['model']['returned_after_seconds'])} retired: "
                   "a new series, learning again")
    if d["open_alerts"]:
        click.echo(f"  open alerts: {', '.join(d['open_alerts'])}")
    click.echo("  recent points (ts, value, expected, band):")
    for p in d["recent"][-points:]:
        rng = f"[{p['lower']:.4g}, {p['upper']:.4g}]" if p["lower"] is not None else ""
        click.echo(f"    {p['ts']}  {p['value']:.6g}  {p['expected']:.6g}  {rng}")
    click.echo("  recent anomalies:" if d["anomalies"] else "  no anomalies recorded")
    for a in d["anomalies"]:
        val = "-" if a["value"] is None else f"{a['value']:.6g}"
        exp = "-" if a["expected"] is None else f"{a['expected']:.6g}"
        click.echo(f"    {iso(a['ts'])}  {a['type']} {a['severity']}  value {val} expected {exp} score {a['score']}")


@cli.command("forget")
@click.argument("metric")
@click.argument("labels", nargs=-1)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def forget(ctx: Context, metric: str, labels: tuple[str, ...], yes: bool) -> None:
    """Drop one series (METRIC label=value ...): its state and model are deleted; if it reports again it
    starts as a new series."""
    from harewatch.messages import series_name
    view = _view(ctx)
    fp, lab = _find(view, metric, label_pairs(labels))
    name = series_name(metric, lab)
    if not yes:
        click.confirm(f"forget {name} and its model?", abort=True)
    if not view.series.forget(fp, metric):
        raise click.ClickException(f"no series {name}")
    click.echo(f"forgot {name}")

"""``harewatch simulate``: realistic labelled series, published live (after an optional backfill) or to a file."""
from __future__ import annotations

import csv
import json
import math
import re
import sys
import time

import click

from harewatch.cli import Context, pass_ctx
from harewatch.durations import parse_duration


def _rate(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not m:
        raise click.BadParameter("use a fraction of points, e.g. 0.5% or 0.005", param_hint="--anomalies")
    v = float(m.group(1))
    return v / 100 if m.group(2) else v


@click.command("simulate")
@click.option("--series", "n_series", default=20, show_default=True, help="How many series.")
@click.option("--interval", default="1m", show_default=True, help="Sampling interval of every series.")
@click.option("--duration", default=None, help="Stop after this long live (default: run until Ctrl-C).")
@click.option("--rate", default=None, type=float, help="Speed-up of live time (e.g. 60 = one simulated "
              "minute per second) until the simulated clock catches up with the real one; default real time.")
@click.option("--live-from", default=None, help="Start the live phase this long ago (e.g. 1d, with --rate "
              "to watch a day pass quickly); default now.")
@click.option("--anomalies", default="0.05%", show_default=True, help="Share of points that start an anomaly.")
@click.option("--backfill", default=None, help="Publish this much history first, as fast as possible (e.g. 14d).")
@click.option("--labels-out", type=click.Path(dir_okay=False), default=None,
              help="Write the injected anomalies (ground truth) here as JSON.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write series,timestamp,value CSV here instead of publishing (with --backfill as the span).")
@click.option("--seed", default=0, show_default=True)
@click.option("--until", "until", default=None, help="With --out: the data ends at this time (RFC 3339 or epoch "
              "seconds) rather than now, so a seed always gives the same file.")
@click.option("--batch", default=200, show_default=True, help="Readings per message.")
@pass_ctx
def cli(ctx: Context, n_series: int, interval: str, duration: str | None, rate: float | None, live_from: str | None,
        anomalies: str, backfill: str | None, labels_out: str | None, out: str | None, seed: int, until: str | None,
        batch: int) -> None:
    """Simulate seasonal metrics with injected anomalies (spike, dip, level_shift, variance_change,
    flatline, missing_data) and publish them like a fleet of agents would."""
    from harewatch.producers.simulator import Simulator

    step = parse_duration(interval)
    if step <= 0:
        raise click.BadParameter("must be positive", param_hint="--interval")
    if until is not None and not out:
        raise click.UsageError("--until goes with --out (live data is published as it happens)")
    if until is not None:
        from harewatch.errors import InvalidInput
        from harewatch.times import parse_ts
        try:
            now = parse_ts(until)
        except (ValueError, InvalidInput) as exc:
            raise click.BadParameter(str(exc), param_hint="--until") from None
    else:
        now = time.time()
    back = parse_duration(backfill) if backfill else 0.0
    lag = parse_duration(live_from) if live_from else 0.0
    start = math.floor((now - lag - back) / step) * step
    sim = Simulator(n_series=n_series, interval=step, seed=seed, anomaly_rate=_rate(anomalies),
                    warmup=min(3 * 86400.0, back / 2) if back else 0.0)
    truth_all = []
    if out:
        if not back:
            raise click.UsageError("--out needs --backfill to say how much data to write")
        n = int(back // step)
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["series", "timestamp", "value"])
            for spec in sim.specs:
                ts, xs, truth = sim.generate_series(spec, start, n)
                truth_all.extend(truth)
                for t, x in zip(ts.tolist(), xs.tolist()):
                    w.writerow([spec.name, int(t), x])
        _write_truth(labels_out, truth_all, sim)
        click.echo(f"wrote {n_series} series x {n} points to {out}")
        return

    from harewatch.producers.publisher import Publisher
    total = 0
    with Publisher(settings=ctx.settings, batch_size=batch, linger=0.2) as pub:
        if back:
            n = int(back // step)
            sim_hist = Simulator(n_series=n_series, interval=step, seed=seed, anomaly_rate=_rate(anomalies),
                                 warmup=min(3 * 86400.0, back / 2))
            truth_all.extend(sim_hist.truth(start, n))
            with click.progressbar(length=n, label=f"backfill {backfill}", file=sys.stderr) as bar:
                for _, readings in sim_hist.readings(start, n):
                    pub.publish(readings)
                    total += len(readings)
                    bar.update(1)
            pub.flush()
            click.echo(f"backfilled {total} readings", err=True)
            start += n * step
        end = time.time() + parse_duration(duration) if duration else math.inf
        speed = rate or 1.0
        sim.anomalies_from = start + (0 if back else 600.0)
        chunk = max(1, int(3600 // step))
        t_sim = start
        wall0, sim0 = time.monotonic(), start
        click.echo(f"live: {n_series} series every {interval}" + (f" at {speed:g}x" if speed != 1 else ""), err=True)
        try:
            while time.time() < end:
                truth_all.extend(sim.truth(t_sim, chunk))
                for t_event, readings in sim.readings(t_sim, chunk):
                    t_now = float(t_event)
                    due = wall0 + (t_now - sim0) / speed
                    # sped up until the simulated clock reaches the real one, never past it
                    wait = max(float(due) - time.monotonic(), t_now - time.time())
                    if wait > 0:
                        pub.flush()
                        time.sleep(min(wait, max(0.0, end - time.time())))
                    if time.time() >= end:
                        break
                    pub.publish(readings)
                    total += len(readings)
                t_sim += chunk * step
        except KeyboardInterrupt:
            pass
        finally:
            _write_truth(labels_out, truth_all, sim)
    click.echo(f"published {total} readings")


def _write_truth(path: str | None, truth: list, sim) -> None:  # noqa: ANN001
    if not path:
        return
    doc = {"interval": sim.interval, "series": sorted({s.name for s in sim.specs}),
           "anomalies": [t.to_dict() for t in truth]}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)

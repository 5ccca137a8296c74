"""The ``harewatch serve`` web app (Flask): Alertmanager's v2 API subset under ``/api/v2`` and the pages
(alerts, series, silences, dead letters, routing), server-rendered and refreshed in place by htmx; charts
drawn by uPlot. Both are vendored under ``static/``: no front-end build step."""
from __future__ import annotations

import json
import time
from importlib import metadata
from typing import Any, Callable

from flask import Flask, abort, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from harewatch.durations import format_duration, parse_duration
from harewatch.errors import InvalidInput
from harewatch.messages import series_name
from harewatch.routing.matchers import parse_matchers
from harewatch.serve import amapi
from harewatch.serve.guard import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, Guard, csrf_ok, new_csrf_token
from harewatch.serve.view import AlertView, View, receiver_filter
from harewatch.settings import Settings
from harewatch.times import iso

RANGES = {"6h": 6 * 3600, "1d": 86400, "1w": 7 * 86400, "all": None}


def _bool(name: str, default: bool = True) -> bool:
    v = request.args.get(name)
    if v is None:
        return default
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    abort(make_response(f"{name} is true or false, got {v!r}", 400))


def _version() -> str:
    try:
        return metadata.version("harewatch")
    except metadata.PackageNotFoundError:
        return "dev"


def alert_chart(v: AlertView) -> dict[str, Any]:
    """The anomaly's window for a chart: observed, expected, the band around it, the anomalous point."""
    from harewatch.times import parse_ts
    ev = v.alert.anomaly
    if ev is None or not ev.window.get("ts"):
        return {}
    ts = [parse_ts(t) for t in ev.window["ts"]]
    exp = list(ev.window.get("expected") or [])
    lo, mid, hi = ev.lower, ev.expected, ev.upper
    known = lo is not None and mid is not None and hi is not None
    # the band is wider on the side the series bursts to
    below = mid - lo if lo is not None and mid is not None else 0.0
    above = hi - mid if hi is not None and mid is not None else 0.0
    return {"ts": ts, "observed": list(ev.window.get("observed") or []), "expected": exp,
            "lower": [e - below for e in exp] if known else [],
            "upper": [e + above for e in exp] if known else [],
            "marks": [[ev.ts, ev.value]] if ev.type != "missing_data" and ev.value is not None else []}


def series_chart(d: dict[str, Any], span: float | None) -> dict[str, Any]:
    """A series' bucketed history (and, newer, its raw recent points) within ``span`` seconds of its last
    point, with the expected value and band, and its recorded anomalies as marks."""
    from harewatch.times import parse_ts
    h = d["history"]
    recent_ts = [parse_ts(p["ts"]) for p in d["recent"]]
    end = recent_ts[-1] if recent_ts else (h["ts"][-1] if h["ts"] else time.time())
    start = end - span if span else -float("inf")
    cut = recent_ts[0] if recent_ts else float("inf")
    rows = [(t, m, e) for t, m, e in zip(h["ts"], h["mean"], h["expected"]) if start <= t < cut]
    rows += [(t, p["value"], p["expected"]) for t, p in zip(recent_ts, d["recent"]) if t >= start]
    below, above = d["band_below"], d["band_above"]
    marks = [[a["ts"], a["value"]] for a in d["anomalies"]
             if a["ts"] >= start and a["type"] != "missing_data" and a["value"] is not None]
    return {"ts": [r[0] for r in rows], "observed": [r[1] for r in rows], "expected": [r[2] for r in rows],
            "lower": [None if r[2] is None or below is None else r[2] - below for r in rows],
            "upper": [None if r[2] is None or above is None else r[2] + above for r in rows], "marks": marks}


def create_app(config: Any, settings: Settings, guard: Guard, clock: Callable[[], float] = time.time) -> Flask:
    """The app for one config and settings; ``guard`` decides who may write."""
    app = Flask("harewatch.serve", template_folder="pages", static_folder="static")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    view = View(config, settings, clock)
    started = clock()
    version = _version()
    from harewatch.broker.topology import topology_from_config
    topology = topology_from_config(config, settings.prefix)

    # -- guard ----------------------------------------------------------------------------------
    def refuse_write(api: bool) -> Response | None:
        why = guard.write_refusal({"Authorization": request.headers.get("Authorization", "")})
        if why is None:
            if api:
                return None
            token = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
            if csrf_ok(request.cookies.get(CSRF_COOKIE), token, request.headers.get("Origin"), request.host_url):
                return None
            why = (403, "the form is stale or from another site (CSRF check failed): reload the page")
        status, text = why
        resp = make_response(text + "\n", status)
        resp.mimetype = "text/plain"
        if status == 401:
            resp.headers["WWW-Authenticate"] = guard.challenge
        return resp

    @app.before_request
    def _pages_behind_basic_auth() -> Response | None:
        # with basic auth a browser is asked once for every page, so its forms post with credentials
        if guard.basic is not None and not guard.authorized(request.headers.get("Authorization", "")) \
                and not request.path.startswith(("/static/", "/-/")) and request.method in ("GET", "HEAD"):
            resp = make_response("authentication required\n", 401)
            resp.headers["WWW-Authenticate"] = guard.challenge
            return resp
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/api/"):
            resp.headers.setdefault("X-Frame-Options", "DENY")
            resp.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
        return resp

    def page(template: str, **kw: Any) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        writable = guard.write_refusal({"Authorization": request.headers.get("Authorization", "")}) is None
        resp = make_response(render_template(template, csrf=token, writable=writable, read_only=guard.read_only,
                                             prefix=settings.prefix, version=version, **kw))
        if request.cookies.get(CSRF_COOKIE) != token:
            resp.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict")
        return resp

    def bad(text: str, status: int = 400) -> Response:
        resp = make_response(json.dumps(text) if request.path.startswith("/api/") else text, status)
        resp.mimetype = "application/json" if request.path.startswith("/api/") else "text/plain"
        return resp

    def series_url() -> str:
        return request.host_url.rstrip("/") + "/series/"

    def query_alerts() -> list[AlertView]:
        try:
            fs = amapi.filters(request.args.getlist("filter"))
            rx = receiver_filter(request.args.get("receiver"))
        except ValueError as exc:
            abort(bad(str(exc)))
        return view.alerts(fs, rx, active=_bool("active"), silenced=_bool("silenced"), inhibited=_bool("inhibited"))

    # -- Alertmanager API v2 ------------------------------------------------------------------------
    @app.get("/-/healthy")
    @app.get("/-/ready")
    def _health() -> Response:
        return make_response("OK\n", 200)

    @app.get("/api/v2/status")
    def _status() -> Response:
        return jsonify(amapi.status(config, version, started))

    @app.get("/api/v2/receivers")
    def _receivers() -> Response:
        return jsonify([{"name": n} for n in config.routing.receivers])

    @app.get("/api/v2/alerts")
    def _alerts() -> Response:
        return jsonify([amapi.gettable_alert(a, series_url()) for a in query_alerts()])

    @app.post("/api/v2/alerts")
    def _post_alerts() -> Response:
        return bad("harewatch takes anomalies from RabbitMQ (the anomalies exchange), not from this API", 400)

    @app.get("/api/v2/alerts/groups")
    def _groups() -> Response:
        return jsonify([amapi.alert_group(g, series_url()) for g in view.groups(query_alerts())])

    @app.get("/api/v2/silences")
    def _silences() -> Response:
        try:
            fs = amapi.filters(request.args.getlist("filter"))
        except ValueError as exc:
            return bad(str(exc))
        now = clock()
        return jsonify([amapi.gettable_silence(s, now) for s in view.silences() if amapi.silence_matches_filter(s, fs)])

    @app.post("/api/v2/silences")
    def _post_silence() -> Response:
        refused = refuse_write(api=True)
        if refused is not None:
            return refused
        if not request.is_json:     # as Alertmanager's; and a cross-site form cannot send JSON
            return bad("a silence is posted as application/json", 415)
        now = clock()
        try:
            sid, matchers, start, end, author, comment = amapi.postable_silence(request.get_json(silent=True), now)
        except InvalidInput as exc:
            return bad(str(exc))
        store = view.router.store.silences
        if sid is not None:
            old = store.get(sid)
            if old is None:
                return bad(f"silence {sid} not found", 404)
            if old.ends_at > now:
                store.expire(sid)       # replaced by the new one, as Alertmanager does when matchers change
        s = store.add(matchers, end - start, comment, author, start=start)
        return jsonify({"silenceID": s.id})

    @app.get("/api/v2/silence/<sid>")
    def _silence(sid: str) -> Response:
        s = view.router.store.silences.get(sid)
        if s is None:
            return bad("silence not found", 404)
        return jsonify(amapi.gettable_silence(s, clock()))

    @app.delete("/api/v2/silence/<sid>")
    def _delete_silence(sid: str) -> Response:
        refused = refuse_write(api=True)
        if refused is not None:
            return refused
        store = view.router.store.silences
        s = store.get(sid)
        if s is None:
            return bad("silence not found", 404)
        if s.ends_at <= clock():
            return bad(f"silence {sid} already expired", 500)
        store.expire(sid)
        return make_response("", 200)

    # -- pages ---------------------------------------------------------------------------------------
    @app.get("/")
    def _root() -> Response:
        return redirect(url_for("_alerts_page"))

    @app.get("/alerts")
    def _alerts_page() -> Response:
        text = request.args.get("filter", "").strip()
        error = None
        try:
            fs = parse_matchers(text) if text else []
        except ValueError as exc:
            fs, error = [], f"bad filter: {exc}"
        views = view.alerts(fs)
        by_team: dict[tuple[str, str], list[AlertView]] = {}
        for v in views:
            for rec in v.receivers or ("(none)",):
                by_team.setdefault((v.alert.labels.get("team", "unowned"), rec), []).append(v)
        groups = [{"team": t, "receiver": r, "alerts": [{"v": v, "chart": alert_chart(v)} for v in vs]}
                  for (t, r), vs in sorted(by_team.items())]
        template = "alerts_list.html" if request.args.get("partial") else "alerts.html"
        return page(template, groups=groups, filter=text, error=error, count=len(views), now=clock(),
                    series_name=series_name, since=lambda t: format_duration(max(0, round(clock() - t))))

    @app.get("/series")
    def _series_page() -> Response:
        metric = request.args.get("metric", "").strip() or None
        text = request.args.get("q", "").strip()
        error: str | None = None
        rows: list[dict[str, Any]] = []
        summary: list[dict[str, Any]] = []
        try:
            ms = parse_matchers(text) if text else []
            rows, summary = view.list_series(metric, ms, limit=100)
        except ValueError as exc:
            error = f"bad matchers: {exc}"
        return page("series.html", rows=rows, summary=summary, metric=metric or "", q=text, error=error,
                    metrics=view.series.metrics())

    @app.get("/series/<fp>")
    def _series_one(fp: str) -> Response:
        d = view.series_detail(fp)
        if d is None:
            abort(make_response(f"no series {fp} (retired, forgotten or never seen)", 404))
        span = request.args.get("range", "1d")
        if span not in RANGES:
            span = "1d"
        return page("series_one.html", d=d, chart=series_chart(d, RANGES[span]), span=span, ranges=list(RANGES),
                    fmt=format_duration)

    @app.get("/silences")
    def _silences_page() -> Response:
        now = clock()
        sils = sorted(view.silences(), key=lambda s: (amapi.silence_state(s, now) == "expired", -s.starts_at))
        return page("silences.html", silences=[(s, amapi.silence_state(s, now)) for s in sils], now=now,
                    error=request.args.get("error"), done=request.args.get("done"))

    @app.post("/silences/preview")
    def _silence_preview() -> Response:
        text = request.form.get("matchers", "").strip()
        try:
            ms = parse_matchers(text) if text else []
        except ValueError as exc:
            return page("silence_preview.html", alerts=[], error=str(exc), text=text)
        return page("silence_preview.html", alerts=view.would_silence(ms) if ms else [], error=None, text=text)

    @app.post("/silences")
    def _silence_create() -> Response:
        refused = refuse_write(api=False)
        if refused is not None:
            return refused
        text = request.form.get("matchers", "").strip()
        try:
            ms = parse_matchers(text)
            if not ms or all(m.matches({}) for m in ms):
                raise ValueError("at least one matcher must not match the empty string")
            duration = parse_duration(request.form.get("duration", "2h"))
            if duration <= 0:
                raise ValueError("the duration must be positive")
        except ValueError as exc:
            return redirect(url_for("_silences_page", error=str(exc)), 303)
        comment = request.form.get("comment", "").strip()
        if not comment:
            return redirect(url_for("_silences_page", error="say why (comment)"), 303)
        s = view.router.add_silence([str(m) for m in ms], duration, comment,
                                    request.form.get("author", "").strip() or "harewatch serve")
        return redirect(url_for("_silences_page", done=f"silence {s.id[:8]} created"), 303)

    @app.post("/silences/<sid>/expire")
    def _silence_expire(sid: str) -> Response:
        refused = refuse_write(api=False)
        if refused is not None:
            return refused
        if not view.router.expire_silence(sid):
            return redirect(url_for("_silences_page", error=f"no silence {sid}"), 303)
        return redirect(url_for("_silences_page", done=f"silence {sid[:8]} expired"), 303)

    @app.get("/dead-letters")
    def _dlq_page() -> Response:
        from harewatch.broker.dlq import DLQ
        error = None
        try:
            counts = DLQ(settings).counts(topology)
        except Exception as exc:  # noqa: BLE001 - the page says the broker is away instead of failing
            counts, error = [], f"the broker is not reachable: {exc}"
        for c in counts:
            c["name"] = c["queue"].removeprefix(settings.prefix)
            c["age"] = format_duration(c["oldest_age_s"]) if c.get("oldest_age_s") is not None else ""
        return page("dlq.html", counts=counts, error=error)

    def dlq_queue(name: str) -> str:
        q = settings.prefix + name
        if q not in topology.dlqs:
            abort(make_response(f"no dead-letter queue {name}", 404))
        return q

    @app.get("/dead-letters/<name>")
    def _dlq_queue_page(name: str) -> Response:
        from harewatch.broker.dlq import DLQ
        q = dlq_queue(name)
        items = [redact_summary(dl.summary()) for dl in DLQ(settings).show(q, limit=100)]
        return page("dlq_queue.html", name=name, items=items, error=request.args.get("error"),
                    done=request.args.get("done"))

    @app.post("/dead-letters/<name>/<action>")
    def _dlq_act(name: str, action: str) -> Response:
        from harewatch.broker.dlq import DLQ
        refused = refuse_write(api=False)
        if refused is not None:
            return refused
        q = dlq_queue(name)
        if action not in ("replay", "purge"):
            abort(404)
        if request.form.get("confirm") != "yes":
            return redirect(url_for("_dlq_queue_page", name=name, error=f"{action} needs confirmation"), 303)
        one = request.form.get("id", "").strip()
        where = {"id": one} if one else None
        dlq = DLQ(settings)
        n = dlq.replay(q, where=where) if action == "replay" else dlq.purge(q, where=where)
        verb = "replayed" if action == "replay" else "purged"
        return redirect(url_for("_dlq_queue_page", name=name, done=f"{verb} {n} message(s)"), 303)

    @app.get("/routing")
    def _routing_page() -> Response:
        rc = config.routing
        tree = []
        for r, depth in rc.root.walk():
            rec = rc.receivers.get(r.receiver)
            tree.append({"depth": depth, "matchers": [str(m) for m in r.matchers], "receiver": r.receiver,
                         "channels": [i.channel for i in rec.integrations] if rec else [],
                         "continue": r.continue_, "timings": r.timings(),
                         "mute": list(r.mute_time_intervals), "active": list(r.active_time_intervals)})
        text = request.args.get("labels", "").strip()
        result, error = None, None
        if text:
            try:
                labels = parse_labels(text)
                result = [{"receiver": r.receiver, "path": r.path, "group": r.group_labels(labels),
                           "timings": r.timings()} for r in rc.match(labels)]
            except ValueError as exc:
                error = str(exc)
        rules = [{"source": [str(m) for m in x.source], "target": [str(m) for m in x.target], "equal": list(x.equal)}
                 for x in rc.inhibit_rules]
        return page("routing.html", tree=tree, rules=rules, labels=text, result=result, error=error)

    app.jinja_env.globals.update(iso=iso, json=json)
    return app


def parse_labels(text: str) -> dict[str, str]:
    """``team=payments severity="critical"`` or ``{team="payments", severity="critical"}``: equality only."""
    t = text.strip()
    items = parse_matchers(t) if t.startswith("{") else [m for part in t.split() for m in parse_matchers(part)]
    if any(m.op != "=" for m in items):
        raise ValueError("labels are name=value pairs, not matchers")
    return {m.name: m.value for m in items}


def redact_summary(s: dict[str, Any]) -> dict[str, Any]:
    """A dead letter's summary with URLs in its error cut to scheme and host (a webhook URL is a secret)."""
    import re
    out = dict(s)
    out["last_error"] = re.sub(r"(https?://[^/\s]+)/\S*", r"\1/<redacted>", str(s.get("last_error") or ""))
    return out

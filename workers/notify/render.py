"""Rendering notifications with Jinja2 in a sandbox: what, where, how far off, since when, links, a chart.

Templates live in ``templates/<channel>/``; a user directory (setting
``HAREWATCH_TEMPLATES_DIR`` or a receiver's ``templates_dir``) overrides any
of them by path.  HTML templates are autoescaped.  A template that does not
compile or render raises :class:`~harewatch.errors.PermanentError` naming it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from harewatch.errors import ConfigError, PermanentError
from harewatch.messages import Notification, NotifiedAlert
from harewatch.workers.notify.chart import png, sparkline

BUILTIN = Path(__file__).resolve().parent.parent.parent / "templates"
_HIDDEN = {"alertname", "metric", "type", "severity", "team"}
_envs: dict[tuple[str, ...], SandboxedEnvironment] = {}


def environment(user_dirs: tuple[str, ...] = ()) -> SandboxedEnvironment:
    key = tuple(d for d in user_dirs if d)
    env = _envs.get(key)
    if env is None:
        loaders = [jinja2.FileSystemLoader(d) for d in key] + [jinja2.FileSystemLoader(str(BUILTIN))]
        env = SandboxedEnvironment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.ChainableUndefined,
                                   autoescape=jinja2.select_autoescape(["html", "html.j2", "htm"]),
                                   trim_blocks=False, lstrip_blocks=False)
        _envs[key] = env
    return env


def check_templates(user_dirs: tuple[str, ...] = ()) -> int:
    """Compile every template (built-in and user); ConfigError naming the first that fails."""
    env = environment(user_dirs)
    n = 0
    for name in env.list_templates(filter_func=lambda p: p.endswith(".j2")):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"template error: {exc.message}", exc.filename or name, exc.lineno) from None
        n += 1
    return n


def render(name: str, ctx: Mapping[str, Any], user_dirs: tuple[str, ...] = ()) -> str:
    try:
        return environment(user_dirs).get_template(name).render(**ctx)
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise PermanentError(f"template {where}{':' + str(line) if line else ''}: {exc}") from None


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


def alert_view(alert: NotifiedAlert, index: int, with_chart: bool) -> dict[str, Any]:
    """An alert with the human-readable fields templates show (templates get plain values)."""
    a = alert.to_dict()
    an = a["anomaly"]
    labels = a["labels"]
    value, exp, lo, hi, score = (an.get(k) for k in ("value", "expected", "lower", "upper", "score"))
    where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _HIDDEN) or "(all)"
    off = "n/a"
    if isinstance(value, (int, float)) and isinstance(exp, (int, float)):
        diff = value - exp
        pct = f", {diff / exp * 100:+.0f}%" if exp else ""
        off = f"{diff:+.4g}{pct}" + (f", score {score:.2f}" if isinstance(score, (int, float)) else "")
    model = an.get("model") or {}
    periods = ", ".join(_period(p) for p in model.get("periods") or []) or "none"
    model_text = f"{model.get('method', '?')} (seasonality: {periods}; confidence {an.get('confidence', '?')})"
    window = an.get("window") or {}
    observed = [v if isinstance(v, (int, float)) else None for v in window.get("observed") or []]
    expected = [v if isinstance(v, (int, float)) else None for v in window.get("expected") or []]
    view = dict(a)
    view.update({"where": where, "value_text": _num(value), "expected_text": _num(exp),
                 "band_text": f"{_num(lo)} to {_num(hi)}", "off_text": off, "model_text": model_text,
                 "sparkline": sparkline(observed), "anomaly": an, "labels": labels, "chart": None, "chart_cid": None})
    if with_chart and len(observed) > 2:
        band = (hi - exp) if isinstance(hi, (int, float)) and isinstance(exp, (int, float)) else None
        view["chart"] = png(observed, expected, band, marks=[len(observed) - 1])
        view["chart_cid"] = f"chart{index}@harewatch"
    return view


def _period(p: float) -> str:
    from harewatch.durations import format_duration
    return format_duration(float(p))


def context(note: Notification, settings: Mapping[str, Any], links: Mapping[str, str],
            with_chart: bool = False) -> dict[str, Any]:
    """Everything a template may use."""
    alerts = [alert_view(a, i, with_chart) for i, a in enumerate(note.alerts)]
    gl = dict(note.group_labels)
    first: dict[str, Any] = alerts[0] if alerts else {"labels": {}, "where": "", "anomaly": {}}
    if len(alerts) == 1:
        title = f"{first['labels'].get('alertname', 'anomaly')} {first['anomaly'].get('type') or first['labels'].get('type', '')} on {first['where']}"
    else:
        title = f"{len(alerts)} anomalies: " + ", ".join(f"{k}={v}" for k, v in sorted(gl.items()))
    return {"notification": note.to_dict(), "status": note.status, "alerts": alerts, "title": title,
            "firing": note.firing, "resolved": note.resolved,
            "truncated": note.truncated_alerts, "group_labels": gl,
            "group_text": ", ".join(f"{k}={v}" for k, v in sorted(gl.items())) or "all",
            "common_labels": dict(note.common_labels), "links": dict(links), "receiver": note.receiver,
            "channel": settings.get("channel"), "username": settings.get("username")}

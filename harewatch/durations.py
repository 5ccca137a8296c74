"""Prometheus-style durations (``30s``, ``5m``, ``1h30m``, ``1d``, ``1w``).

The same grammar Alertmanager uses for ``group_wait`` and friends, so an
Alertmanager config loads unchanged.

>>> parse_duration("1h30m")
5400.0
>>> format_duration(86400)
'1d'
"""
from __future__ import annotations

import re

_UNITS = (("y", 365 * 86400.0), ("w", 7 * 86400.0), ("d", 86400.0), ("h", 3600.0),
          ("m", 60.0), ("s", 1.0), ("ms", 0.001))
_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(text: str | int | float, strict: bool = False) -> float:
    """Seconds in a Prometheus duration string; plain numbers are seconds unless ``strict``
    (Alertmanager's own fields, where ``30`` is refused as Alertmanager refuses it).

    Raises ValueError with the offending text when it does not parse.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if strict and not (isinstance(text, str) and (text.strip() == "0" or _RE.match(text.strip()))) \
            or strict and isinstance(text, str) and not text.strip():
        raise ValueError(f'not a valid duration string: "{text}"')
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return float(text)
    s = str(text).strip()
    if s == "0":
        return 0.0
    m = _RE.match(s)
    if not s or not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m, 1d, 1w)")
    return sum(int(g) * mult for g, (_, mult) in zip(m.groups(), _UNITS) if g)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling of ``seconds`` (``0s`` for zero)."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    out = []
    for unit, mult in _UNITS:
        unit_ms = int(mult * 1000)
        if ms >= unit_ms:
            n, ms = divmod(ms, unit_ms)
            out.append(f"{n}{unit}")
    return "".join(out)

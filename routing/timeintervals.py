"""Alertmanager time intervals (``time_intervals`` / ``mute_time_intervals``) and when they are active."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]


def _ranges(items: list[Any], parse_one: Callable[[str], int], lo: int, hi: int, what: str) -> list[tuple[int, int]]:
    out = []
    for it in items:
        s = str(it).strip().lower()
        a, sep, b = s.partition(":")
        x = parse_one(a)
        y = parse_one(b) if sep else x
        if not (lo <= abs(x) <= hi and lo <= abs(y) <= hi):
            raise ValueError(f"{what} {it!r} out of range")
        out.append((x, y))
    return out


def _minutes(hhmm: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", hhmm.strip())
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise ValueError(f"bad time {hhmm!r} (HH:MM)")
    return int(m.group(1)) * 60 + int(m.group(2))


@dataclass
class TimeRange:
    times: list[tuple[int, int]] = field(default_factory=list)
    weekdays: list[tuple[int, int]] = field(default_factory=list)
    days_of_month: list[tuple[int, int]] = field(default_factory=list)
    months: list[tuple[int, int]] = field(default_factory=list)
    years: list[tuple[int, int]] = field(default_factory=list)
    location: str = "UTC"

    def contains(self, when: datetime) -> bool:
        if self.location and self.location not in ("UTC", "Local"):
            from zoneinfo import ZoneInfo
            when = when.astimezone(ZoneInfo(self.location))
        minute = when.hour * 60 + when.minute
        if self.times and not any(a <= minute < b for a, b in self.times):
            return False
        if self.weekdays and not any(a <= when.weekday() <= b for a, b in self.weekdays):
            return False
        if self.days_of_month:
            import calendar
            ndays = calendar.monthrange(when.year, when.month)[1]
            ok = False
            for a, b in self.days_of_month:
                a2 = a if a > 0 else ndays + a + 1
                b2 = b if b > 0 else ndays + b + 1
                ok = ok or a2 <= when.day <= b2
            if not ok:
                return False
        if self.months and not any(a <= when.month <= b for a, b in self.months):
            return False
        if self.years and not any(a <= when.year <= b for a, b in self.years):
            return False
        return True


def parse_time_range(d: dict[str, Any]) -> TimeRange:
    tr = TimeRange()
    for t in d.get("times") or []:
        tr.times.append((_minutes(t["start_time"]), _minutes(t["end_time"])))
    tr.weekdays = _ranges(d.get("weekdays") or [], lambda s: _DAYS.index(s), 0, 6, "weekday")
    tr.days_of_month = _ranges(d.get("days_of_month") or [], int, 1, 31, "day of month")
    tr.months = _ranges(d.get("months") or [], lambda s: int(s) if s.isdigit() else _MONTHS.index(s) + 1, 1, 12,
                        "month")
    tr.years = _ranges(d.get("years") or [], int, 1, 9999, "year")
    tr.location = d.get("location") or "UTC"
    if tr.location not in ("UTC", "Local"):
        from zoneinfo import ZoneInfo
        ZoneInfo(tr.location)
    return tr


def active(ranges: list[TimeRange], ts: float) -> bool:
    """True when ``ts`` falls in any of the ranges."""
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    return any(r.contains(when) for r in ranges)

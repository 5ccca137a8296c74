"""Time: RFC 3339 and epoch timestamps in, RFC 3339 out, and the sanity bounds on event time."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from harewatch.errors import InvalidInput

MAX_FUTURE_S = 86_400.0           # a day of clock skew
MAX_PAST_S = 366 * 86_400.0       # a year of backfill


def iso(ts: float) -> str:
    """RFC 3339 UTC with a Z, millisecond precision when needed."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")



# -- timestamps -----------------------------------------------------------
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_ts(value: Any, field: str = "ts", line: int | None = None) -> float:
    """Epoch seconds from RFC 3339 / ``YYYY-MM-DD HH:MM:SS`` (UTC if no offset) or epoch s/ms/us/ns."""
    if isinstance(value, bool):
        raise InvalidInput(f"timestamp must be a number or RFC 3339 string, got {value!r}", "bad_type", line, field)
    if isinstance(value, (int, float)):
        return _epoch(float(value), field, line)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            return _epoch(float(s), field, line)
        if _RFC3339.match(s):
            t = s.replace("z", "Z").replace("Z", "+00:00")
            try:
                dt = datetime.fromisoformat(t)
            except ValueError:
                raise InvalidInput(f"bad RFC 3339 timestamp {value!r}", "bad_ts", line, field) from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.timestamp()
    raise InvalidInput(f"unrecognised timestamp {value!r} (RFC 3339 or epoch seconds/ms/ns)", "bad_ts", line, field)


def _epoch(v: float, field: str, line: int | None) -> float:
    if not math.isfinite(v):
        raise InvalidInput(f"timestamp is not finite: {v!r}", "bad_ts", line, field)
    a = abs(v)
    if a >= 1e17:
        return v / 1e9   # ns
    if a >= 1e14:
        return v / 1e6   # us
    if a >= 1e11:
        return v / 1e3   # ms
    return v


def check_ts_bounds(ts: float, now: float, line: int | None = None, max_future: float = MAX_FUTURE_S,
                    max_past: float = MAX_PAST_S) -> None:
    """Reject timestamps absurdly far from ``now`` (clock bugs, unit mix-ups)."""
    if ts > now + max_future:
        raise InvalidInput(f"timestamp {ts:.0f} is {(ts - now) / 3600:.1f} h in the future", "ts_out_of_range", line, "ts")
    if ts < now - max_past:
        raise InvalidInput(f"timestamp {ts:.0f} is {(now - ts) / 86400:.0f} days in the past", "ts_out_of_range", line, "ts")

"""Series state in Redis: detector states, model fits, last-seen times, series metadata.

Every key is namespaced by the settings' prefix (``<prefix>hw:...``) so several
harewatch installations (or test runs) can share one Redis.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Iterable, Mapping

import numpy as np
import redis

from harewatch.workers.detection.stl import Fit


class StateStore:
    """Thin, batched access to the keys harewatch keeps per series."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self.r: Any = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                      health_check_interval=30)
        self.ns = f"{prefix}hw:"

    def _k(self, kind: str, fp: str) -> str:
        return f"{self.ns}{kind}:{fp}"

    # detector states ---------------------------------------------------------
    def get_states(self, fps: list[str]) -> dict[str, bytes]:
        if not fps:
            return {}
        vals = self.r.mget([self._k("state", fp) for fp in fps])
        return {fp: v for fp, v in zip(fps, vals) if v is not None}

    def save(self, states: Mapping[str, bytes], last_seen: Mapping[str, float],
             meta: Mapping[str, str], clear_missing: Iterable[str] = (), readings: int = 0) -> None:
        """Write states, last-seen times, new metadata and the readings counter in one round trip."""
        p = self.r.pipeline(transaction=False)
        if readings:
            p.incrby(f"{self.ns}stats:readings", readings)
        for fp, blob in states.items():
            p.set(self._k("state", fp), blob)
        if last_seen:
            p.zadd(f"{self.ns}lastseen", dict(last_seen))
        for fp, m in meta.items():
            p.set(self._k("meta", fp), m)
        cm = list(clear_missing)
        if cm:
            p.delete(*[self._k("missing", fp) for fp in cm])
        p.execute()

    def readings_total(self) -> int:
        """Readings taken in by detection workers so far (all series)."""
        return int(self.r.get(f"{self.ns}stats:readings") or 0)

    def meta(self, fp: str) -> dict[str, Any] | None:
        v = self.r.get(self._k("meta", fp))
        return json.loads(v) if v else None

    def watermark(self) -> float | None:
        """The newest event time any series has reached (the pipeline's event-time clock)."""
        top = self.r.zrange(f"{self.ns}lastseen", -1, -1, withscores=True)
        return float(top[0][1]) if top else None

    def stale_series(self, older_than: float, newer_than: float) -> list[str]:
        """Series whose newest point is between the two event times."""
        return [m.decode() for m in self.r.zrangebyscore(f"{self.ns}lastseen", newer_than, older_than)]

    def mark_missing(self, fp: str) -> bool:
        """True the first time a silence is reported (so two checkers report it once)."""
        return bool(self.r.set(self._k("missing", fp), b"1", nx=True, ex=7 * 86400))

    # fits --------------------------------------------------------------------
    def put_fit(self, fp: str, upto: int, fit: Fit | None) -> None:
        """A fit computed on the history before bucket ``upto`` (the key says which request it answers)."""
        self.r.set(self._k("fit", f"{fp}:{upto}"), encode_fit(fit), ex=86400)

    def take_fits(self, wanted: Mapping[str, int]) -> dict[str, Fit | None]:
        """The fits answering ``{series: upto}`` requests that are ready (taken: deleted from Redis)."""
        if not wanted:
            return {}
        fps = list(wanted)
        p = self.r.pipeline(transaction=False)
        for fp in fps:
            p.getdel(self._k("fit", f"{fp}:{wanted[fp]}"))   # atomic: a fit written meanwhile is never lost
        vals = p.execute()
        return {fp: decode_fit(v) for fp, v in zip(fps, vals) if v is not None}

    def clear(self) -> None:
        """Delete every key of this namespace (tests, demo reset)."""
        for k in self.r.scan_iter(f"{self.ns}*", count=1000):
            self.r.delete(k)


def encode_fit(fit: Fit | None) -> bytes:
    if fit is None:
        return b"NONE"
    head = json.dumps({"trend_end": fit.trend_end, "method": fit.method, "periods": list(fit.periods),
                       "resid_scale": fit.resid_scale}).encode()
    return b"FIT1" + struct.pack("<I", len(head)) + head + np.asarray(fit.profile, dtype="<f8").tobytes()


def decode_fit(blob: bytes) -> Fit | None:
    if blob == b"NONE":
        return None
    (hl,) = struct.unpack("<I", blob[4:8])
    head = json.loads(blob[8:8 + hl])
    prof = np.frombuffer(blob[8 + hl:], dtype="<f8").copy()
    return Fit(prof, head["trend_end"], head["method"], tuple(head["periods"]), head["resid_scale"])

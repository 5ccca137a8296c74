"""Silences: matchers that mute alerts for a while, as Alertmanager's; shared by the router,
``harewatch silence`` and anything else that keeps them in the same Redis hash."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from harewatch.routing.matchers import Matcher, matches_all, parse_matchers
from harewatch.times import iso


@dataclass
class Silence:
    """While active, alerts whose labels match every matcher are not notified (Alertmanager's silence)."""

    id: str
    matchers: list[str]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""
    updated_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def parsed(self) -> list[Matcher]:
        return [m for text in self.matchers for m in parse_matchers(text)]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": self.matchers, "startsAt": iso(self.starts_at), "endsAt": iso(self.ends_at),
                "comment": self.comment, "createdBy": self.created_by}


def silenced(labels: Mapping[str, str], active_silences: list[list[Matcher]]) -> bool:
    """True when any active silence's matchers all match ``labels``."""
    return any(matches_all(ms, labels) for ms in active_silences)


class SilenceStore:
    """Silences in one Redis hash (id -> JSON); the Redis client and clock are the caller's."""

    def __init__(self, r: Any, key: str, clock: Callable[[], float]) -> None:
        self.r, self.key, self.clock = r, key, clock

    def add(self, matchers: list[str], duration: float, comment: str = "", author: str = "",
            start: float | None = None) -> Silence:
        for m in matchers:
            parse_matchers(m)  # validate now, not at flush time
        now = self.clock() if start is None else start
        s = Silence(str(uuid.uuid4()), matchers, now, now + duration, comment, author, self.clock())
        self.r.hset(self.key, s.id, json.dumps(s.__dict__))
        return s

    def get(self, sid: str) -> Silence | None:
        raw = self.r.hget(self.key, sid)
        return Silence(**json.loads(raw)) if raw else None

    def all(self) -> list[Silence]:
        return sorted((Silence(**json.loads(v)) for v in self.r.hvals(self.key)), key=lambda s: s.starts_at)

    def expire(self, sid: str) -> bool:
        """End a silence now (by id or an unambiguous id prefix); False when none or several match."""
        raw = self.r.hget(self.key, sid)
        if raw is None:
            matches = [s for s in self.all() if s.id.startswith(sid)]
            if len(matches) != 1:
                return False
            sid, raw = matches[0].id, self.r.hget(self.key, matches[0].id)
        s = Silence(**json.loads(raw))
        s.ends_at = min(s.ends_at, self.clock())
        s.updated_at = self.clock()
        self.r.hset(self.key, s.id, json.dumps(s.__dict__))
        return True

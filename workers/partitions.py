"""Which partitions of a partitioned metric this worker consumes.

A partitioned metric's readings are spread over ``detect.<metric>.<k>`` by a
consistent-hash exchange; every partition queue has a single active consumer,
so each series stays in order however many workers there are. Single active
consumer alone would hand every partition to the first worker that subscribed,
so workers share them out through Redis: each worker announces itself per
metric (an entry that lapses after :data:`LEASE` seconds), takes leases on free
partitions up to its fair share (partitions / live workers, rounded up), gives
back what exceeds it, and consumes only what it holds. A worker that dies stops
renewing: its partitions lapse and the others take them. The broker still
guarantees one active consumer per partition in between.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

LEASE = 10.0            # seconds a worker's announcement and leases last without renewal

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class PartitionClaims:
    """This worker's leases on the partitions of each partitioned metric it was asked to detect."""

    def __init__(self, r: Any, prefix: str, worker: str, groups: Mapping[str, Sequence[str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.r = r
        self.ns = f"{prefix}hw:parts:"
        self.worker = worker
        self.groups = {g: list(qs) for g, qs in groups.items()}
        self.clock = clock
        self._release = r.register_script(_RELEASE)

    def announce(self) -> None:
        """Say this worker is here, without taking anything yet: workers starting together then see
        each other before they take their shares, rather than the first taking all and giving back."""
        now = self.clock()
        for group in self.groups:
            self.r.zadd(self.ns + group + ":workers", {self.worker: now + LEASE})

    def refresh(self) -> set[str]:
        """Renew this worker's leases, take free partitions up to its fair share, give back the excess;
        returns the partition queues it holds now."""
        held: set[str] = set()
        now = self.clock()
        for group, queues in self.groups.items():
            members = self.ns + group + ":workers"
            p = self.r.pipeline()
            p.zadd(members, {self.worker: now + LEASE})
            p.zremrangebyscore(members, "-inf", now)
            p.zcard(members)
            p.mget([self.ns + q for q in queues])
            _, _, live, owners = p.execute()
            share = math.ceil(len(queues) / max(1, live))
            mine = [q for q, o in zip(queues, owners) if o is not None and o.decode() == self.worker]
            for q in mine[share:]:
                self._release(keys=[self.ns + q], args=[self.worker])
            mine = mine[:share]
            for q in mine:
                self.r.pexpire(self.ns + q, int(LEASE * 1000))
            for q, o in zip(queues, owners):
                if len(mine) >= share:
                    break
                if o is None and self.r.set(self.ns + q, self.worker, nx=True, px=int(LEASE * 1000)):
                    mine.append(q)
            held |= set(mine)
        return held

    def release(self, queues: Sequence[str] | None = None) -> None:
        """Give partitions back at once (all of them and the announcements, by default): on a clean stop,
        so the others need not wait for the leases to lapse."""
        for group, qs in self.groups.items():
            for q in qs if queues is None else [q for q in qs if q in queues]:
                self._release(keys=[self.ns + q], args=[self.worker])
            if queues is None:
                self.r.zrem(self.ns + group + ":workers", self.worker)

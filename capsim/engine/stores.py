"""What caches and databases remember between requests: cache contents, and writes that
replicas may not have seen yet.

The steps that consult them are in ``steps.py``; a run samples their ``counters()`` with the
stations' (``RunResult.probe_samples``).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from capsim.engine.streams import Draws
from capsim.model import Database
from capsim.model.popularity import zipf_probabilities


class CacheState:
    """Hits and misses of one cache or CDN: a fixed ratio, or an LRU over Zipf keys with TTL."""

    def __init__(self, comp, rng) -> None:
        self.hits = self.misses = self.stale = 0
        self.stale_age = 0.0
        self.ratio = comp.hit_ratio
        self.ttl = getattr(comp, "ttl_s", None)
        self.invalidate_on_write = getattr(comp, "invalidate_on_write", True)
        self.lru: OrderedDict[int, float] | None = None
        self.updated: dict[int, float] = {}  # key -> last write at the origin
        self.rng = rng
        self.buf: list[float] = []
        if self.ratio is None:
            keys = comp.keys
            self.cdf = np.cumsum(zipf_probabilities(keys, comp.zipf_s))
            self.capacity = comp.capacity_keys
            self.lru = OrderedDict()
            if comp.warm:
                for k in range(min(self.capacity, keys) - 1, -1, -1):
                    self.lru[k] = 0.0

    def _key(self) -> int:
        buf = self.buf
        if not buf:
            u = self.rng.random(4096)
            buf.extend(np.searchsorted(self.cdf, u, side="right")[::-1].tolist())
        return buf.pop()

    def lookup(self, now: float) -> bool:
        """True on a hit at ``now``. An LRU is updated as a cache-aside read would leave it."""
        if self.lru is None:
            buf = self.buf
            if not buf:
                buf.extend(self.rng.random(4096).tolist())
            hit = buf.pop() < self.ratio
        else:
            k = self._key()
            lru = self.lru
            born = lru.get(k)
            hit = born is not None and (self.ttl is None or now - born < self.ttl)
            if hit:
                lru.move_to_end(k)
                changed = self.updated.get(k)
                if changed is not None and changed > born:
                    self.stale += 1
                    self.stale_age += now - changed
            else:
                lru[k] = now
                lru.move_to_end(k)
                if len(lru) > self.capacity:
                    lru.popitem(last=False)
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        return hit

    def write(self, now: float) -> None:
        """A key's data changed at the origin at ``now``: drop the cached copy, or let it go
        stale."""
        if self.lru is None:
            return
        k = self._key()
        self.updated[k] = now
        if self.invalidate_on_write:
            self.lru.pop(k, None)

    def counters(self) -> tuple[float, ...]:
        return (self.hits, self.misses, self.stale, self.stale_age)


class DbStats:
    """Reads that follow a write in the same request, and how many a lagging replica served
    stale (read-your-writes violations); with a failover, the writes it refused and lost."""

    def __init__(self, comp: Database, rng, failovers=()) -> None:
        self.lag = (Draws(comp.replication_lag, rng)
                    if comp.replication_lag is not None and comp.read_replicas else None)
        self.after_write = self.stale = 0
        self.failovers = failovers  # ShardFailover per shard, or none

    def counters(self) -> tuple[float, ...]:
        return (self.after_write, self.stale, sum(f.errors for f in self.failovers),
                sum(f.lost for f in self.failovers))

"""How big a system is: the vCPUs it runs on, and the load its busiest station can carry.

Two questions a cost or capacity table asks of any system before comparing designs: what it
is made of (every worker is a vCPU, every replica and shard a box of that many), and how many
users it carries before its busiest station is full (or at an alarm level such as 80%).
"""

from __future__ import annotations

from dataclasses import dataclass

from capsim.errors import check_number
from capsim.model import System
from capsim.scaling.options import capacity_per_s

__all__ = ["Bottleneck", "bottleneck", "vcpus"]


def vcpus(system: System) -> int:
    """Workers over every station (instances, replicas, shards and consumers included); a
    delay (infinite servers, e.g. the internet) runs on none."""
    return int(sum(s.servers for s in system.stations() if s.servers is not None))


@dataclass(frozen=True)
class Bottleneck:
    """The station that fills first, and the request rate at which it is 100% busy."""

    station: str
    capacity_per_s: float

    def users_at(self, requests_per_user_s: float, level: float = 1.0) -> float:
        """Users (each sending ``requests_per_user_s``) that take the station to ``level``
        utilization (1.0: full, no steady state beyond; 0.8: an 80% alarm)."""
        rate = check_number("Bottleneck.users_at", "requests_per_user_s", requests_per_user_s)
        level = check_number("Bottleneck.users_at", "level", level)
        return level * self.capacity_per_s / rate


def bottleneck(system: System) -> Bottleneck:
    """The busiest station per request and its capacity (``options.capacity_per_s``: the
    model's offered load, cache hit ratios as at 1 request/s, holding not counted)."""
    loads = system.offered_load(1.0)
    return Bottleneck(max(loads, key=loads.get), capacity_per_s(system))

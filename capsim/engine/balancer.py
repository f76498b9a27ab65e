"""Balancer: how a request picks one of a component's stations, as a load balancer would."""

from __future__ import annotations

import math

import numpy as np

from capsim.engine.customer import Customer
from capsim.engine.station import Station
from capsim.engine.streams import Choices


class Balancer:
    """Choose one of several stations (instances, replicas, consumers) and send the request.

    Policies: round_robin, random (optionally weighted), least_connections (fewest present),
    power_of_two (the less loaded of two distinct random picks). Stations in an outage, or
    in ``closed`` (being scaled in), are skipped while any other is up, as a load balancer's
    health check or deregistration would.
    """

    __slots__ = ("stations", "policy", "choices", "others", "hold", "count", "spill", "single",
                 "closed")

    def __init__(self, stations: list[Station], policy: str, rng, weights=None,
                 hold: bool = False, closed: set[Station] | frozenset = frozenset()) -> None:
        self.stations, self.policy, self.hold, self.closed = stations, policy, hold, closed
        n = len(stations)
        self.choices = Choices(weights if weights is not None else np.ones(n), rng)
        # power_of_two's second pick: one of the n - 1 others, from a stream of its own
        self.others = (Choices(np.ones(n - 1), rng.spawn(1)[0])
                       if policy == "power_of_two" and n > 1 else None)
        self.count = self.spill = 0
        self.single = n == 1
    def choose(self) -> Station:
        stations = self.stations
        if self.single:
            return stations[0]
        policy = self.policy
        if policy == "round_robin":
            self.count += 1
            st = stations[self.count % len(stations)]
        elif policy == "least_connections":
            # ties (all idle) go round robin, not always to the first instance
            self.count += 1
            k = self.count % len(stations)
            st = min(stations[k:] + stations[:k], key=load)
        else:
            c = self.choices
            a = (c.buf or c.refill()).pop()
            st = stations[a]
            if policy == "power_of_two":
                # drawn among the n - 1 others and shifted past the first: never the same one
                c = self.others
                b = (c.buf or c.refill()).pop()
                if b >= a:
                    b += 1
                other = stations[b]
                if other.n < st.n:
                    st = other
        closed = self.closed
        if st.servers == 0 or st in closed:
            up = [s for s in stations if s.servers > 0 and s not in closed]
            if up:  # spread the failed one's share evenly over the live ones
                self.spill += 1
                k = self.spill % len(up)
                if policy in ("round_robin", "random"):
                    st = up[k]
                else:  # load-aware policies: the least loaded, ties in turn
                    st = min(up[k:] + up[:k], key=load)
        return st

    def __call__(self, cust: Customer) -> None:
        st = self.choose()
        if self.hold:
            drops = st.drops
            st.arrive_holding(cust)
            if st.drops == drops:  # admitted (a turned-away request holds nothing here)
                if cust.held is None:
                    cust.held = []
                cust.held.append((st, cust.t_arr))
        else:
            st.arrive(cust)


def load(st: Station) -> float:
    """Requests present per working server (a stopped or failed station: infinite)."""
    return st.n / st.servers if st.servers else math.inf

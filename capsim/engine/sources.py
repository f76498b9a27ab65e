"""Where requests come from and where they end: open and closed sources, and the recorder.

A source is itself the SimPy event it schedules (like :class:`Customer`), so an arrival costs
one heap entry and no allocation besides the new customer.
"""

from __future__ import annotations

import simpy

from capsim.engine.station import Customer, schedule
from capsim.engine.streams import Choices, Draws


class Recorder:
    """Collects (arrival time, finish time, route) of finished requests and drops, in lists."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.t0: list[float] = []
        self.t1: list[float] = []
        self.rid: list[int] = []
        self.drop_t0: list[float] = []
        self.drop_rid: list[int] = []
        self._t0, self._t1, self._rid = self.t0.append, self.t1.append, self.rid.append

    def finish(self, cust: Customer) -> None:
        self._t0(cust.t0)
        self._t1(self.env._now)
        self._rid(cust.rid)

    def drop(self, cust: Customer) -> None:
        self.drop_t0.append(cust.t0)
        self.drop_rid.append(cust.rid)


class _RoutePicker:
    """Picks a route index per request; free when there is only one route."""

    def __init__(self, probabilities, rng) -> None:
        self.single = len(probabilities) == 1
        self.choices = None if self.single else Choices(probabilities, rng)

    def pick(self) -> int:
        if self.single:
            return 0
        c = self.choices
        return (c.buf or c.refill()).pop()


class OpenSource:
    """Arrivals from outside with i.i.d. gaps (Poisson by default)."""

    __slots__ = ("callbacks", "env", "routes", "picker", "gaps", "count", "started",
                 "_callbacks")
    _ok = True

    def __init__(self, env, routes: list[tuple], picker: _RoutePicker, gaps: Draws) -> None:
        self.env, self.routes, self.picker, self.gaps = env, routes, picker, gaps
        self.count = 0
        self.started = [0] * len(routes)  # per flow: what is still in flight at the end
        self._callbacks = self.callbacks = (self._fire,)
        schedule(env, self, (gaps.buf or gaps.refill()).pop())

    def _fire(self, _event) -> None:
        env = self.env
        now = env._now
        self.count += 1
        picker = self.picker
        if picker.single:
            rid = 0
        else:
            c = picker.choices
            rid = (c.buf or c.refill()).pop()
        self.started[rid] += 1
        route = self.routes[rid]
        route[0](Customer(route, rid, now, self.count))
        self.callbacks = self._callbacks
        schedule(env, self, (self.gaps.buf or self.gaps.refill()).pop())


class ClosedSource:
    """A fixed population: think, send a request, wait for it, think again.

    Each user is one :class:`Customer` reused for all of its requests. Every user starts
    with a think time so that the population does not arrive in one burst at time 0.
    """

    def __init__(self, env, users: int, routes: list[tuple], picker: _RoutePicker,
                 think: Draws, recorder: Recorder) -> None:
        self.env, self.routes, self.picker, self.think = env, routes, picker, think
        self.recorder = recorder
        self.count = 0
        self.started = [0] * len(routes)
        self._start_cb = (self._start,)
        for u in range(users):
            cust = Customer((), 0, 0.0, 0)
            cust.user = u
            self._think(cust)

    def _think(self, cust: Customer) -> None:
        cust.callbacks = self._start_cb
        schedule(self.env, cust, (self.think.buf or self.think.refill()).pop())

    def _start(self, cust: Customer) -> None:
        now = self.env._now
        self.count += 1
        rid = self.picker.pick()
        self.started[rid] += 1
        cust.route = route = self.routes[rid]
        cust.rid, cust.idx, cust.t0, cust.t_arr, cust.id = rid, 0, now, now, self.count
        cust.key = cust.held = None
        cust.attempt = 0
        route[0](cust)

    def finish(self, cust: Customer) -> None:
        self.recorder.finish(cust)
        self._think(cust)

    def drop(self, cust: Customer) -> None:
        self.recorder.drop(cust)
        if cust.user is not None:  # a lost async message is not a user
            self._think(cust)

"""Where requests come from and where they end: open and closed sources, and the recorder.

A source is itself the SimPy event it schedules (like :class:`Customer`), so an arrival costs
one heap entry and no allocation besides the new customer.
"""

from __future__ import annotations

from array import array
from heapq import heappush

import numpy as np

from capsim.engine.clock import NORMAL, BareEvent, bind, now
from capsim.engine.customer import Customer
from capsim.engine.streams import Choices, Draws

BATCH = 4096  # finished requests whose records wait in a list before they move to the arrays


class Recorder:
    """(arrival time, finish time, route) of each finished request, and of each drop.

    Kept in typed arrays of 8-byte fields, not lists of Python floats: a long run keeps 24
    bytes per finished request (a million requests: 24 MB), and the result's arrays are views
    of them. A finish appends to a short flat list, moved into the arrays every ``BATCH``
    requests, since ``array.append`` costs several list appends; so at most ``BATCH``
    requests' values are Python objects at any time.
    """

    def __init__(self) -> None:
        self.t0, self.t1, self.rid = array("d"), array("d"), array("q")
        self.drop_t0, self.drop_rid = array("d"), array("q")
        self._pending: list = []  # t0, t1, rid, t0, t1, rid, ... of the latest finishes
        self._add = self._pending.append

    def finish(self, cust: Customer) -> None:
        add = self._add
        add(cust.t0)
        add(cust.t_now)
        add(cust.rid)
        if len(self._pending) >= 3 * BATCH:
            self._move()

    def drop(self, cust: Customer) -> None:
        self.drop_t0.append(cust.t0)
        self.drop_rid.append(cust.rid)

    def _move(self) -> None:
        rows = np.array(self._pending, dtype=np.float64).reshape(-1, 3)
        self.t0.frombytes(rows[:, 0].tobytes())
        self.t1.frombytes(rows[:, 1].tobytes())
        self.rid.frombytes(rows[:, 2].astype(np.int64).tobytes())
        self._pending.clear()

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Arrival, finish, route of finished requests, arrival and route of drops: numpy
        views of the records (no copy). Call it when the run is over: the arrays cannot grow
        while they are viewed."""
        self._move()
        return (np.frombuffer(self.t0), np.frombuffer(self.t1),
                np.frombuffer(self.rid, dtype=np.int64), np.frombuffer(self.drop_t0),
                np.frombuffer(self.drop_rid, dtype=np.int64))


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


class OpenSource(BareEvent):
    """Arrivals from outside with i.i.d. gaps (Poisson by default).

    ``routes`` are the programs this population picks from; ``rids`` their indices in the
    run's route table (None: the same), ``prios`` their flows' priorities (None: none)."""

    __slots__ = ("callbacks", "routes", "picker", "gaps", "count", "started", "_callbacks",
                 "_heap", "_ids", "t_now", "rids", "prios")

    def __init__(self, env, routes: list[tuple], picker: _RoutePicker, gaps: Draws,
                 rids: list[int] | None = None, prios: list[int] | None = None) -> None:
        self.routes, self.picker, self.gaps = routes, picker, gaps
        self.rids, self.prios = rids, prios
        self._heap, self._ids = bind(env)
        self.count = 0
        self.started = [0] * len(routes)  # per route: what is still in flight at the end
        # one population running every flow (the common case) takes the lean path
        plain = rids is None and prios is None
        self._callbacks = self.callbacks = (self._fire if plain else self._fire_table,)
        # the time of the next arrival, which this source's own event fires at
        self.t_now = t = now(env) + (gaps.buf or gaps.refill()).pop()
        heappush(self._heap, (t, NORMAL, next(self._ids), self))

    def _fire(self, _event) -> None:
        now = self.t_now
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
        gaps = self.gaps
        self.t_now = t = now + (gaps.buf or gaps.refill()).pop()
        heappush(self._heap, (t, NORMAL, next(self._ids), self))

    def _fire_table(self, _event) -> None:
        """As ``_fire``, for a population with its own routes and flow priorities."""
        now = self.t_now
        self.count += 1
        picker = self.picker
        if picker.single:
            j = 0
        else:
            c = picker.choices
            j = (c.buf or c.refill()).pop()
        self.started[j] += 1
        route = self.routes[j]
        rids = self.rids
        cust = Customer(route, j if rids is None else rids[j], now, self.count)
        if self.prios is not None:
            cust.prio = self.prios[j]
        route[0](cust)
        self.callbacks = self._callbacks
        gaps = self.gaps
        self.t_now = t = now + (gaps.buf or gaps.refill()).pop()
        heappush(self._heap, (t, NORMAL, next(self._ids), self))


class ClosedSource:
    """A fixed population: think, send a request, wait for it, think again.

    Each user is one :class:`Customer` reused for all of its requests (its ``user`` is this
    source, so a run with several populations sends each finished request home). Every user
    starts with a think time so that the population does not arrive in one burst at time 0.
    """

    def __init__(self, env, users: int, routes: list[tuple], picker: _RoutePicker,
                 think: Draws, recorder: Recorder, rids: list[int] | None = None,
                 prios: list[int] | None = None) -> None:
        self.env, self.routes, self.picker, self.think = env, routes, picker, think
        self.recorder = recorder
        self.rids, self.prios = rids, prios
        self._heap, self._ids = bind(env)
        self.count = 0
        self.started = [0] * len(routes)
        self._start_cb = (self._start,)
        for _ in range(users):
            cust = Customer((), 0, 0.0, 0)
            cust.user = self
            cust.t_now = now(env)
            self._think(cust)

    def _think(self, cust: Customer) -> None:
        """The user thinks, from the time of the step it is at (``t_now``)."""
        cust.callbacks = self._start_cb
        cust.t_now = t = cust.t_now + (self.think.buf or self.think.refill()).pop()
        heappush(self._heap, (t, NORMAL, next(self._ids), cust))

    def _start(self, cust: Customer) -> None:
        now = cust.t_now
        self.count += 1
        j = self.picker.pick()
        self.started[j] += 1
        cust.route = route = self.routes[j]
        cust.rid = j if self.rids is None else self.rids[j]
        cust.idx, cust.t0, cust.t_arr, cust.id = 0, now, now, self.count
        cust.key = cust.held = cust.draws = cust.loops = None
        cust.scale = 1.0
        cust.attempt = 0
        if self.prios is not None:
            cust.prio = self.prios[j]
        route[0](cust)

    def finish(self, cust: Customer) -> None:
        self.recorder.finish(cust)
        self._think(cust)

    def drop(self, cust: Customer) -> None:
        self.recorder.drop(cust)
        if cust.user is not None:  # a lost async message is not a user
            self._think(cust)


def send_home(recorder: Recorder):
    """(finish, drop) for a run with closed populations: a request of a closed user goes back
    to its population to think; anything else (an open arrival, a message) is recorded."""
    def finish(cust: Customer) -> None:
        src = cust.user
        if src is None:
            recorder.finish(cust)
        else:
            src.finish(cust)

    def drop(cust: Customer) -> None:
        src = cust.user
        if src is None:
            recorder.drop(cust)
        else:
            src.drop(cust)

    return finish, drop

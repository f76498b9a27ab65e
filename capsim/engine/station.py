"""A worker pool with a FIFO queue, living on a SimPy ``Environment``.

Built-in requests do not run as SimPy processes. A request is a :class:`Customer` that is itself
the event SimPy schedules for the end of its service: SimPy's loop pops it and calls the
station's completion callback, which starts the next queued service and hands the customer to
the next step of its route. That is one heap entry per service and no Request/Release events,
which is where hand-written SimPy spends its time.

User-written SimPy processes still share the same servers through :meth:`Station.request` and
:meth:`Station.release`, with the semantics of ``simpy.Resource``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappush

import simpy
from simpy.events import NORMAL

from capsim.engine.streams import Draws

COUNTERS = ("area_in_system", "area_busy", "wait_sum_s", "sojourn_sum_s", "arrivals", "started",
            "completions", "drops", "present")


class Customer:
    """One request in flight. It doubles as the SimPy event of its current service.

    SimPy's ``Environment.step`` needs only ``callbacks`` and ``_ok`` from what it pops.
    """

    __slots__ = ("callbacks", "route", "idx", "t0", "t_arr", "rid", "id", "user", "scale", "held",
                 "key", "parent", "attempt")
    _ok = True

    def __init__(self, route: tuple, rid: int, t0: float, ident: int) -> None:
        self.route = route  # callables, one per step, the last one records the finish
        self.idx = 0
        self.t0 = t0
        self.t_arr = t0
        self.rid = rid  # index of the flow (its program) in the run's flow table
        self.id = ident
        self.scale = 1.0  # multiplies the next service time (a full scan is many lookups)
        self.held = None  # stations holding a worker for this request (synchronous calls)
        self.user = None  # the closed-workload user this request belongs to
        self.key = None  # when this request last wrote to a database (read-your-writes)
        self.parent = None  # (call step, caller, attempt) when this is one attempt of a call
        self.attempt = 0  # the caller's current attempt number while it waits on a call


def schedule(env: simpy.Environment, event, delay: float) -> None:
    """``env.schedule(event, NORMAL, delay)`` inlined: this runs once per service."""
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))


class StationRequest(simpy.Event):
    """A user process's claim on one server; ``with station.request() as req: yield req``."""

    def __init__(self, station: Station) -> None:
        super().__init__(station.env)
        self.station = station
        self.t_arr = station.env.now
        self.granted = False

    def __enter__(self) -> StationRequest:
        return self

    def __exit__(self, *exc) -> None:
        self.station.release(self)


class Station:
    """``servers`` workers, one FIFO queue of at most ``queue_capacity`` waiting requests.

    Keeps time-integrals of the number present and of busy servers (utilization, queue
    length), waits, arrivals, completions and drops; :meth:`reset_stats` starts a new window
    (the end of warm-up).
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        servers: int,
        draws: Draws,
        queue_capacity: int | None = None,
        on_drop: Callable[[Customer], None] | None = None,
        max_wait_s: float | None = None,
    ) -> None:
        self.env = env
        self.name = name
        self.servers = servers
        self.capacity = math.inf if queue_capacity is None else queue_capacity
        self.on_drop = on_drop
        self.queue: deque = deque()
        self.busy = 0
        self.n = 0  # present: in service + waiting
        self._draws = draws
        self.max_wait_s = max_wait_s
        self._callbacks = (self._done,)
        self._holding_callbacks = (self._held,)
        self.reset_stats()

    # -- statistics -------------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.t_last = self.window_start = self.env.now
        self.area_n = self.area_busy = 0.0
        self.wait_sum = self.sojourn_sum = 0.0
        self.arrivals = self.started = self.completions = self.drops = 0

    def _integrate(self, now: float) -> None:
        dt = now - self.t_last
        self.area_n += self.n * dt
        self.area_busy += self.busy * dt
        self.t_last = now

    def close(self) -> None:
        """Bring the time-integrals up to the current time (the end of the run)."""
        self._integrate(self.env.now)

    def counters(self) -> tuple[float, ...]:
        """Cumulative counters now, in the order of ``COUNTERS`` (integrals brought up to date)."""
        self._integrate(self.env.now)
        return (self.area_n, self.area_busy, self.wait_sum, self.sojourn_sum, self.arrivals,
                self.started, self.completions, self.drops, self.n)

    # -- the built-in request path (hot) --------------------------------------------------
    def arrive(self, cust: Customer) -> None:
        """A request arrives: served at once if a server is free, else queued (or dropped)."""
        env = self.env
        now = env._now
        n = self.n
        busy = self.busy
        dt = now - self.t_last
        self.area_n += n * dt
        self.area_busy += busy * dt
        self.t_last = now
        self.arrivals += 1
        cust.t_arr = now
        cust.callbacks = self._callbacks
        if busy < self.servers:
            self.busy = busy + 1
            self.n = n + 1
            self.started += 1
            buf = self._draws.buf or self._draws.refill()
            heappush(env._queue, (now + buf.pop() * cust.scale, NORMAL, next(env._eid), cust))
        elif len(self.queue) >= self.capacity:
            self.drops += 1
            self.on_drop(cust)
        else:
            self.queue.append(cust)
            self.n = n + 1

    def arrive_holding(self, cust: Customer) -> None:
        """Like ``arrive``, but the server stays with the request after its service, while it
        makes downstream calls, until ``release`` (a worker blocked on a synchronous call)."""
        self.arrive(cust)
        cust.callbacks = self._holding_callbacks

    def _done(self, cust: Customer) -> None:
        self._release(cust)
        cust.scale = 1.0
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)

    def _held(self, cust: Customer) -> None:
        """Own service over; keep the server and go on to the downstream calls."""
        cust.scale = 1.0
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)

    def _release(self, cust) -> None:
        """The server ``cust`` had is free: count the visit and start the next waiting one."""
        now = self.env._now
        n = self.n
        dt = now - self.t_last
        self.area_n += n * dt
        self.area_busy += self.busy * dt
        self.t_last = now
        self.completions += 1
        self.sojourn_sum += now - cust.t_arr
        self.n = n - 1
        queue = self.queue
        if self.max_wait_s is not None:
            self._expire(now)
        if queue and self.busy <= self.servers:
            self._start(queue.popleft(), now)
        else:
            self.busy -= 1

    def _start(self, nxt, now: float) -> None:
        self.wait_sum += now - nxt.t_arr
        self.started += 1
        if type(nxt) is Customer:
            buf = self._draws.buf or self._draws.refill()
            env = self.env
            heappush(env._queue, (now + buf.pop() * nxt.scale, NORMAL, next(env._eid), nxt))
        else:
            nxt.granted = True
            nxt.succeed()

    def _expire(self, now: float) -> None:
        """Drop waiting requests older than ``max_wait_s`` (a topic's retention)."""
        queue = self.queue
        while queue and now - queue[0].t_arr > self.max_wait_s:
            lost = queue.popleft()
            self.n -= 1
            self.drops += 1
            if type(lost) is Customer:
                self.on_drop(lost)

    def set_servers(self, servers: int) -> None:
        """Change how many servers work (an outage sets 0): work in progress finishes; when
        servers come back, waiting requests start at once."""
        now = self.env.now
        self._integrate(now)
        self.servers = servers
        if self.max_wait_s is not None:
            self._expire(now)
        while self.queue and self.busy < self.servers:
            self.busy += 1
            self._start(self.queue.popleft(), now)

    # -- SimPy resource interface for user-written processes ------------------------------
    def request(self) -> StationRequest:
        """Claim a server; the event fires when one is free (FIFO with built-in requests)."""
        req = StationRequest(self)
        self._integrate(self.env.now)
        self.arrivals += 1
        if self.busy < self.servers:
            self.busy += 1
            self.n += 1
            self.started += 1
            req.granted = True
            req.succeed()
        elif len(self.queue) >= self.capacity:
            self.drops += 1
            req.fail(simpy.exceptions.SimPyException(f"{self.name}: queue full, request dropped"))
            req.defused = True
        else:
            self.queue.append(req)
            self.n += 1
        return req

    def release(self, req: StationRequest) -> simpy.Event:
        """Give the server back (or withdraw a request still waiting)."""
        if req.granted:
            req.granted = False
            self._release(req)
        elif req in self.queue:
            self._integrate(self.env.now)
            self.queue.remove(req)
            self.n -= 1
        done = simpy.Event(self.env)
        done.succeed()
        return done

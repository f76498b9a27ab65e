"""A worker pool with a FIFO queue, living on a SimPy ``Environment``.

Built-in requests do not run as SimPy processes. A request is a :class:`Customer` that is itself
the event SimPy schedules for the end of its service: SimPy's loop pops it and calls the
station's completion callback, which starts the next queued service and hands the customer to
the next step of its route. That is one heap entry per service and no Request/Release events,
which is where hand-written SimPy spends its time. The time of a step is the request's own
(``Customer.t_now``, the time its event fired), not a read of SimPy's clock.

User-written SimPy processes still share the same servers through :meth:`Station.request` and
:meth:`Station.release`, with the semantics of ``simpy.Resource``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappush

import simpy

from capsim.engine.clock import NORMAL, bind, now
from capsim.engine.customer import Customer
from capsim.engine.streams import Draws


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


class Counted:
    """The statistics of anything that gets a row of ``components()`` (a station, a host's
    cores): time-integrals of the number present and busy, waits, arrivals, completions and
    drops, in the order of ``schema.COUNTERS``. A subclass keeps ``env``, ``n`` and the sums
    and brings the integrals up to a time in ``_integrate``."""

    __slots__ = ()

    def reset_stats(self) -> None:
        """Start a new window (the end of the warm-up)."""
        self.t_last = self.window_start = now(self.env)
        self.area_n = self.area_busy = 0.0
        self.wait_sum = self.sojourn_sum = 0.0
        self.arrivals = self.started = self.completions = self.drops = 0

    def _integrate(self, t: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Bring the time-integrals up to the current time (the end of the run)."""
        self._integrate(now(self.env))

    def counters(self) -> tuple[float, ...]:
        """Cumulative counters now, in the order of ``schema.COUNTERS`` (integrals brought up to
        date)."""
        self._integrate(now(self.env))
        return (self.area_n, self.area_busy, self.wait_sum, self.sojourn_sum, self.arrivals,
                self.started, self.completions, self.drops, self.n)


class Station(Counted):
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
        self._heap, self._ids = bind(env)  # the hot path schedules on SimPy's heap directly
        self.name = name
        self.servers = servers
        self.capacity = math.inf if queue_capacity is None else queue_capacity
        self.on_drop = on_drop
        self.queue: deque = deque()
        self.busy = 0
        self.n = 0  # present: in service + waiting
        self._draws = draws
        self.max_wait_s = max_wait_s
        self.expired = 0  # cumulative drops of ``max_wait_s`` (sampled, never reset)
        self._callbacks = (self._done,)
        self._holding_callbacks = (self._held,)
        self.reset_stats()

    # -- statistics -------------------------------------------------------------------------
    def _integrate(self, now: float) -> None:
        dt = now - self.t_last
        self.area_n += self.n * dt
        self.area_busy += self.busy * dt
        self.t_last = now

    # -- the built-in request path (hot) --------------------------------------------------
    def arrive(self, cust: Customer) -> None:
        """A request arrives: served at once if a server is free, else queued (or dropped)."""
        now = cust.t_now
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
            draws = cust.draws
            if draws is None:
                draws = self._draws
            else:  # a step's own demand, used once
                cust.draws = None
            buf = draws.buf or draws.refill()
            cust.t_now = t = now + buf.pop() * cust.scale
            heappush(self._heap, (t, NORMAL, next(self._ids), cust))
        elif len(self.queue) >= self.capacity:
            self.drops += 1
            self.on_drop(cust)
        else:
            self.queue.append(cust)
            self.n = n + 1

    def arrive_holding(self, cust: Customer) -> None:
        """Like ``arrive``, but the server stays with the request after its service, while it
        makes downstream calls, until ``release`` (a worker blocked on a synchronous call)."""
        drops = self.drops
        self.arrive(cust)
        if self.drops == drops:  # a dropped one may already be on its way (a closed user)
            cust.callbacks = self._holding_callbacks

    def _done(self, cust: Customer) -> None:
        self._release(cust, cust.t_now)
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

    def _release(self, cust, now: float) -> None:
        """The server ``cust`` had is free at ``now``: count the visit and start the next
        waiting one."""
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
            draws = nxt.draws
            if draws is None:
                draws = self._draws
            else:
                nxt.draws = None
            buf = draws.buf or draws.refill()
            nxt.t_now = t = now + buf.pop() * nxt.scale
            heappush(self._heap, (t, NORMAL, next(self._ids), nxt))
        else:
            nxt.granted = True
            nxt.succeed()

    def _expire(self, now: float) -> None:
        """Drop waiting requests older than ``max_wait_s`` (a topic's retention, a service's
        queue deadline): called when a server is about to take the next one, so a request
        is dropped exactly when it would otherwise have started late, and never served."""
        queue = self.queue
        while queue and now - queue[0].t_arr > self.max_wait_s:
            self._lose(queue.popleft(), now)

    def _lose(self, lost, now: float) -> None:
        """``lost`` waited too long: it leaves the queue as a drop (counted in ``drops`` and
        in ``expired``, which tells it from a full queue's)."""
        self.n -= 1
        self.drops += 1
        self.expired += 1
        if type(lost) is Customer:
            lost.t_now = now
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
            self._release(req, self.env.now)
        elif req in self.queue:
            self._integrate(self.env.now)
            self.queue.remove(req)
            self.n -= 1
        done = simpy.Event(self.env)
        done.succeed()
        return done


__all__ = ["Counted", "Customer", "Station", "StationRequest"]

"""Stations that do not serve first come first served: priorities, processor sharing, and
components sharing a host's cores.

:class:`PriorityStation` is a :class:`Station` whose queue orders by the flow's priority; the
FCFS hot path stays as it is (the priority queue is a different ``queue`` object, not a branch
in ``Station``).

Processor sharing runs on a :class:`HostCPU`: the jobs on it all progress at the same rate,
``speed * min(1, cores / jobs)``, so one number, the CPU's *virtual time* (the work each job
has received since the CPU was last idle), brings every job's remaining work up to date at
once. A job that arrives at virtual time ``v`` with work ``w`` is done when the virtual time
reaches ``v + w``: the jobs wait in a heap by that finish tag, and only the smallest one needs
a timer. The CPU is itself that timer (a :class:`BareEvent` on SimPy's heap); when the set
of jobs changes, the remaining work is brought up to date (the virtual time) and the next
departure ``t_now`` moves: earlier, and the CPU pushes itself at the new time; later, and the
entry already pushed wakes early and only pushes the next. An entry whose time is not
``t_now`` is stale (the time is the timer's version). A job's Customer is never scheduled by
the CPU: it is handed on, as if its own event had fired, when its work is done.

:class:`PSStation` (``Service(discipline="ps")``) owns a private CPU of ``servers`` cores;
:class:`HostedStation` (a component with ``host=...``) is a pool of threads whose work runs on
its host's shared CPU, whose own counters are reported as a row of the host's name.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush

import simpy

from capsim.engine.clock import NORMAL, BareEvent, bind, now
from capsim.engine.customer import LOWEST, Customer
from capsim.engine.station import Counted, Station
from capsim.engine.streams import Draws
from capsim.errors import ModelError

INF = math.inf


# -- priorities ------------------------------------------------------------------------------


class PriorityQueue:
    """Waiting requests, lowest ``prio`` first and FIFO within a priority: one deque per
    priority level, so both ends of a level are O(1) and retention can look at each level's
    oldest. Has what :class:`Station` uses of its ``deque`` (``append``, ``popleft``, ``len``,
    truth, ``in``, ``remove``); a user process's request has no priority and ranks LOWEST."""

    __slots__ = ("levels", "by_prio", "size")

    def __init__(self) -> None:
        self.levels: list[tuple[int, deque]] = []  # (priority, its waiting), sorted
        self.by_prio: dict[int, deque] = {}
        self.size = 0

    def append(self, item) -> None:
        prio = getattr(item, "prio", LOWEST)  # unset: a flow without one, or a user process
        level = self.by_prio.get(prio)
        if level is None:
            level = self.by_prio[prio] = deque()
            self.levels.append((prio, level))
            self.levels.sort(key=lambda pl: pl[0])
        level.append(item)
        self.size += 1

    def popleft(self):
        for _, level in self.levels:
            if level:
                self.size -= 1
                return level.popleft()
        raise IndexError("pop from an empty PriorityQueue")

    def remove(self, item) -> None:
        for _, level in self.levels:
            if item in level:
                level.remove(item)
                self.size -= 1
                return
        raise ValueError("PriorityQueue.remove(x): x not waiting")

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __contains__(self, item) -> bool:
        return any(item in level for _, level in self.levels)

    def __iter__(self):
        for _, level in self.levels:
            yield from level


class PriorityStation(Station):
    """Non-preemptive priority: a free server takes the waiting request whose flow has the
    lowest ``Customer.prio`` (FIFO within a priority). Everything else, capacity (all the
    waiting count), outages, retention and user processes, is :class:`Station`'s."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue = PriorityQueue()

    def arrive_holding(self, cust: Customer) -> None:
        """``Station.arrive_holding``, except that a dropped request keeps the callbacks its
        drop gave it (a closed user already thinking)."""
        drops = self.drops
        self.arrive(cust)
        if self.drops == drops:
            cust.callbacks = self._holding_callbacks

    def _expire(self, t: float) -> None:
        """Retention per level: a level's oldest waiting request is at its left."""
        limit = self.max_wait_s
        queue = self.queue
        for _, level in queue.levels:
            while level and t - level[0].t_arr > limit:
                lost = level.popleft()
                queue.size -= 1
                self._lose(lost, t)


# -- processor sharing -------------------------------------------------------------------------


class HostCPU(BareEvent, Counted):
    """``cores`` cores of ``speed`` shared by the jobs on them (egalitarian processor sharing):
    each job does ``speed * min(1, cores / jobs)`` core-seconds of work per second. When a
    job's work is done its Customer is handed on at that time (``t_now``) through its
    ``callbacks``, exactly as if its own service event had fired.

    The timer is armed lazily: a change that brings the next departure earlier pushes this
    event at the new time; one that puts it off pushes nothing, and the entry already pushed
    wakes early and re-arms. Pushed times therefore decrease, so the pending ones are a stack
    (``_armed``) and a firing entry is always its top.

    Counters are a station's (``schema.COUNTERS``), for the host's row: present = jobs on the
    CPU, busy = ``min(jobs, cores)`` (utilization = area_busy / (cores x time)), jobs arrive,
    start and complete at once (no waits), sojourn = time on the CPU."""

    __slots__ = ("callbacks", "t_now", "env", "name", "servers", "speed", "n", "_heap", "_ids",
                 "_tags", "_seq", "_v", "_rate", "_armed", "_callbacks", "t_last",
                 "window_start", "area_n", "area_busy", "wait_sum", "sojourn_sum", "arrivals",
                 "started", "completions", "drops", "capacity", "max_wait_s")

    def __init__(self, env: simpy.Environment, name: str, cores: int, speed: float = 1.0):
        self.env, self.name, self.servers, self.speed = env, name, cores, float(speed)
        self._heap, self._ids = bind(env)
        self._tags: list[tuple[float, int, Customer, float]] = []  # (finish tag, seq, job, t_in)
        self._seq = itertools.count()
        self.n = 0
        self._v = 0.0  # virtual time: work each job on the CPU has had (since it was idle)
        self._rate = 0.0  # work per second each job gets now
        self.t_now = INF  # the time of the next departure
        self._armed: list[float] = []  # times this event is pushed at, latest push (earliest) last
        self._callbacks = self.callbacks = (self._fire,)
        self.capacity, self.max_wait_s = INF, None
        self.t_last = now(env)
        self.area_n = self.area_busy = 0.0
        self.reset_stats()

    # -- statistics -----------------------------------------------------------------------
    def reset_stats(self) -> None:
        self._integrate(now(self.env))  # the virtual time must not lose the elapsed work
        super().reset_stats()

    def _integrate(self, t: float) -> None:
        """Bring the integrals and the virtual time up to ``t``."""
        dt = t - self.t_last
        n = self.n
        self.area_n += n * dt
        self.area_busy += (n if n < self.servers else self.servers) * dt
        self._v += self._rate * dt
        self.t_last = t

    # -- jobs -----------------------------------------------------------------------------
    def add(self, cust: Customer, work: float, t: float) -> None:
        """Start ``work`` core-seconds for ``cust`` at time ``t``."""
        n = self.n
        cores = self.servers
        dt = t - self.t_last
        self.area_n += n * dt
        self.area_busy += (n if n < cores else cores) * dt
        self.t_last = t
        v = self._v + self._rate * dt
        self._v = v
        n += 1
        self.n = n
        self.arrivals += 1
        self.started += 1
        tags = self._tags
        heappush(tags, (v + work, next(self._seq), cust, t))
        self._rate = rate = self.speed if n <= cores else self.speed * cores / n
        left = tags[0][0] - v  # < 0 only by rounding, for a job due now: never in the past
        self.t_now = due = t + left / rate if left > 0 else t
        armed = self._armed  # _arm, inline
        if not armed or armed[-1] > due:
            armed.append(due)
            heappush(self._heap, (due, NORMAL, next(self._ids), self))

    def set_cores(self, cores: int) -> None:
        """Change the core count (work in progress goes on at the new rate)."""
        t = now(self.env)
        self._integrate(t)
        self.servers = cores
        n = self.n
        if n:
            self._rate = rate = self.speed if n <= cores else self.speed * cores / n
            left = self._tags[0][0] - self._v
            self._arm(t + left / rate if left > 0 else t)

    def _arm(self, due: float) -> None:
        """The next departure is at ``due``: make sure an entry fires by then."""
        self.t_now = due
        armed = self._armed
        if not armed or armed[-1] > due:
            armed.append(due)
            heappush(self._heap, (due, NORMAL, next(self._ids), self))

    def _fire(self, _event) -> None:
        self.callbacks = self._callbacks  # SimPy cleared it; more entries of self may be due
        t = self._armed.pop()  # the earliest pending entry is the one firing
        if t != self.t_now:  # woke early: the departure was put off since this was pushed
            if self.n:
                self._arm(self.t_now)
            return
        n = self.n
        cores = self.servers
        dt = t - self.t_last
        self.area_n += n * dt
        self.area_busy += (n if n < cores else cores) * dt
        self.t_last = t
        tags = self._tags
        tag, _, cust, t_in = heappop(tags)
        self.completions += 1
        self.sojourn_sum += t - t_in
        n -= 1
        self.n = n
        if n:
            self._v = tag  # exactly the finished job's tag (no rounding drift)
            self._rate = rate = self.speed if n <= cores else self.speed * cores / n
            self.t_now = due = t + (tags[0][0] - tag) / rate
            armed = self._armed  # _arm, inline
            if not armed or armed[-1] > due:
                armed.append(due)
                heappush(self._heap, (due, NORMAL, next(self._ids), self))
        else:
            self._v = self._rate = 0.0
            self.t_now = INF
        cust.t_now = t
        cust.callbacks[0](cust)


class SharingStation(Counted):
    """A FIFO queue in front of at most ``limit`` requests admitted at once, whose work runs
    on a :class:`HostCPU`. Admitted requests are in ``active``; a holding one
    (``arrive_holding``, a synchronous call) keeps its slot after its work until
    ``_release``. Wait = time queued before admission; sojourn = arrival to release (wait
    included, as at :class:`Station`, so L = lambda W holds for the row).

    Has what the network reads of a :class:`Station` (``name``, ``servers``, ``n``,
    ``capacity``, ``drops``, ``arrive``, ``arrive_holding``, ``_release``, ``set_servers``,
    ``counters`` ...), not the user-process interface."""

    __slots__ = ("env", "name", "servers", "limit", "capacity", "on_drop", "queue", "active",
                 "n", "cpu", "_draws", "max_wait_s", "_callbacks", "_holding_callbacks",
                 "t_last", "window_start", "area_n", "area_busy", "wait_sum", "sojourn_sum",
                 "arrivals", "started", "completions", "drops")

    def __init__(self, env: simpy.Environment, name: str, servers: int, limit: float,
                 cpu: HostCPU, draws: Draws, queue_capacity: int | None = None,
                 on_drop: Callable[[Customer], None] | None = None) -> None:
        self.env, self.name, self.servers, self.limit, self.cpu = env, name, servers, limit, cpu
        self.capacity = INF if queue_capacity is None else queue_capacity
        self.on_drop = on_drop
        self.queue: deque = deque()
        self.active = 0  # admitted: working on the CPU or holding their slot
        self.n = 0  # present: admitted + waiting
        self._draws = draws
        self.max_wait_s = None
        self._callbacks = (self._done,)
        self._holding_callbacks = (self._held,)
        self.reset_stats()

    # -- statistics -----------------------------------------------------------------------
    def _tick(self, t: float) -> None:
        """The hot path's integration: present, and busy (= admitted: threads in use)."""
        dt = t - self.t_last
        self.area_n += self.n * dt
        self.area_busy += self.active * dt
        self.t_last = t

    def _integrate(self, t: float) -> None:
        self._tick(t)

    @property
    def busy(self) -> int:
        return self.active

    # -- requests -------------------------------------------------------------------------
    def arrive(self, cust: Customer) -> None:
        """Admitted at once if a slot is free (work drawn now), else queued (or dropped)."""
        t = cust.t_now
        self._tick(t)
        self.arrivals += 1
        cust.t_arr = t
        cust.callbacks = self._callbacks
        if self.active < self.limit and self.servers:
            self.active += 1
            self.n += 1
            self.started += 1
            draws = cust.draws or self._draws
            buf = draws.buf or draws.refill()
            self.cpu.add(cust, buf.pop() * cust.scale, t)
        elif len(self.queue) >= self.capacity:
            self.drops += 1
            self.on_drop(cust)
        else:
            self.queue.append(cust)
            self.n += 1

    def arrive_holding(self, cust: Customer) -> None:
        """Like ``arrive``, but the slot (not the CPU) stays with the request after its work,
        while it makes downstream calls, until ``_release``."""
        drops = self.drops
        self.arrive(cust)
        if self.drops == drops:  # a dropped one may already be on its way (a closed user)
            cust.callbacks = self._holding_callbacks

    def _done(self, cust: Customer) -> None:
        """Its work is done (the CPU set ``t_now``): free the slot and go on."""
        self._release(cust, cust.t_now)
        cust.scale = 1.0
        cust.draws = None
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)

    def _held(self, cust: Customer) -> None:
        """Work done; keep the slot and go on to the downstream calls."""
        cust.scale = 1.0
        cust.draws = None
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)

    def _release(self, cust, t: float) -> None:
        """The slot ``cust`` had is free at ``t``: count the visit, admit the next waiting."""
        self._tick(t)
        self.completions += 1
        self.sojourn_sum += t - cust.t_arr
        self.n -= 1
        queue = self.queue
        if queue and self.active <= self.limit and self.servers:
            self._start(queue.popleft(), t)  # the slot passes on
        else:
            self.active -= 1

    def _start(self, nxt: Customer, t: float) -> None:
        self.wait_sum += t - nxt.t_arr
        self.started += 1
        draws = nxt.draws or self._draws
        buf = draws.buf or draws.refill()
        self.cpu.add(nxt, buf.pop() * nxt.scale, t)

    def set_servers(self, servers: int) -> None:
        """Outages set 0: no admissions (work in progress finishes); back up, the waiting
        are admitted at once."""
        t = now(self.env)
        self._tick(t)
        self.servers = servers
        self._resized(servers)
        while self.queue and self.active < self.limit and self.servers:
            self.active += 1
            self._start(self.queue.popleft(), t)

    def _resized(self, servers: int) -> None:
        """What else ``servers`` sets (hosted: the thread limit)."""
        if servers:
            self.limit = servers

    # -- user processes -------------------------------------------------------------------
    def request(self):
        raise ModelError(f"{self.name}: request()/release() for user SimPy processes is not "
                         f"supported at a {self.kind} station (only fcfs and priority ones)")

    def release(self, _req=None):
        self.request()

    kind = "shared-CPU"


class PSStation(SharingStation):
    """Processor sharing over ``servers`` cores of its own, at most ``max_concurrency``
    requests at once (None: unlimited), the rest FIFO in front. ``busy`` is
    ``min(on the CPU, cores)``, the private CPU's, so utilization stays <= 1 and is the
    share of core time working."""

    __slots__ = ()
    kind = "processor-sharing"

    def __init__(self, env: simpy.Environment, name: str, cores: int,
                 max_concurrency: int | None, draws: Draws, queue_capacity: int | None = None,
                 on_drop: Callable[[Customer], None] | None = None) -> None:
        cpu = HostCPU(env, name, cores)
        limit = INF if max_concurrency is None else max_concurrency
        super().__init__(env, name, cores, limit, cpu, draws, queue_capacity, on_drop)

    def reset_stats(self) -> None:
        super().reset_stats()
        self.cpu.reset_stats()

    def _tick(self, t: float) -> None:
        dt = t - self.t_last
        self.area_n += self.n * dt
        self.t_last = t

    def _integrate(self, t: float) -> None:
        self._tick(t)
        self.cpu._integrate(t)
        self.area_busy = self.cpu.area_busy

    @property
    def busy(self) -> int:
        n, cores = self.cpu.n, self.cpu.servers
        return n if n < cores else cores

    def _resized(self, servers: int) -> None:
        if servers and servers != self.cpu.servers:
            self.cpu.set_cores(servers)


class HostedStation(SharingStation):
    """A component on a :class:`Host`: ``servers`` threads (requests worked on at once, the
    rest FIFO in front) whose work shares the host's cores (it takes ``work / speed`` on a
    core of its own). ``busy`` is threads in use; the host's row has the CPU's."""

    __slots__ = ()
    kind = "hosted"

    def __init__(self, env: simpy.Environment, name: str, threads: int, cpu: HostCPU,
                 draws: Draws, queue_capacity: int | None = None,
                 on_drop: Callable[[Customer], None] | None = None) -> None:
        super().__init__(env, name, threads, threads, cpu, draws, queue_capacity, on_drop)


# -- building ---------------------------------------------------------------------------------


def make_hosts(env: simpy.Environment, system) -> dict[str, HostCPU]:
    """The host CPUs of ``system`` by name."""
    return {h.name: HostCPU(env, h.name, h.cores, h.speed) for h in system.hosts}


def make_station(env: simpy.Environment, spec, draws: Draws, on_drop,
                 station_cls: type[Station], hosts: dict[str, HostCPU]):
    """The engine station for one ``StationSpec`` (``station_cls`` serves fcfs ones)."""
    if spec.host is not None:
        # on a host ``servers`` are the threads; max_concurrency (>= servers) cannot bind
        return HostedStation(env, spec.name, spec.servers, hosts[spec.host], draws,
                             spec.queue_capacity, on_drop)
    if spec.discipline == "ps":
        return PSStation(env, spec.name, spec.servers, spec.max_concurrency, draws,
                         spec.queue_capacity, on_drop)
    if spec.discipline not in ("fcfs", "priority"):
        raise ModelError(f"{spec.name}: unknown discipline {spec.discipline!r}")
    cls = PriorityStation if spec.discipline == "priority" else station_cls
    servers = math.inf if spec.servers is None else spec.servers
    return cls(env, spec.name, servers, draws, spec.queue_capacity, on_drop, spec.max_wait_s)


__all__ = ["HostCPU", "HostedStation", "PSStation", "PriorityQueue", "PriorityStation",
           "SharingStation", "make_hosts", "make_station"]

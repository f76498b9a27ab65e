"""Connection pools and bulkheads while a run goes on: slots a request takes before a step and
gives back after it, waiting for one (a pool) or failing at once (a bulkhead) when none is free.

``model.Pool`` and ``Service.bulkheads`` say what; a :class:`Limiter` per pool (a database's,
one per caller instance or one for the system) and per bulkhead (an instance's, one per
dependency) does it. The compiler asks :meth:`Limits.around` for the steps to put around each
step: :class:`PoolAcquire` or :class:`BulkheadEnter` before, :class:`Leave` after, and none
at all in a system without pools or bulkheads, which so pays nothing. A slot taken goes on
the request's ``held`` stack with the workers it holds, so a request turned away anywhere
gives it back with them (``Network.dropped``). Which instance makes a step is the station on
top of that stack (the worker holding the request), through the callers of a call's attempts.

Each limiter's counters (``LIMIT_COUNTERS``) are sampled with the stations';
``RunResult.pools()``, ``bulkheads()`` and ``pool_timeseries()`` read them.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING

import numpy as np

from capsim.engine.clock import NORMAL, BareEvent, bind, now
from capsim.engine.customer import Customer
from capsim.model import Database, Read, Service, Write
from capsim.model.pools import ENTRY, holders

if TYPE_CHECKING:
    import pandas as pd

    from capsim.engine.network import Network
    from capsim.engine.result import RunResult

LATE = NORMAL + 1  # a deadline runs after the other events of its instant (a release first)
# cumulative, except the last (the most in use since the previous sample)
LIMIT_COUNTERS = ("requests", "waited", "acquired", "failed", "wait_sum_s", "area_in_use",
                  "area_waiting", "peak_in_use")
POOL_COLUMNS = ("pool", "database", "caller", "size", "requests", "acquired", "waited",
                "exhausted_share", "mean_wait_s", "p99_wait_s", "timeouts", "timeout_share",
                "mean_in_use", "max_in_use", "utilization", "mean_waiting")
BULKHEAD_COLUMNS = ("bulkhead", "service", "instance", "dependency", "limit", "calls",
                    "admitted", "rejected", "rejected_share", "mean_in_use", "max_in_use")
ATTEMPT = "/attempt/0"  # the step an attempt of a watched call runs (Network.timed_call)


class Slot:
    """What a request's ``held`` stack holds besides workers: given back by ``_release``."""

    __slots__ = ()

    def _release(self, cust: Customer, now: float) -> None:
        raise NotImplementedError


class _Pass(Slot):
    """A bulkhead step made by no instance of its service: nothing to give back."""

    __slots__ = ()

    def _release(self, cust: Customer, now: float) -> None:
        pass


PASS = _Pass()


class _Deadline(BareEvent):
    """When a waiting request gives up (``max_wait_s`` after it asked), at ``t_now``."""

    __slots__ = ("callbacks", "entry", "t_now")

    def __init__(self, callbacks: tuple, entry: list, due: float) -> None:
        self.callbacks = callbacks
        self.entry = entry  # [request or None once served or gone, time it asked]
        self.t_now = due


class Limiter(Slot):
    """``size`` slots. A request takes one and goes on; when none is free it waits FIFO
    (a pool: for ``patience`` seconds at most, None for as long as it takes) or fails at once
    (a bulkhead, ``fail_fast``). A slot given back goes to the first request waiting."""

    __slots__ = ("net", "kind", "name", "target", "caller", "owner", "size", "patience",
                 "fail_fast", "in_use", "queue", "waiting", "requests", "waited", "acquired",
                 "failed", "wait_sum", "area_in_use", "area_waiting", "peak", "t_last",
                 "waits", "log", "_heap", "_ids", "_granted_cb", "_expired_cb")

    def __init__(self, net: Network, kind: str, name: str, target: str, caller: str,
                 size: int, patience: float | None, owner: str = "") -> None:
        self.net = net
        self._heap, self._ids = bind(net.env)
        self.kind, self.name, self.target, self.caller, self.owner = (kind, name, target,
                                                                      caller, owner)
        self.size, self.patience = size, patience
        self.fail_fast = kind == "bulkhead"
        self.in_use = self.waiting = self.peak = 0
        self.queue: deque[list] = deque()
        self.requests = self.waited = self.acquired = self.failed = 0
        self.wait_sum = self.area_in_use = self.area_waiting = 0.0
        self.t_last = now(net.env)
        self.waits: list[float] = []  # (time served, wait) pairs, flat, of the waits > 0
        self.log: list | None = None  # the run's trace, when it keeps one
        self._granted_cb = (self._granted,)
        self._expired_cb = (self._expired,)

    def _integrate(self, t: float) -> None:
        dt = t - self.t_last
        if dt:
            self.area_in_use += self.in_use * dt
            self.area_waiting += self.waiting * dt
            self.t_last = t

    def _hold(self, cust: Customer, t: float) -> None:
        held = cust.held
        if held is None:
            cust.held = [(self, t)]
        else:
            held.append((self, t))

    def take(self, cust: Customer) -> None:
        """``cust`` asks for a slot at its ``t_now``: it gets one and goes on, waits, or fails."""
        t = cust.t_now
        self._integrate(t)
        self.requests += 1
        log = self.log
        if self.in_use < self.size:
            self.in_use = in_use = self.in_use + 1
            if in_use > self.peak:
                self.peak = in_use
            self.acquired += 1
            if log is not None:
                log.append((t, cust.id, self.name, "acquire"))
            self._hold(cust, t)
            i = cust.idx + 1
            cust.idx = i
            cust.route[i](cust)
        elif self.fail_fast:
            self.failed += 1
            if log is not None:
                log.append((t, cust.id, self.name, "reject"))
            self.net.dropped(cust)
        else:
            self.waited += 1
            self.waiting += 1
            entry = [cust, t]
            self.queue.append(entry)
            if log is not None:
                log.append((t, cust.id, self.name, "wait"))
            if self.patience is not None:
                due = t + self.patience
                heappush(self._heap, (due, LATE, next(self._ids),
                                      _Deadline(self._expired_cb, entry, due)))

    def _release(self, cust: Customer, t: float) -> None:
        """``cust`` gives its slot back at ``t``: the first request waiting takes it."""
        self._integrate(t)
        log = self.log
        if log is not None:
            log.append((t, cust.id, self.name, "release"))
        queue = self.queue
        while queue:
            entry = queue.popleft()
            nxt = entry[0]
            if nxt is None:  # gave up waiting
                continue
            entry[0] = None
            self.waiting -= 1
            self.acquired += 1
            wait = t - entry[1]
            self.wait_sum += wait
            if wait > 0:
                self.waits += (t, wait)
            if log is not None:
                log.append((t, nxt.id, self.name, "acquire"))
            self._hold(nxt, t)
            # it goes on in an event of its own (a chain of hand-overs never recurses)
            nxt.t_now = t
            nxt.callbacks = self._granted_cb
            heappush(self._heap, (t, NORMAL, next(self._ids), nxt))
            return
        self.in_use -= 1

    @staticmethod
    def _granted(cust: Customer) -> None:
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)

    def _expired(self, deadline: _Deadline) -> None:
        entry = deadline.entry
        cust = entry[0]
        if cust is None:  # served before its deadline
            return
        entry[0] = None
        t = deadline.t_now
        self._integrate(t)
        self.waiting -= 1
        self.failed += 1
        queue = self.queue
        while queue and queue[0][0] is None:
            queue.popleft()
        if self.log is not None:
            self.log.append((t, cust.id, self.name, "timeout"))
        cust.t_now = t
        self.net.dropped(cust)  # frees what it holds; its call may retry

    def counters(self) -> tuple[float, ...]:
        """``LIMIT_COUNTERS`` now (the peak restarts from the slots in use: sampled once per
        sampling instant, so the peak over a window is the largest of its samples')."""
        self._integrate(now(self.net.env))
        peak, self.peak = self.peak, self.in_use
        return (self.requests, self.waited, self.acquired, self.failed, self.wait_sum,
                self.area_in_use, self.area_waiting, peak)

    def row(self) -> tuple:
        return (self.kind, self.name, self.target, self.caller, self.size, self.patience,
                self.owner)


def caller_of(cust: Customer):
    """The station whose worker makes the request's current step (None: the flow's client).
    An attempt of a watched call is made for its caller, who holds the worker."""
    while True:
        held = cust.held
        if held:
            for k in range(len(held) - 1, -1, -1):
                st = held[k][0]
                if not isinstance(st, Slot):
                    return st
        parent = cust.parent
        if parent is None:
            return None
        cust = parent[1]


class PoolAcquire:
    """Take a connection from the pool of whoever makes the query (one pool: that one)."""

    __slots__ = ("pools", "single")

    def __init__(self, pools: dict) -> None:
        self.pools = pools  # caller station (None: the flow's client) -> its pool
        self.single = next(iter(pools.values())) if len(pools) == 1 else None

    def __call__(self, cust: Customer) -> None:
        pool = self.single
        if pool is None:
            pool = self.pools[caller_of(cust)]
        pool.take(cust)


class BulkheadEnter:
    """Take a slot of the calling instance's bulkhead for this dependency; a step not made by
    an instance of the bulkhead's service passes (and gives back nothing)."""

    __slots__ = ("slots",)

    def __init__(self, slots: dict) -> None:
        self.slots = slots  # instance station -> its bulkhead

    def __call__(self, cust: Customer) -> None:
        lim = self.slots.get(caller_of(cust))
        if lim is not None:
            lim.take(cust)
            return
        held = cust.held
        if held is None:
            cust.held = [(PASS, cust.t_now)]
        else:
            held.append((PASS, cust.t_now))
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class Leave:
    """After the step: give back the slot taken before it (the top of ``held``)."""

    __slots__ = ()

    def __call__(self, cust: Customer) -> None:
        slot, _ = cust.held.pop()
        slot._release(cust, cust.t_now)
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


LEAVE = Leave()


class Limits:
    """A network's pools and bulkheads (``all``, pools first), and the steps around the
    steps they limit."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.all: list[Limiter] = []
        self.pools: dict[str, dict] = {}  # database -> caller station (or None) -> pool
        self.bulkheads: dict[str, dict] = {}  # dependency -> instance station -> bulkhead
        system = net.system
        for c in system.components:
            if isinstance(c, Database) and c.pool is not None:
                self.pools[c.name] = self._pools(c)
        for c in system.components:
            if not isinstance(c, Service):
                continue
            for dep, limit in c.bulkheads:
                table = self.bulkheads.setdefault(dep, {})
                for st in net.of(c.name):
                    table[st] = self._new("bulkhead", f"{st.name}/bulkhead:{dep}", dep,
                                          st.name, limit, None, c.name)

    def _new(self, *args) -> Limiter:
        lim = Limiter(self.net, *args)
        self.all.append(lim)
        return lim

    def _pools(self, db: Database) -> dict:
        net, pool = self.net, db.pool
        if pool.max_wait_s is not None:
            # a binding pool's patience is in the lowering (the twin's, and what makes the
            # run count the database as shedding load), but a query's wait for a connection
            # times out here: the boxes' own retention never fires
            for st in net.of(db.name):
                if st.max_wait_s is not None:
                    st.max_wait_s = math.inf
        if pool.per == "system":
            return {None: self._new("pool", f"{db.name}/pool", db.name, "all", pool.size,
                                    pool.max_wait_s)}
        table = {}
        for holder in holders(net.system, db.name):
            stations = [None] if holder is None else net.of(holder)
            for st in stations:
                caller = ENTRY if st is None else st.name
                table[st] = self._new("pool", f"{db.name}/pool@{caller}", db.name, caller,
                                      pool.size, pool.max_wait_s)
        return table

    def around(self, step, where: str) -> tuple[list, list]:
        """(steps before ``step``, steps after it): a bulkhead's slot outside (not again in
        each attempt of a watched call: the caller's worker is in the call), a pool's
        connection inside, for the query only."""
        if not self.all:
            return [], []
        name = getattr(step, "component", None)
        enter: list = []
        leave: list = []
        slots = self.bulkheads.get(name)
        if slots is not None and not where.endswith(ATTEMPT):
            enter.append(BulkheadEnter(slots))
            leave.append(LEAVE)
        pools = self.pools.get(name)
        if pools is not None and isinstance(step, (Read, Write)):
            enter.append(PoolAcquire(pools))
            leave.insert(0, LEAVE)
        return enter, leave

    def trace_into(self, log: list) -> None:
        """Log every acquire, wait, release, timeout and reject in the run's trace."""
        for lim in self.all:
            lim.log = log

    def run_fields(self, sampler) -> dict:
        """What ``RunResult`` keeps of them (nothing without any)."""
        if not self.all:
            return {}
        return {"limiters": tuple(lim.row() for lim in self.all),
                "limiter_samples": np.asarray(sampler.rows, dtype=float),
                "limiter_waits": tuple(np.asarray(lim.waits, dtype=float).reshape(-1, 2)
                                       for lim in self.all)}


# -- tables -----------------------------------------------------------------------------------

def _window(run: RunResult):
    """Over the measured window: counter deltas (L, 8), the peak in use, the span, start."""
    times = run.sample_times_s
    i0 = min(int(np.searchsorted(times, run.warmup_s - 1e-9)), times.size - 1)
    s = run.limiter_samples
    d = s[-1] - s[i0]
    peak = s[i0 + 1:, :, 7].max(axis=0) if s.shape[0] > i0 + 1 else s[-1, :, 7]
    return d, peak, float(times[-1] - times[i0]), float(times[i0])


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def pool_table(run: RunResult) -> pd.DataFrame:
    """``RunResult.pools()``."""
    import pandas as pd

    rows = []
    if run.limiters:
        d, peak, span, t0 = _window(run)
        for k, (kind, name, db, caller, size, _, _) in enumerate(run.limiters):
            if kind != "pool":
                continue
            req, waited, acq, failed, wsum, area, area_w, _ = d[k]
            waits = run.limiter_waits[k]
            waits = waits[waits[:, 0] >= t0, 1]
            n = int(acq)
            p99 = (float(np.percentile(np.concatenate([np.zeros(max(n - waits.size, 0)),
                                                       waits]), 99)) if n else math.nan)
            rows.append({
                "pool": name, "database": db, "caller": caller, "size": size,
                "requests": int(req), "acquired": n, "waited": int(waited),
                "exhausted_share": _ratio(waited, req), "mean_wait_s": _ratio(wsum, acq),
                "p99_wait_s": p99, "timeouts": int(failed),
                "timeout_share": _ratio(failed, req), "mean_in_use": area / span,
                "max_in_use": int(peak[k]), "utilization": area / span / size,
                "mean_waiting": area_w / span})
    return pd.DataFrame(rows, columns=list(POOL_COLUMNS))


def bulkhead_table(run: RunResult) -> pd.DataFrame:
    """``RunResult.bulkheads()``."""
    import pandas as pd

    rows = []
    if run.limiters:
        d, peak, span, _ = _window(run)
        for k, (kind, name, dep, instance, size, _, service) in enumerate(run.limiters):
            if kind != "bulkhead":
                continue
            req, _, acq, failed, _, area, _, _ = d[k]
            rows.append({
                "bulkhead": name, "service": service, "instance": instance,
                "dependency": dep, "limit": size, "calls": int(req), "admitted": int(acq),
                "rejected": int(failed), "rejected_share": _ratio(failed, req),
                "mean_in_use": area / span, "max_in_use": int(peak[k])})
    return pd.DataFrame(rows, columns=list(BULKHEAD_COLUMNS))


def limit_timeseries(run: RunResult) -> pd.DataFrame:
    """``RunResult.pool_timeseries()``: per sampling interval (the whole run) and pool or
    bulkhead, the mean and most slots in use, the mean requests waiting, and the requests,
    waits and failures (timeouts, rejections) in it."""
    import pandas as pd

    columns = ["time_s", "name", "metric", "value"]
    if not run.limiters:
        return pd.DataFrame(columns=columns)
    times = run.sample_times_s
    s = run.limiter_samples
    span = np.diff(times)[:, None]
    d = np.diff(s, axis=0)
    names = [r[1] for r in run.limiters]
    metrics = {"mean_in_use": d[:, :, 5] / span, "max_in_use": s[1:, :, 7],
               "mean_waiting": d[:, :, 6] / span, "requests": d[:, :, 0],
               "waited": d[:, :, 1], "failed": d[:, :, 3]}
    frames = [pd.DataFrame({"time_s": np.repeat(times[1:], len(names)),
                            "name": np.tile(names, times.size - 1), "metric": metric,
                            "value": values.ravel().astype(float)})
              for metric, values in metrics.items()]
    return pd.concat(frames, ignore_index=True)


__all__ = ["BULKHEAD_COLUMNS", "LIMIT_COUNTERS", "POOL_COLUMNS", "BulkheadEnter", "Leave",
           "Limiter", "Limits", "PoolAcquire", "bulkhead_table", "caller_of",
           "limit_timeseries", "pool_table"]

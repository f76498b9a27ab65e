"""The steps of a program that are not a station's service: each is called with the request
when it gets there, does its part, and calls the next step (or jumps).

Control steps (a branch, the end of a branch block), the end of a synchronous call, a call
with a timeout and retries, cache and database decisions, and publishing a message. A station
visit is the station's own ``arrive`` (or a :class:`~capsim.engine.balancer.Balancer`), and
``program.py`` lays the steps out in order.
"""

from __future__ import annotations

import itertools
from heapq import heappush
from typing import TYPE_CHECKING

from capsim.engine.balancer import Balancer
from capsim.engine.clock import NORMAL, BareEvent, bind
from capsim.engine.customer import Customer
from capsim.engine.stores import CacheState
from capsim.engine.streams import Choices, Draws, stream
from capsim.model import Database
from capsim.model import lowering as low

if TYPE_CHECKING:
    from capsim.engine.network import Network


class Jump:
    """Go to ``target`` (the end of a branch block)."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target = -1

    def __call__(self, cust: Customer) -> None:
        t = self.target
        cust.idx = t
        cust.route[t](cust)


class BranchChoice:
    """Pick an option by its probability and jump to the start of its block."""

    __slots__ = ("targets", "choices")

    def __init__(self, probabilities, rng) -> None:
        self.targets: list[int] = []
        self.choices = Choices(probabilities, rng)

    def __call__(self, cust: Customer) -> None:
        c = self.choices
        t = self.targets[(c.buf or c.refill()).pop()]
        cust.idx = t
        cust.route[t](cust)


class OwnService:
    """The next service is this step's own demand (``service_time`` on the step)."""

    __slots__ = ("draws",)

    def __init__(self, draws) -> None:
        self.draws = draws

    def __call__(self, cust: Customer) -> None:
        cust.draws = self.draws
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class RepeatStart:
    """Start of a repeated step (``visits``): draw how many times the block runs (a fixed
    count, or from a count distribution); none skips it."""

    __slots__ = ("fixed", "draws", "skip_to")

    def __init__(self, visits, rng) -> None:
        self.fixed = visits if isinstance(visits, int) else None
        self.draws = None if self.fixed is not None else Draws(visits, rng)
        self.skip_to = -1

    def __call__(self, cust: Customer) -> None:
        if self.fixed is not None:
            k = self.fixed
        else:
            d = self.draws
            k = int((d.buf or d.refill()).pop())
        if k <= 0:
            i = self.skip_to
        else:
            loops = getattr(cust, "loops", None)
            if loops is None:
                cust.loops = [k]
            else:
                loops.append(k)
            i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class RepeatEnd:
    """End of a repeated block: run it again while repeats are left."""

    __slots__ = ("block",)

    def __init__(self, block: int) -> None:
        self.block = block  # the index of the block's first step

    def __call__(self, cust: Customer) -> None:
        loops = cust.loops
        left = loops[-1] - 1
        if left:
            loops[-1] = left
            i = self.block
        else:
            loops.pop()
            i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class Release:
    """End of a synchronous call: give back the worker the caller held, then go on."""

    __slots__ = ()

    def __call__(self, cust: Customer) -> None:
        st, t_arr = cust.held.pop()
        cust.t_arr = t_arr
        st._release(cust, cust.t_now)
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class Deadline(BareEvent):
    """The deadline of one attempt (an event of its own, like Customer), due at ``t_now``."""

    __slots__ = ("callbacks", "attempt", "t_now")

    def __init__(self, callback, attempt: tuple, due: float) -> None:
        self.callbacks = (callback,)
        self.attempt = attempt  # (caller, ticket, tries)
        self.t_now = due


class TimedCall:
    """A call with a timeout and retries. The caller waits; each attempt is a child request
    running the call. A late attempt is abandoned but keeps using capacity downstream, as
    real abandoned requests do.

    Every attempt gets a unique ticket; the caller keeps the ticket it waits for, so a late
    answer (or a deadline) from an earlier attempt, or from an earlier call, is ignored.
    """

    tickets = itertools.count(1)

    def __init__(self, net: Network, step, after: int) -> None:
        self.net = net
        self._heap, self._ids = bind(net.env)
        self.timeout = step.timeout_s
        self.retries = step.retries
        self.after = after
        self.sub: tuple = ()
        self.calls = self.attempts = self.timeouts = self.failures = 0

    def __call__(self, cust: Customer) -> None:
        self.calls += 1
        self._try(cust, 1)

    def _try(self, caller: Customer, tries: int) -> None:
        self.attempts += 1
        ticket = next(self.tickets)
        caller.attempt = ticket
        now = caller.t_now
        child = Customer(self.sub, caller.rid, now, caller.id)
        child.parent = (self, caller, ticket, tries)
        prio = getattr(caller, "prio", None)
        if prio is not None:
            child.prio = prio
        if self.timeout is not None:
            due = now + self.timeout
            heappush(self._heap, (due, NORMAL, next(self._ids),
                                  Deadline(self._expired, (caller, ticket, tries), due)))
        child.route[0](child)

    def succeeded(self, child: Customer) -> None:
        _, caller, ticket, _ = child.parent
        if caller.attempt != ticket:
            return  # an abandoned attempt finished late: nobody is waiting for it
        caller.attempt = 0
        caller.t_now = child.t_now
        i = self.after
        caller.idx = i
        caller.route[i](caller)

    def _expired(self, timer: Deadline) -> None:
        caller, ticket, tries = timer.attempt
        if caller.attempt == ticket:
            caller.t_now = timer.t_now
            self.timeouts += 1
            self._retry_or_fail(caller, tries)

    def attempt_failed(self, child: Customer) -> None:
        _, caller, ticket, tries = child.parent
        if caller.attempt == ticket:
            caller.t_now = child.t_now
            self._retry_or_fail(caller, tries)

    def _retry_or_fail(self, caller: Customer, tries: int) -> None:
        if tries <= self.retries:
            self._try(caller, tries + 1)
        else:
            caller.attempt = 0
            self.failures += 1
            self.net.dropped(caller)

    def counters(self) -> tuple[float, ...]:
        return (self.calls, self.attempts, self.timeouts, self.failures)

    def more_counters(self) -> tuple[float, ...]:
        """The second probe of a call (``engine.resilience.ResilientCall`` fills it): calls
        failed fast by a breaker, retries a budget denied, retries sent, seconds of backoff.
        Without those, every attempt after a call's first is a retry sent at once."""
        return (0, 0, self.attempts - self.calls, 0.0)


class AttemptDone:
    """The last step of an attempt: tell the call it belongs to."""

    __slots__ = ()

    def __call__(self, child: Customer) -> None:
        child.parent[0].succeeded(child)


class CacheLookup:
    """After the cache's own service: on a hit jump past the miss steps, else run them."""

    __slots__ = ("cache", "skip_to")

    def __init__(self, cache: CacheState) -> None:
        self.cache = cache
        self.skip_to = -1

    def __call__(self, cust: Customer) -> None:
        i = self.skip_to if self.cache.lookup(cust.t_now) else cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class CacheInvalidate:
    """A write reaches the cache: its copy of the key is dropped (or goes stale)."""

    __slots__ = ("cache",)

    def __init__(self, cache: CacheState) -> None:
        self.cache = cache

    def __call__(self, cust: Customer) -> None:
        self.cache.write(cust.t_now)
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class DatabaseRead:
    """Pick the shard (by weight), then a replica (by policy; the primary if none)."""

    __slots__ = ("shards", "readers", "scale", "stats")

    def __init__(self, net: Network, comp: Database, index: bool, where: str,
                 service=None) -> None:
        self.stats = net.databases[comp.name]
        names = low.database_names(comp)
        self.shards = Choices(comp.weights, stream(net.root, f"shard:{where}"))
        self.readers = [
            Balancer([net.stations[n] for n in (shard[1:] or shard[:1])], comp.read_policy,
                     stream(net.root, f"replica:{where}/{s}"))
            for s, shard in enumerate(names)]
        self.scale = 1.0 if index else comp.scan_factor(service)
        for state in net.failovers.get(comp.name, ()):  # its roles change at a failover
            state.read_nodes.append(self)

    def __call__(self, cust: Customer) -> None:
        c = self.shards
        pick = self.readers[(c.buf or c.refill()).pop()] if len(self.readers) > 1 else \
            self.readers[0]
        cust.scale = self.scale
        wrote = cust.key
        if wrote is not None:
            stats = self.stats
            stats.after_write += 1
            lag = stats.lag
            if lag is not None and cust.t_now - wrote < (lag.buf or lag.refill()).pop():
                stats.stale += 1
        pick.choose().arrive(cust)


class WriteCommitted:
    """Remember when this request's write committed (later reads may meet a lagging
    replica: the lag counts from the commit, not from when the write was sent)."""

    __slots__ = ()

    def __call__(self, cust: Customer) -> None:
        cust.key = cust.t_now
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class PublishMessage:
    """Hand a message to the queue's consumers; the publisher goes on at once."""

    __slots__ = ("net", "queue", "count")

    def __init__(self, net: Network, queue: str) -> None:
        self.net, self.queue = net, queue
        self.count = 0

    def __call__(self, cust: Customer) -> None:
        self.count += 1
        program = self.net.async_programs[self.queue]
        msg = Customer(program, self.net.async_index[self.queue], cust.t_now, self.count)
        program[0](msg)
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)

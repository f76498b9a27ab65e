"""Load shedding and network faults while a run goes on: token-bucket rate limits (of a
component or of a flow), queue deadlines, lossy hops and latency spikes.

Each one is a step wrapped around the visits the model asks it for, and nothing else: a
system without them runs the same steps as before, with no cost per request.

* :class:`Limited` puts a :class:`TokenBucket` in front of a visit (a component's limit, for
  every call to it) or in front of a flow's first step (a flow's limit, at entry). A
  request that finds no whole token is turned away at once through ``Network.dropped``:
  the call it is an attempt of may retry, otherwise it is an error of its flow. The bucket
  has no randomness: it refills continuously from the times of the requests themselves.
* Queue deadlines are ``Station.max_wait_s``, the same drop a topic's retention makes: a
  request that has waited longer than ``queue_deadline_s`` when a worker would take it is
  dropped instead of served (``Station._expire``). :class:`DeadlineProbe` counts them.
* :class:`Lossy` loses a request entering a hop with the hop's ``loss`` probability. A lost
  request is never delivered: the timeout of the call watching it notices (a lost TCP
  request gets no answer); with no timeout watching it, it fails at once (as a reset
  connection), so that it is never silently stuck.
* :class:`SpikeGate` gives a request entering a hop during a :class:`~capsim.DelaySpike`
  ``factor`` x its latency draw + ``extra_s`` (the draw itself is the one it would have had:
  common random numbers with the run without the spike).

:class:`Shedding` builds them for a network and lists their counters (``probes``), which
``simulate`` samples like the stations' so ``RunResult.shedding()`` and ``rate_limits()`` cover
the measured window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from capsim.engine.customer import Customer
from capsim.engine.dynamics import schedule_spike
from capsim.engine.streams import BATCH, stream
from capsim.model import Delay, Service

if TYPE_CHECKING:
    from capsim.engine.network import Network
    from capsim.engine.station import Station
    from capsim.model import DelaySpike, RateLimit

# a request arriving when its token is due may see 1 - 1e-15 of a token after float
# rounding of the times: it gets the token
TOKEN_TOLERANCE = 1e-9

SHEDDING_COLUMNS = ("name", "scope", "kind", "status", "seen", "passed", "shed", "shed_ratio",
                    "shed_per_s")
LIMITER_COLUMNS = ("limiter", "scope", "rate_per_s", "burst", "offered", "admitted",
                   "rejected", "admitted_per_s", "rejected_ratio", "status")
STATUS = {"rate_limit": "429", "queue_deadline": "503", "loss": "lost"}


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept, full at time 0. ``take(t)`` spends
    a token at time ``t`` (times never go back) and says whether there was one."""

    __slots__ = ("name", "scope", "rate", "burst", "tokens", "t_last", "admitted", "rejected")

    def __init__(self, name: str, scope: str, limit: RateLimit) -> None:
        self.name, self.scope = name, scope
        self.rate, self.burst = float(limit.rate_per_s), float(limit.burst)
        self.tokens = self.burst
        self.t_last = 0.0
        self.admitted = self.rejected = 0

    def take(self, t: float) -> bool:
        tokens = self.tokens + (t - self.t_last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.t_last = t
        if tokens >= 1.0 - TOKEN_TOLERANCE:
            self.tokens = tokens - 1.0
            self.admitted += 1
            return True
        self.tokens = tokens
        self.rejected += 1
        return False

    def counters(self) -> tuple[int, int]:
        return (self.admitted, self.rejected)


class Limited:
    """A visit (or a flow's first step) behind a token bucket."""

    __slots__ = ("bucket", "visit", "reject")

    def __init__(self, bucket: TokenBucket, visit, reject) -> None:
        self.bucket, self.visit, self.reject = bucket, visit, reject

    def __call__(self, cust: Customer) -> None:
        if self.bucket.take(cust.t_now):
            self.visit(cust)
        else:
            self.reject(cust)


class Coin:
    """Buffered Bernoulli draws: True with probability ``p``."""

    __slots__ = ("p", "rng", "buf")

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        self.p, self.rng = p, rng
        self.buf: list[bool] = []

    def refill(self) -> list[bool]:
        self.buf.extend((self.rng.random(BATCH) < self.p)[::-1].tolist())
        return self.buf


class LossState:
    """One lossy hop: its coin and how many requests it passed and lost."""

    __slots__ = ("name", "coin", "passed", "lost")

    def __init__(self, name: str, coin: Coin) -> None:
        self.name, self.coin = name, coin
        self.passed = self.lost = 0

    def counters(self) -> tuple[int, int]:
        return (self.passed, self.lost)


class Lossy:
    """A visit to a lossy hop: a lost request goes to ``lose`` instead of the hop."""

    __slots__ = ("state", "visit", "net")

    def __init__(self, state: LossState, visit, net: Network) -> None:
        self.state, self.visit, self.net = state, visit, net

    def __call__(self, cust: Customer) -> None:
        state = self.state
        c = state.coin
        if (c.buf or c.refill()).pop():
            state.lost += 1
            lose(self.net, cust)
        else:
            state.passed += 1
            self.visit(cust)


def lose(net: Network, cust: Customer) -> None:
    """``cust`` was lost on the wire. Whatever workers it held are freed (its connection is
    gone); if a call with a timeout is waiting for it, nothing more happens: the timeout
    notices (and may retry). Otherwise it fails now, through ``Network.dropped``."""
    parent = cust.parent
    if parent is not None and getattr(parent[0], "timeout", None) is not None:
        held = cust.held
        while held:
            st, t_arr = held.pop()
            cust.t_arr = t_arr
            st._release(cust, cust.t_now)
        return
    net.dropped(cust)


class SpikeState:
    """The spikes of one hop now on: latency x the product of their factors + the sum of
    their extras."""

    __slots__ = ("on", "factor", "extra", "active")

    def __init__(self) -> None:
        self.on = False
        self.factor, self.extra = 1.0, 0.0
        self.active: list[DelaySpike] = []

    def begin(self, spike: DelaySpike) -> None:
        self.active.append(spike)
        self._update()

    def end(self, spike: DelaySpike) -> None:
        self.active.remove(spike)
        self._update()

    def _update(self) -> None:
        self.on = bool(self.active)
        self.factor = float(np.prod([s.factor for s in self.active])) if self.on else 1.0
        self.extra = float(sum(s.extra_s for s in self.active))


class Spiked:
    """The draws of one spiked visit: the next draw of ``base``, stretched. Its ``buf`` is
    always empty, so the station calls ``refill`` for the one value it needs."""

    __slots__ = ("base", "factor", "extra", "buf")

    def __init__(self, base, factor: float, extra: float) -> None:
        self.base, self.factor, self.extra = base, factor, extra
        self.buf: list[float] = []

    def refill(self) -> list[float]:
        base = self.base
        return [(base.buf or base.refill()).pop() * self.factor + self.extra]


class SpikeGate:
    """A visit to a hop that has spikes: during one, the request's latency is spiked."""

    __slots__ = ("state", "station", "visit")

    def __init__(self, state: SpikeState, station: Station, visit) -> None:
        self.state, self.station, self.visit = state, station, visit

    def __call__(self, cust: Customer) -> None:
        state = self.state
        if state.on:
            base = cust.draws
            cust.draws = Spiked(self.station._draws if base is None else base, state.factor,
                                state.extra)
        self.visit(cust)


class DeadlineProbe:
    """A service's queue deadline: requests its stations started and those they dropped
    for waiting too long."""

    __slots__ = ("name", "stations")

    def __init__(self, name: str, stations: list[Station]) -> None:
        self.name, self.stations = name, stations

    def counters(self) -> tuple[int, int]:
        return (sum(st.started for st in self.stations),
                sum(st.expired for st in self.stations))


class Shedding:
    """The rate limits, deadlines, lossy hops and spikes of one network."""

    def __init__(self, net: Network) -> None:
        self.net = net
        system = net.system
        self.buckets: dict[str, TokenBucket] = {}
        self.flow_buckets: dict[str, TokenBucket] = {}
        self.losses: dict[str, LossState] = {}
        self.spikes: dict[str, SpikeState] = {}
        self.deadlines: dict[str, DeadlineProbe] = {}
        for c in system.components:
            if isinstance(c, Service) and c.rate_limit is not None:
                self.buckets[c.name] = TokenBucket(c.name, "component", c.rate_limit)
            if isinstance(c, Service) and c.queue_deadline_s is not None:
                self.deadlines[c.name] = DeadlineProbe(c.name, net.of(c.name))
            if isinstance(c, Delay) and c.loss > 0:
                self.losses[c.name] = LossState(c.name, Coin(c.loss,
                                                             stream(net.root, f"loss:{c.name}")))
        for f in system.flows:
            if f.rate_limit is not None:
                self.flow_buckets[f.name] = TokenBucket(f.name, "flow", f.rate_limit)
        for spike in system.spikes:
            state = self.spikes.setdefault(spike.component, SpikeState())
            schedule_spike(net, spike, state)

    def visit(self, comp, visit):
        """``visit`` (a call's station step) with the component's spikes, loss and limit
        around it, outermost first: a rejected request never reaches the wire."""
        name = comp.name
        if name in self.spikes:
            visit = SpikeGate(self.spikes[name], self.net.of(name)[0], visit)
        if name in self.losses:
            visit = Lossy(self.losses[name], visit, self.net)
        if name in self.buckets:
            visit = Limited(self.buckets[name], visit, self.net.dropped)
        return visit

    def entry(self, flow, program: tuple) -> tuple:
        """A flow's program with its rate limit in front of its first step (only requests
        start there: no step jumps back to 0)."""
        bucket = self.flow_buckets.get(flow.name)
        if bucket is None:
            return program
        return (Limited(bucket, program[0], self.net.dropped), *program[1:])

    def probes(self) -> list:
        """Everything with shedding counters, in the order of ``points``."""
        return [*self.buckets.values(), *self.flow_buckets.values(),
                *self.deadlines.values(), *self.losses.values()]

    def points(self) -> tuple[tuple, ...]:
        """Per probe: (name, scope, kind, status, rate_per_s, burst); scope is "component"
        or "flow", rate and burst NaN when it is not a limiter."""
        nan = float("nan")
        out = [(b.name, b.scope, "rate_limit", STATUS["rate_limit"], b.rate, b.burst)
               for b in (*self.buckets.values(), *self.flow_buckets.values())]
        out += [(d.name, "component", "queue_deadline", STATUS["queue_deadline"], nan, nan)
                for d in self.deadlines.values()]
        out += [(s.name, "component", "loss", STATUS["loss"], nan, nan)
                for s in self.losses.values()]
        return tuple(out)


__all__ = ["LIMITER_COLUMNS", "SHEDDING_COLUMNS", "Coin", "DeadlineProbe", "Limited", "Lossy",
           "Shedding", "SpikeGate", "TokenBucket", "lose"]

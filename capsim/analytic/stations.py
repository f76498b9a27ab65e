"""The stations the twin solves and the steady state of one of them.

A system lowers to queueing stations (``System.stations()``); ``build_stations`` keeps what the
formulas need of each. ``station_state`` solves one station at a given arrival rate and
effective service (M/M/c, Allen-Cunneen G/G/c, M/M/c/K, infinite-server delays), with the
shape of its wait for the percentile grid. The small row helpers are shared by the open and
closed solvers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from capsim.analytic import components as comp
from capsim.analytic.pools import patience_state
from capsim.analytic.queues import erlang_c, ggc_wait, mmc, mmck, mmck_probabilities
from capsim.dists import Distribution, Exponential
from capsim.model import System, Visit
from capsim.model import lowering as low

__all__ = ["Station", "StationState", "build_stations", "expected_count", "plain_row",
           "prio_of", "station_state", "survival", "visit_mean", "visit_variance", "visit_wait"]

INF = math.inf
NAN = math.nan


@dataclass(frozen=True)
class Station:
    name: str
    servers: int | None  # None: a delay (infinite servers)
    service: Distribution
    queue_capacity: int | None
    max_wait_s: float | None = None
    split: int = 1  # a round-robin pick among this many stations feeds it
    consumer: bool = False  # a MessageQueue consumer (visited by messages, not requests)
    component: str = ""  # the component it belongs to (an instance, a replica, a shard part)
    discipline: str = "fcfs"  # fcfs, ps (processor sharing over ``servers`` cores), priority
    max_concurrency: int | None = None  # ps: most requests sharing the cores at once
    host: str | None = None  # on a Host: ``servers`` are threads whose work runs on its cores

    @property
    def delay(self) -> bool:
        return self.servers is None

    @property
    def ps(self) -> bool:
        """Processor sharing over cores of its own (a hosted station shares its host's)."""
        return self.discipline == "ps" and self.host is None and self.servers is not None

    @property
    def priority(self) -> bool:
        return self.discipline == "priority" and self.host is None and self.servers is not None


@dataclass
class StationState:
    """Steady state of one station per visit, plus its wait distribution for the grid.

    ``w`` is the response per visit as the station sees it (a holder's includes the calls it
    makes); a route adds ``wq + scale x mean service`` per visit instead.
    """

    arrival_rate: float
    offered_load: float
    utilization: float
    throughput: float
    lq: float
    ls: float
    wq: float
    w: float
    blocking: float
    stable: bool
    wait_cdf: Callable[[np.ndarray], np.ndarray] | None = None
    wait_var: float = 0.0
    own_load: float = 0.0  # offered load of the station's own service (holding excluded)
    exact: bool = False
    holds: bool = False
    mixed: bool = False
    # a visit's own service takes ``stretch`` times its length here: processor sharing (the
    # mean slowdown), or a host's cores shared with other stations (slowdown / speed)
    stretch: float = 1.0
    # and the stretch's own randomness: a visit's time is taken as own service x a gamma
    # factor of mean ``stretch`` and this scv (M/M/1-PS's second moment), for percentiles
    stretch_scv: float = 0.0
    # priority stations: per priority class (a flow's priority, None last), its
    # (mean wait, wait variance, wait cdf); the station's own ``wq`` is their rate-weighted mean
    classes: dict | None = None
    # the share of the requests reaching the station that its component's rate limit or
    # loss lets in (``analytic.shedding``); ``arrival_rate`` counts only those
    gate: float = 1.0


def build_stations(system: System) -> dict[str, Station]:
    split = comp.round_robin_groups(system)
    consumers = {n for q in comp.message_queues(system) for n in low.consumer_names(q)}
    return {st.name: Station(st.name, st.servers, st.service_time, st.queue_capacity,
                              st.max_wait_s, split.get(st.name, 1), st.name in consumers,
                              st.component, st.discipline, st.max_concurrency, st.host)
            for st in system.stations()}


def prio_of(visit: Visit):
    """The priority class of a visit (its flow's priority; None: no priority, served last).
    Only visits to priority stations carry one (``disciplines.ClassVisit``)."""
    return getattr(visit, "prio", None)


def visit_wait(visit: Visit, state: StationState) -> tuple:
    """(mean wait, wait variance, wait cdf) this visit sees: its priority class's at a
    priority station, the station's otherwise."""
    if state.classes:
        got = state.classes.get(prio_of(visit))
        if got is not None:
            return got
    return state.wq, state.wait_var, state.wait_cdf


def visit_mean(visit: Visit, stations, states) -> float:
    """Mean time one visit adds to its route: the wait plus its own scaled (and, under
    processor sharing or on a shared host, stretched) service."""
    own = visit.service_of(stations[visit.component].service)
    s = states[visit.component]
    return visit_wait(visit, s)[0] + visit.scale * own.mean * s.stretch


def visit_variance(visit: Visit, stations, states) -> float:
    st, s = stations[visit.component], states[visit.component]
    return visit_wait(visit, s)[1] + (visit.scale * s.stretch) ** 2 * visit.service_of(
        st.service).variance


def station_state(st: Station, lk: float, eff, markov: bool, ca2: float | None,
                   holds: bool, mixed: bool) -> StationState | None:
    """One station's state at arrival rate ``lk`` with effective service ``eff``.

    ``ca2=None`` asks only for what does not need the arrival scv (delays, finite queues,
    overload); the others get ``None`` back and are solved once the scv is known.
    """
    m, cs2, own, moments, _ = eff
    if st.delay:
        return StationState(lk, 0.0, 0.0, lk, 0.0, lk * m, 0.0, m, 0.0, math.isfinite(m), _no_wait,
                      0.0, 0.0, True, holds, mixed)
    c = st.servers
    offered, own_load = lk * m / c, lk * own / c
    if st.max_wait_s is not None and st.queue_capacity is None:  # patience: M/M/c + D
        return patience_state(st, lk, eff, markov, holds, mixed)
    if not math.isfinite(m) or (st.queue_capacity is None and offered >= 1.0):
        thr = c / m if math.isfinite(m) else 0.0
        return StationState(lk, offered, 1.0, thr, INF, INF, INF, INF, 0.0, False, None, 0.0,
                      own_load, False, holds, mixed)
    exp_service = isinstance(st.service, Exponential) and not holds and not mixed
    if st.queue_capacity is not None:
        r = mmck(lk, m, c, st.queue_capacity)
        cdf, var = _mmck_wait(st, lk, m)
        return StationState(lk, offered, r.utilization, r.throughput, r.mean_queue_length,
                      r.mean_in_system, r.mean_wait, r.mean_response, r.blocking, True, cdf, var,
                      own_load, markov and exp_service, holds, mixed)
    if ca2 is None:
        return None
    exact = markov and exp_service and abs(ca2 - 1.0) < 1e-9
    if exact:
        r = mmc(lk, m, c)
        wq, p_wait = r.mean_wait, r.p_wait
    else:
        wq = ggc_wait(lk, m, c, ca2, cs2)
        if st.split > 1:
            wq *= _klb(offered, ca2, cs2)
        p_wait = erlang_c(c, lk * m)
    tail = wq / p_wait if p_wait > 0 else 0.0
    cdf, var = _exp_wait_cdf(p_wait, tail), p_wait * 2 * tail**2 - wq**2
    if mixed and moments is not None and p_wait > 0 and not exact:
        cdf, var = _mixture_wait(p_wait, tail, offered, moments)
    return StationState(lk, offered, offered, lk, lk * wq, lk * (wq + m), wq, wq + m, 0.0, True,
                  cdf, var, own_load, exact, holds, mixed)


def _exp_wait_cdf(p_wait: float, tail_mean: float) -> Callable[[np.ndarray], np.ndarray]:
    """Atom ``1 - p_wait`` at 0 plus an exponential tail: the M/M/c wait, exactly."""
    if p_wait <= 0 or tail_mean <= 0:
        return lambda x: np.ones_like(x)
    return lambda x: 1.0 - p_wait * np.exp(-x / tail_mean)


def _mmck_wait(st: Station, lam: float, mean: float) -> tuple[Callable, float]:
    """Wait of an accepted M/M/c/K request: Erlang(n-c+1, c mu) if it finds n >= c (PASTA).

    ``P(W > x) = sum_i Poisson(i; c mu x) T_i`` with ``T_i = P(more than i stages)``: one
    pass over the stages, in logs so that long queues (c mu x > 700) do not underflow.
    """
    p = mmck_probabilities(lam, mean, st.servers, st.queue_capacity)
    accepted = p[:-1] / max(1.0 - p[-1], 1e-300)
    rate = st.servers / mean
    probs = accepted[st.servers:]  # P(k stages), k = 1..K-c
    stages = np.arange(1, probs.size + 1)
    m1 = float(np.sum(probs * stages / rate))
    m2 = float(np.sum(probs * stages * (stages + 1) / rate**2))
    tails = np.cumsum(probs[::-1])[::-1]  # tails[i] = P(stages > i)
    last = int(np.flatnonzero(tails > 1e-16)[-1]) + 1 if np.any(tails > 1e-16) else 0

    def cdf(x: np.ndarray) -> np.ndarray:
        rx = rate * np.maximum(x, 1e-300)
        log_rx = np.log(rx)
        log_term = -rx
        sf = np.zeros_like(rx)
        for i in range(last):
            if i:
                log_term = log_term + log_rx - math.log(i)
            sf += tails[i] * np.exp(log_term)
        return 1.0 - np.minimum(sf, 1.0)

    return cdf, max(m2 - m1**2, 0.0)


def _no_wait(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x)


def _klb(rho: float, ca2: float, cs2: float) -> float:
    """Kraemer & Langenbach-Belz's factor for smoother-than-Poisson arrivals (QNA, ca2 < 1):
    Allen-Cunneen overstates the wait behind a round-robin split (Erlang-like gaps)."""
    if ca2 >= 1.0 or rho <= 0:
        return 1.0
    return math.exp(-2.0 * (1.0 - rho) * (1.0 - ca2) ** 2 / (3.0 * rho * (ca2 + cs2)))


def _mixture_wait(p_wait: float, tail: float, rho: float, moments: tuple[float, ...]):
    """Wait of a station whose service is a mixture (index reads and scans).

    The wait given a wait keeps the mean the station's formula gives (``tail``) and takes its
    shape from an M/G/1 at the same utilization: Takacs' recursion gives the first three
    moments of that wait from the service moments (normalised by the mean), and a two-phase
    hyperexponential matches all three (exact for M/H2/1, where the conditional wait is such
    a mixture). A one-moment exponential tail would understate the p95/p99 that the rare slow
    visits cause. Falls back to the exponential when no such fit exists (scv <= 1).
    """
    w = [1.0]
    for k in (1, 2, 3):
        w.append(rho / (1.0 - rho) * sum(math.comb(k, i) * moments[i + 1] / (i + 1) * w[k - i]
                                         for i in range(1, k + 1)))
    c1 = w[1] / rho
    a1, a2, a3 = tail, w[2] / rho / c1**2 * tail**2 / 2.0, w[3] / rho / c1**3 * tail**3 / 6.0
    exp = _exp_wait_cdf(p_wait, tail), p_wait * 2 * tail**2 - (p_wait * tail) ** 2
    spread = a2 - a1 * a1
    if spread <= 0:
        return exp
    # a two-point law {x, y} with weights (q, 1 - q) has moments a1, a2, a3 (a_k = E[X^k]/k!)
    total = (a3 - a1 * a2) / spread
    prod = total * a1 - a2
    disc = total * total - 4.0 * prod
    if disc <= 0 or prod <= 0:
        return exp
    x, y = (total + math.sqrt(disc)) / 2.0, (total - math.sqrt(disc)) / 2.0
    q = (a1 - y) / (x - y)
    if not (0.0 < q < 1.0 and y > 0):
        return exp

    def cdf(t: np.ndarray) -> np.ndarray:
        return 1.0 - p_wait * (q * np.exp(-t / x) + (1.0 - q) * np.exp(-t / y))

    return cdf, p_wait * 2.0 * a2 - (p_wait * tail) ** 2


def plain_row(row: tuple) -> tuple:
    """Python scalars only, so rows pickle small and compare without numpy types."""
    return tuple(v if isinstance(v, (str, bool, int)) else float(v) for v in row)


def survival(calls, states) -> float:
    out = 1.0
    for call in calls:
        s = states[call.component]
        out *= s.gate * (1.0 - s.blocking)
    return out


def expected_count(rate: float, duration_s: float | None, *, can_drop: bool) -> float:
    if not can_drop:
        return 0.0
    return NAN if duration_s is None else rate * duration_s

"""The analytic twin of a whole system: ``solve(system, workload) -> AnalyticResult``.

The system is solved as the queueing stations it lowers to (``System.stations()``: a service's
instances, a database's primaries and replicas per shard, a topic's consumers, delays), under
the same names as the simulation's ``components()`` rows.

Open workloads are solved station by station (a queueing network decomposition):

* arrival rate per station ``lambda_k = lambda x visits_k`` from the routes (branches, hit
  ratios, shard and replica choice expanded with their probabilities), thinned by drops
  upstream;
* a delay (``Delay``, a CDN edge, a broker's ack) is an infinite-server station: no wait, its
  response is its latency (exact for any distribution; utilization 0, as the engine reports);
* an unbounded station with Poisson arrivals and exponential service everywhere (a product-form
  network) uses exact M/M/c means; otherwise Allen-Cunneen G/G/c with the arrival scv carried
  along the routes by Whitt's QNA (superposition, splitting, departure scv): an approximation.
  A station visited with several service scales (an unindexed read is ``table_rows /
  scan_rows_per_s`` index lookups) has a mixture service time: its mean and scv enter the
  formulas, each visit's response is the wait plus its own scaled service, and the wait's
  shape (for percentiles) is a three-moment hyperexponential from Takacs' M/G/1 moments;
* a synchronous call made while holding the caller's worker (``Call(..., calls=[...])``) keeps
  that worker busy for its own service plus the responses of the calls it makes: the holder's
  effective service time (mean and scv) includes them, solved as a fixed point (layered
  queueing, method of surrogates: an approximation). Its utilization and offered load include
  the holding time, so a slow downstream saturates the upstream pool. The calls are treated as
  open traffic: a small holding pool, which never has more calls in flight than workers,
  throttles its downstream more than the twin says (downstream waits overstated), and a
  finite queue behind a pool smaller than its room never drops;
* a round-robin pick among ``n`` stations sends each one every n-th request (arrival scv
  divided by ``n``, Kraemer & Langenbach-Belz's correction for the smoother arrivals);
  least-connections and power-of-two picks are taken as even random splits;
* a finite ``queue_capacity`` uses M/M/c/K (exact for exponential service, an approximation
  otherwise), solved as a fixed point because drops upstream thin the load downstream;
* a MessageQueue's consumers are single-server stations fed by their partitions' share of the
  published messages (partition affinity: not a pooled M/M/K). Each queue has a latency row
  ``"<queue> (async)"`` (message end-to-end time at the consumer) that the ``"all"`` row does
  not pool; an overloaded consumer makes only that row unstable. Retention is M/M/1 with
  deterministic impatience (see ``components``);
* latency percentiles convolve per-station sojourn times on a grid, assuming the stations are
  independent: exact for one M/M/c station and for M/M/1 tandems (Reich), an approximation
  elsewhere.

Closed workloads use exact MVA (see ``mva``) with delays as infinite-server demand and the
consumers as open stations fed at the MVA throughput; they are always stable (consumers
aside), and their request percentiles are NaN because MVA yields means only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize

from capsim.analytic import components as comp
from capsim.analytic.mva import Bounds, bounds, mva
from capsim.analytic.queues import erlang_c, ggc_wait, mmc, mmck, mmck_probabilities
from capsim.dists import Distribution, Exponential
from capsim.errors import ModelError
from capsim.model import (
    Cache,
    Call,
    ClosedWorkload,
    Database,
    OpenWorkload,
    Route,
    System,
    Visit,
)
from capsim.model import lowering as low
from capsim.model.flows import _walk
from capsim.model.workload import PEAK_WINDOW_S
from capsim.schema import ALL_FLOWS, COMPONENT_COLUMNS, LATENCY_COLUMNS, SIMULATION_ONLY

# the twin's rows: the shared columns less what only a run can know
_TWIN_LATENCY = [c for c in LATENCY_COLUMNS if c not in SIMULATION_ONLY]
_TWIN_COMPONENTS = [c for c in COMPONENT_COLUMNS if c not in SIMULATION_ONLY]

__all__ = ["AnalyticResult", "solve"]

NAN = math.nan
INF = math.inf
QUANTILES = (0.50, 0.95, 0.99)
GRID_POINTS = 1 << 13  # cells per route grid: M/M/1 p99 within ~1e-5 relative (midpoint rule)


@dataclass(frozen=True)
class AnalyticResult:
    """The twin's answer, laid out like a simulation run (``latency()``, ``components()``).

    Frozen and picklable (rows are plain tuples). ``notes`` says which numbers are exact and
    which approximate for this model.
    """

    system: str
    workload: str
    closed: bool
    latency_rows: tuple[tuple, ...]
    component_rows: tuple[tuple, ...]
    bottleneck: str
    unstable_components: tuple[str, ...]
    notes: tuple[str, ...]
    closed_bounds: Bounds | None = None

    @property
    def stable(self) -> bool:
        """True when every component and every flow has a steady state."""
        return not self.unstable_components and all(r[-1] for r in self.latency_rows)

    def latency(self) -> pd.DataFrame:
        """Per flow, then one ``"<queue> (async)"`` row per MessageQueue, then ``ALL_FLOWS``
        (the request flows pooled) when there are several flows: schema.LATENCY_COLUMNS,
        count = NaN."""
        df = pd.DataFrame(list(self.latency_rows), columns=_TWIN_LATENCY)
        return df.astype({"stable": bool}).reindex(columns=LATENCY_COLUMNS)

    def components(self) -> pd.DataFrame:
        """Per component: schema.COMPONENT_COLUMNS (``instability`` from the offered load)."""
        df = pd.DataFrame(list(self.component_rows), columns=_TWIN_COMPONENTS)
        df = df.astype({"stable": bool})
        df["instability"] = [
            "" if ok else f"offered load {rho:.2f} >= 1 (twin)"
            for ok, rho in zip(df["stable"], df["offered_load"], strict=True)]
        if np.isfinite(df["servers"]).all():  # a delay has servers = inf, as in the engine
            df = df.astype({"servers": int})
        return df

    def bounds(self) -> Bounds:
        """Asymptotic bounds (throughput ceiling, response floor, knee N*); closed only."""
        if self.closed_bounds is None:
            raise ValueError("bounds() needs a ClosedWorkload; an open workload's ceiling is the "
                             "bottleneck's capacity (components().offered_load reaching 1)")
        return self.closed_bounds

    def summary(self) -> str:
        """A few lines for a person: stability, bottleneck, tables, and the caveats."""
        state = "stable" if self.stable else (
            "UNSTABLE (no steady state at: " + ", ".join(self.unstable_components or ("?",)) + ")")
        lines = [f"Analytic twin of {self.system!r} under {self.workload}: {state}",
                 f"bottleneck: {self.bottleneck}"]
        if self.closed_bounds is not None:
            b = self.closed_bounds
            lines.append(f"bounds: X <= {b.throughput_upper:.6g}/s, R >= {b.response_lower:.6g} s,"
                         f" N* = {b.n_star:.4g}")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            lines += ["", self.latency().to_string(index=False), "",
                      self.components().to_string(index=False)]
        lines += ["", *(f"note: {n}" for n in self.notes)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        flows = "; ".join(f"{r[0]}: mean={r[3]:.4g}s p99={r[6]:.4g}s" for r in self.latency_rows)
        return (f"AnalyticResult(system={self.system!r}, workload={self.workload}, "
                f"stable={self.stable}, bottleneck={self.bottleneck!r}, {flows})")


@dataclass(frozen=True)
class _Station:
    name: str
    servers: int | None  # None: a delay (infinite servers)
    service: Distribution
    queue_capacity: int | None
    max_wait_s: float | None = None
    split: int = 1  # a round-robin pick among this many stations feeds it
    consumer: bool = False  # a MessageQueue consumer (visited by messages, not requests)

    @property
    def delay(self) -> bool:
        return self.servers is None


@dataclass
class _State:
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


def solve(system: System, workload: OpenWorkload | ClosedWorkload, *,
          duration_s: float | None = None) -> AnalyticResult:
    """Solve ``system`` under ``workload`` analytically.

    ``duration_s`` turns drop and error rates into expected counts over a window of that
    length (the simulation's ``drops``/``errors``); without it they are NaN where drops can
    happen and 0 where they cannot.
    """
    if not isinstance(system, System):
        raise ModelError(f"solve: system must be a System, got {system!r}")
    if duration_s is not None and not (duration_s > 0 and math.isfinite(duration_s)):
        raise ModelError(f"solve.duration_s: must be > 0, got {duration_s!r}")
    stations = _stations(system)
    if isinstance(workload, OpenWorkload):
        return _solve_open(system, workload, stations, duration_s)
    if isinstance(workload, ClosedWorkload):
        return _solve_closed(system, workload, stations, duration_s)
    raise ModelError(f"solve: workload must be OpenWorkload or ClosedWorkload, got {workload!r}")


def _stations(system: System) -> dict[str, _Station]:
    split = comp.round_robin_groups(system)
    consumers = {n for q in comp.message_queues(system) for n in low.consumer_names(q)}
    return {st.name: _Station(st.name, st.servers, st.service_time, st.queue_capacity,
                              st.max_wait_s, split.get(st.name, 1), st.name in consumers)
            for st in system.stations()}


def _contribution(visit: Visit, stations, states) -> float:
    """Mean time one visit adds to its route: the wait plus its own scaled service."""
    return states[visit.component].wq + visit.scale * stations[visit.component].service.mean


def _contribution_var(visit: Visit, stations, states) -> float:
    st = stations[visit.component]
    return states[visit.component].wait_var + visit.scale**2 * st.service.variance


def _rel_change(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return 1.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


# ---------------------------------------------------------------------------- open workloads


def _route_plan(routes: tuple[Route, ...], lam: float):
    """Per route: its rate and, per visit, (station, class) with class = (scale, held visits)."""
    plan = []
    for route in routes:
        calls = route.calls
        visits = [(v.component, (v.scale, tuple((h.component, h.scale)
                                                for h in calls[i + 1:i + 1 + v.holds])))
                  for i, v in enumerate(calls)]
        plan.append((lam * route.probability, visits))
    return plan


def _flow_rates(plan, blocking: dict[str, float]):
    """Arrival rate per station, rate on each hop (j -> k, whether j holds), first-visit rate
    per station, and the rate of each visit class per station."""
    arrivals = dict.fromkeys(blocking, 0.0)
    hops: dict[tuple[str, str, bool], float] = {}
    first = dict.fromkeys(blocking, 0.0)
    classes: dict[str, dict] = {n: {} for n in blocking}
    for rate, visits in plan:
        prev: tuple[str, bool] | None = None
        for k, cls in visits:
            arrivals[k] += rate
            classes[k][cls] = classes[k].get(cls, 0.0) + rate
            if prev is None:
                first[k] += rate
            else:
                key = (prev[0], k, prev[1])
                hops[key] = hops.get(key, 0.0) + rate
            rate *= 1.0 - blocking[k]
            prev = (k, bool(cls[1]))  # a holder's next visit starts when its own service ends
    return arrivals, hops, first, classes


def _effective_service(st: _Station, classes: dict, stations, wq, wvar, blocking):
    """Mean, scv and own mean of the time a visit keeps a server: the mixture over visit
    classes of ``scale x service + sum of the held visits' (wait + scaled service)``."""
    s, var, cs2 = st.service.mean, st.service.variance, st.service.scv
    total = sum(classes.values())
    if total <= 0:
        return s, cs2, s, None, cs2
    m1 = m2 = own = 0.0
    # E[S^k] / E[S]^k, k = 2..4, of a gamma with S's scv: the shape of an unscaled visit
    shape = [1.0, 1.0] + [math.prod(1.0 + j * cs2 for j in range(k)) for k in (2, 3, 4)]
    raw = [0.0] * 5  # E[(scale S)^k] / E[S]^k over the visit classes
    for (scale, held), r in classes.items():
        m, v, reach = scale * s, scale * scale * var, 1.0
        for j, sc in held:  # a call turned away by a full queue frees the worker at once
            sj = stations[j].service
            reach *= 1.0 - blocking[j]
            m += reach * (wq[j] + sc * sj.mean)
            v += reach * (wvar[j] + sc * sc * sj.variance)
        m1 += r * m
        m2 += r * (v + m * m)
        own += r * scale * s
        for k in range(5):
            raw[k] += r * scale**k * shape[k]
    m1, m2, own = m1 / total, m2 / total, own / total
    own_cs2 = max(raw[2] * total / raw[1] ** 2 - 1.0, 0.0)  # of the scaled own service
    if not math.isfinite(m1):
        return INF, 1.0, own, None, own_cs2
    scv = max(m2 / (m1 * m1) - 1.0, 0.0)
    if any(h for _, h in classes):
        return m1, scv, own, None, own_cs2
    return m1, scv, own, tuple(raw[k] / total / (raw[1] / total) ** k for k in range(5)), own_cs2


def _arrival_scv(stations, names, arrivals, hops, first, lam, ca0, rho, blocking, cs2,
                 own_cs2):
    """QNA traffic equations: ca2_k = sum over streams into k of (share x split scv).

    A stream split with probability q has scv ``q c2 + 1 - q``; departures of j have
    ``cd2 = rho^2 (1 + (cs2-1)/sqrt(c)) + (1 - rho^2) ca2_j``, linear in ca2_j, so the whole
    network is one small linear system. A delay passes its arrivals' scv on (rho = 0). A
    round-robin pick among n sends every n-th request of its stream: scv / n, which is the
    Bernoulli split's scv minus ``1 - 1/n``.
    """
    idx = {n: i for i, n in enumerate(names)}
    a = np.eye(len(names))
    b = np.ones(len(names))
    for k in names:
        lk = arrivals[k]
        if lk <= 0:
            continue
        i = idx[k]
        q0 = first[k] / lam
        b[i] = first[k] / lk * (q0 * ca0 + 1.0 - q0)
        for (j, kk, held), rate in hops.items():
            if kk != k:
                continue
            st = stations[j]
            q = rate / (arrivals[j] * (1.0 - blocking[j]))
            if st.delay:
                r2 = alpha = 0.0
            else:  # a holder's first call leaves at the end of its own service
                r2 = min(rho[j], 1.0) ** 2
                alpha = r2 * (1.0 + ((own_cs2 if held else cs2)[j] - 1.0) / math.sqrt(st.servers))
            b[i] += rate / lk * (q * alpha + 1.0 - q)
            a[i, idx[j]] -= rate / lk * q * (1.0 - r2)
        if stations[k].split > 1:
            b[i] -= 1.0 - 1.0 / stations[k].split
    try:
        ca2 = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        ca2 = np.linalg.lstsq(a, b, rcond=None)[0]
    return {n: max(float(ca2[idx[n]]), 0.0) for n in names}


def _exp_wait_cdf(p_wait: float, tail_mean: float) -> Callable[[np.ndarray], np.ndarray]:
    """Atom ``1 - p_wait`` at 0 plus an exponential tail: the M/M/c wait, exactly."""
    if p_wait <= 0 or tail_mean <= 0:
        return lambda x: np.ones_like(x)
    return lambda x: 1.0 - p_wait * np.exp(-x / tail_mean)


def _mmck_wait(st: _Station, lam: float, mean: float) -> tuple[Callable, float]:
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


def _station_state(st: _Station, lk: float, eff, markov: bool, ca2: float | None,
                   holds: bool, mixed: bool) -> _State | None:
    """One station's state at arrival rate ``lk`` with effective service ``eff``.

    ``ca2=None`` asks only for what does not need the arrival scv (delays, finite queues,
    overload); the others get ``None`` back and are solved once the scv is known.
    """
    m, cs2, own, moments, _ = eff
    if st.delay:
        return _State(lk, 0.0, 0.0, lk, 0.0, lk * m, 0.0, m, 0.0, math.isfinite(m), _no_wait,
                      0.0, 0.0, True, holds, mixed)
    c = st.servers
    offered, own_load = lk * m / c, lk * own / c
    if not math.isfinite(m) or (st.queue_capacity is None and offered >= 1.0):
        thr = c / m if math.isfinite(m) else 0.0
        return _State(lk, offered, 1.0, thr, INF, INF, INF, INF, 0.0, False, None, 0.0,
                      own_load, False, holds, mixed)
    exp_service = isinstance(st.service, Exponential) and not holds and not mixed
    if st.queue_capacity is not None:
        r = mmck(lk, m, c, st.queue_capacity)
        cdf, var = _mmck_wait(st, lk, m)
        return _State(lk, offered, r.utilization, r.throughput, r.mean_queue_length,
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
    return _State(lk, offered, offered, lk, lk * wq, lk * (wq + m), wq, wq + m, 0.0, True,
                  cdf, var, own_load, exact, holds, mixed)


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


def _open_states(stations, routes, lam: float, ca0: float, markov: bool):
    """Request stations: blocking (finite queues) and holding (synchronous calls) are one
    fixed point, since a holder's service includes the waits downstream and drops upstream
    thin the load downstream."""
    plan = _route_plan(routes, lam)
    names = list(stations)
    blocking = dict.fromkeys(names, 0.0)
    wq = dict.fromkeys(names, 0.0)
    wvar = dict.fromkeys(names, 0.0)
    states: dict[str, _State] = {}
    for _ in range(1000):
        arrivals, hops, first, classes = _flow_rates(plan, blocking)
        eff = {n: _effective_service(stations[n], classes[n], stations, wq, wvar, blocking)
               for n in names}
        holds = {n: any(held for _, held in classes[n]) for n in names}
        mixed = {n: len({scale for scale, _ in classes[n]}) > 1 for n in names}
        states = {}
        for n in names:
            s = _station_state(stations[n], arrivals[n], eff[n], markov, None, holds[n],
                               mixed[n])
            if s is not None:
                states[n] = s
        rho = {n: states[n].utilization if n in states else
               arrivals[n] * eff[n][0] / stations[n].servers for n in names}
        ca2 = _arrival_scv(stations, names, arrivals, hops, first, lam, ca0, rho, blocking,
                           {n: eff[n][1] for n in names}, {n: eff[n][4] for n in names})
        for n in names:
            if n not in states:
                states[n] = _station_state(stations[n], arrivals[n], eff[n], markov, ca2[n],
                                           holds[n], mixed[n])
        change = max([abs(states[n].blocking - blocking[n]) for n in names]
                     + [_rel_change(states[n].wq, wq[n]) for n in names]
                     + [_rel_change(states[n].wait_var, wvar[n]) for n in names], default=0.0)
        blocking = {n: states[n].blocking for n in names}
        wq = {n: states[n].wq for n in names}
        wvar = {n: states[n].wait_var for n in names}
        if change < 1e-13:
            break
    return states


def _async_states(system, stations, message_rates: dict[str, float], ca0: float,
                  markov: bool):
    """Consumers: single servers fed by their partitions' share of a queue's messages; and
    per queue, its latency group (consumer, share of the messages it serves)."""
    states: dict[str, _State] = {}
    groups: dict[str, tuple[float, list]] = {}
    for q in comp.message_queues(system):
        rate = message_rates.get(q.name, 0.0)
        parts = []
        for name, share in zip(low.consumer_names(q), q.partition_share(), strict=True):
            st = stations[name]
            lk, s = rate * share, st.service.mean
            exp_service = isinstance(st.service, Exponential)
            if st.max_wait_s is not None:
                r = comp.mm1_retention(lk, s, st.max_wait_s)
                states[name] = _State(lk, lk * s, r.utilization, r.throughput,
                                      r.mean_queue_length, r.mean_queue_length + r.utilization,
                                      r.mean_wait, r.mean_wait + s, r.loss, True, r.wait_cdf(),
                                      r.wait_var, lk * s, exp_service)
            else:
                # a random partition of the published stream (Poisson if requests are)
                ca2 = share * ca0 + 1.0 - share
                eff = (s, st.service.scv, s, None, st.service.scv)
                states[name] = _station_state(st, lk, eff, markov, ca2, False, False)
            parts.append((share, name))
        groups[low.async_flow_name(q)] = (rate, parts)
    return states, groups


def _callers(routes, stations) -> dict[str, float]:
    """Most requests a station can hold at once when only held calls reach it: the workers of
    the stations holding them (each worker waits on one call at a time); inf otherwise."""
    holders: dict[str, set | None] = {}
    for route in routes:
        stack: list[tuple[int, str]] = []  # (last held index, holder)
        for i, v in enumerate(route.calls):
            while stack and stack[-1][0] < i:
                stack.pop()
            inner = stack[-1][1] if stack else None
            if inner is None or stations[inner].delay:
                holders[v.component] = None
            elif holders.get(v.component, set()) is not None:
                holders.setdefault(v.component, set()).add(inner)
            if v.holds:
                stack.append((i + v.holds, v.component))
    return {k: INF if h is None else sum(stations[n].servers for n in h)
            for k, h in holders.items()}


def _solve_open(system, workload, stations, duration_s) -> AnalyticResult:
    lam = workload.judged_rate_per_s(duration_s)  # a profile: its busiest five minutes
    ca0 = workload.interarrival.scv
    hit = comp.hit_ratios(system, lam)

    def ratio(c):
        return hit[c.name]

    routes = system.routes(ratio)
    # a finite queue behind a pool of fewer workers than it has room for never drops
    callers = _callers(routes, stations)
    stations = {n: replace(st, queue_capacity=None) if st.queue_capacity is not None
                and callers.get(n, INF) <= st.servers + st.queue_capacity else st
                for n, st in stations.items()}
    sync = {n: st for n, st in stations.items() if not st.consumer}
    markov = isinstance(workload.interarrival, Exponential) and all(
        isinstance(s.service, Exponential) for s in stations.values() if not s.delay)
    states = _open_states(sync, routes, lam, ca0, markov)
    rates = comp.step_rates(system, hit)
    msg_rates = {q: lam * n for q, n in rates.publishes.items()}
    consumer_states, async_groups = _async_states(system, stations, msg_rates, ca0, markov)
    states.update(consumer_states)

    groups = {f.name: [(r.probability * f.weight, r.calls) for r in system.flow_routes(f, ratio)]
              for f in system.flows}
    if len(system.flows) > 1:
        groups[ALL_FLOWS] = [(r.probability, r.calls) for r in system.routes(ratio)]
    summary = {label: _request_summary(g, stations, states, lam) for label, g in groups.items()}
    pct = _percentiles({label: _completed(groups[label], states)
                        for label, (thr, _, _, stable, _) in summary.items()
                        if stable and thr > 0}, stations, states)
    rows = []
    for label, (thr, mean, err, stable, offered_rate) in summary.items():
        p50, p95, p99 = pct.get(label, (INF, INF, INF) if not stable else (NAN, NAN, NAN))
        errors = _count(offered_rate * err, duration_s, can_drop=err > 0)
        rows.append(_plain((label, NAN, thr, mean, p50, p95, p99, errors, err, stable)))
    # as in the simulation: request flows, then one row per queue, then the pooled requests
    rows[len(system.flows):len(system.flows)] = _async_rows(async_groups, stations, states,
                                                            duration_s)
    comp_rows = []
    for name, st in stations.items():
        s = states[name]
        can_drop = (st.queue_capacity is not None or st.max_wait_s is not None) and s.blocking > 0
        drops = _count(s.arrival_rate * s.blocking, duration_s, can_drop=can_drop)
        comp_rows.append(_plain((name, INF if st.delay else st.servers, s.offered_load,
                                 s.utilization, s.throughput, s.lq, s.ls, s.wq, s.w, drops,
                                 s.stable)))
    return AnalyticResult(
        system=system.name,
        workload=f"OpenWorkload(lambda={lam:.6g}/s)",
        closed=False,
        latency_rows=tuple(rows),
        component_rows=tuple(comp_rows),
        bottleneck=_bottleneck(stations, states),
        unstable_components=tuple(n for n in stations if not states[n].stable),
        notes=_open_notes(system, workload, stations, states, markov, hit, routes),
    )


def _completed(group, states):
    done = [(p * _survival(calls, states), calls) for p, calls in group]
    total = sum(p for p, _ in done)
    return [(p / total, calls) for p, calls in done if p > 0]


def _request_summary(group, stations, states, lam):
    """(throughput, mean latency, error rate, stable, offered rate) of a group of routes."""
    offered = sum(p for p, _ in group)
    done = [(p * _survival(calls, states), calls) for p, calls in group]
    completed = sum(p for p, _ in done)
    error_rate = sum(p * (1.0 - _survival(calls, states)) for p, calls in group) / offered
    stable = all(states[c.component].stable for _, calls in group for c in calls)
    if stable and completed > 0:
        mean = sum(p * sum(_contribution(c, stations, states) for c in calls)
                   for p, calls in done)
        return lam * completed, mean / completed, error_rate, True, lam * offered
    return (NAN if not stable else 0.0, INF if not stable else NAN, error_rate, stable,
            lam * offered)


def _served(parts, states):
    """A queue's latency mixture: each consumer weighted by the messages it serves."""
    served = [(share * (1.0 - states[n].blocking), (Visit(n),)) for share, n in parts]
    total = sum(p for p, _ in served)
    return [(p / total, calls) for p, calls in served if p > 0]


def _async_rows(async_groups, stations, states, duration_s) -> list[tuple]:
    summary, stable_groups = {}, {}
    for label, (rate, parts) in async_groups.items():
        summary[label] = _async_summary(rate, parts, stations, states)
        if summary[label][3] and summary[label][0] > 0:
            stable_groups[label] = _served(parts, states)
    pct = _percentiles(stable_groups, stations, states)
    rows = []
    for label, (thr, mean, err, stable, offered_rate) in summary.items():
        p50, p95, p99 = pct.get(label, (INF, INF, INF) if not stable else (NAN, NAN, NAN))
        errors = _count(offered_rate * err, duration_s, can_drop=err > 0)
        rows.append(_plain((label, NAN, thr, mean, p50, p95, p99, errors, err, stable)))
    return rows


def _async_summary(rate, parts, stations, states):
    """A queue's messages: served ones' latency is their consumer's wait + service."""
    stable = all(states[n].stable for _, n in parts)
    served = sum(share * (1.0 - states[n].blocking) for share, n in parts)
    loss = sum(share * states[n].blocking for share, n in parts)
    if not stable:
        return NAN, INF, loss, False, rate
    if rate <= 0 or served <= 0:
        return 0.0, NAN, loss, True, rate
    mean = sum(share * (1.0 - states[n].blocking) * (states[n].wq + stations[n].service.mean)
               for share, n in parts) / served
    return rate * served, mean, loss, True, rate


def _bottleneck(stations, states) -> str:
    """The station that saturates first. When some station is overloaded by its own work, the
    most overloaded of those (a holder upstream of it is overloaded only because of it);
    otherwise the highest offered load, holding time included."""
    queueing = [n for n in stations if not stations[n].delay] or list(stations)
    own = [n for n in queueing if states[n].own_load >= 1.0]
    if own:
        return max(own, key=lambda n: states[n].own_load)
    return max(queueing, key=lambda n: states[n].offered_load)


def _plain(row: tuple) -> tuple:
    """Python scalars only, so rows pickle small and compare without numpy types."""
    return tuple(v if isinstance(v, (str, bool, int)) else float(v) for v in row)


def _survival(calls, states) -> float:
    out = 1.0
    for call in calls:
        out *= 1.0 - states[call.component].blocking
    return out


def _count(rate: float, duration_s: float | None, *, can_drop: bool) -> float:
    if not can_drop:
        return 0.0
    return NAN if duration_s is None else rate * duration_s


def _open_notes(system, workload, stations, states, markov, hit, routes) -> tuple[str, ...]:
    notes = []
    queueing = [n for n, st in stations.items() if not st.delay]
    inexact = [n for n in queueing if not states[n].exact]
    if markov:
        head = ("Poisson arrivals, exponential service: per-station means are exact "
                "(product form); M/M/c/K is exact for one finite station, approximate when "
                "drops upstream thin (and un-Poisson) its arrivals")
        if inexact:
            head += ("; approximate (not product form: holding, service mixtures, round-robin "
                     "splits, or their non-Poisson output downstream) at: " + ", ".join(inexact))
        notes.append(head)
    else:
        notes.append("non-Markovian model: G/G/c waits by Allen-Cunneen with QNA-propagated "
                     "arrival scv (approximation; exact only for M/G/1 at a Poisson-fed station)")
        if any(s.queue_capacity is not None and not isinstance(s.service, Exponential)
               for s in stations.values()):
            notes.append("finite queues with non-exponential service use M/M/c/K (approximation)")
    notes += _component_notes(system, workload, stations, states, hit, routes)
    notes.append("percentiles convolve independent per-station sojourn times (exact for one "
                 "M/M/c station and M/M/1 tandems; an approximation otherwise)")
    return tuple(notes)


def _component_notes(system, workload, stations, states, hit, routes) -> list[str]:
    """What the twin does with delays, holding, mixtures, balancing, caches, queues, outages."""
    notes = []
    delays = [n for n, st in stations.items() if st.delay]
    if delays:
        notes.append("delays are infinite-server stations (no queue; response = latency, exact "
                     "for any distribution; utilization 0): " + ", ".join(delays))
    holders = [n for n, s in states.items() if s.holds]
    if holders:
        notes.append("holding calls: approximation (layered queueing, method of surrogates): a "
                     "worker stays busy for its own service plus the responses of the calls it "
                     "makes, solved as a fixed point; utilization and offered load include that "
                     "holding time at: " + ", ".join(holders) + ". It treats successive holding "
                     "times as independent and the calls as open (Poisson) traffic: the holder's "
                     "own wait is understated when the downstream is bursty (about -25% in "
                     "validation; its response about -2%), and the downstream waits are "
                     "overstated, the more so the smaller the holding pool (a pool of c "
                     "workers never has more than c calls in flight): +13% under 12 workers, "
                     "+50% under 2")
        bursty = sorted({n for route in routes for i, v in enumerate(route.calls) if v.holds
                         for h in route.calls[i + 1:i + 1 + v.holds]
                         if states[h.component].mixed for n in [v.component]})
        if bursty:
            notes.append("holding over a station with mixed service times (e.g. scans among "
                         "index reads): a slow visit ties up many workers at once, which the "
                         "surrogate misses; the holder's wait and the flows' latency can be "
                         "badly understated at: " + ", ".join(bursty))
    mixed = [n for n, s in states.items() if s.mixed]
    if mixed:
        notes.append("service-time mixtures (e.g. unindexed scans among index reads) enter as "
                     "their mean and scv (Allen-Cunneen; exact M/G/1 for one Poisson-fed "
                     "server): " + ", ".join(mixed))
    rr = sorted({n.split("[")[0].split("/")[0] for n, st in stations.items() if st.split > 1})
    if rr:
        notes.append("round-robin balancing: each of n stations gets every n-th request "
                     "(arrival scv / n; QNA approximation): " + ", ".join(rr))
    even = comp.even_split_policies(system)
    if even:
        notes.append("least-connections / power-of-two balancing approximated as even random "
                     "splits (pessimistic: they balance better): " + ", ".join(even))
    dbs = [c.name for c in system.components if isinstance(c, Database)
           and (c.read_replicas or c.shards > 1)]
    if dbs:
        notes.append("databases: reads split evenly over a shard's replicas (the primary when "
                     "none), shards by weight, writes to the shard's primary: " + ", ".join(dbs))
    for c in system.components:
        if isinstance(c, Cache) and c.dynamic:
            how = "Che's approximation (LRU over Zipf keys)"
            if c.ttl_s is not None or c.invalidate_on_write:
                how += (", TTL from insertion and invalidating writes by a per-key lifetime "
                        "(approximation)")
            notes.append(f"cache {c.name}: hit ratio {hit[c.name]:.4g} by {how}; a cold start "
                         "and stale reads are not modelled")
    for q in comp.message_queues(system):
        line = (f"queue {q.name}: each of {q.consumers} consumers is one server fed by its "
                f"partitions' share {tuple(round(s, 4) for s in q.partition_share())} of the "
                "messages (partition affinity, not a pooled queue)")
        if q.retention_s is not None:
            line += ("; retention as M/M/1 with deterministic impatience (exact for exponential "
                     "consumers, approximate otherwise)")
        notes.append(line)
    if system.outages:
        notes.append("outages are not modelled: the twin is the steady state without them (" +
                     ", ".join(f"{o.component} at {o.start_s:g} s for {o.duration_s:g} s"
                               for o in system.outages) + ")")
    if getattr(workload, "profile", None) is not None:
        notes.append(f"time-varying profile: solved at its busiest {PEAK_WINDOW_S:g} s "
                     "(the rate the simulation judges stability at), not at the base rate")
    scalers = getattr(system, "autoscalers", ())
    if scalers:
        notes.append("autoscalers are not modelled: solved with every instance of the pool "
                     "serving (" + ", ".join(a.component for a in scalers) + ")")
    guarded = sorted({c.component for f in system.flows for c in _walk(f.steps)
                      if isinstance(c, Call) and getattr(c, "guarded", False)})
    if guarded:
        notes.append("timeouts and retries are not modelled (one attempt per call, never "
                     "abandoned): " + ", ".join(guarded))
    return notes


# ----------------------------------------------------------------------- latency percentiles


def _percentiles(groups, stations, states) -> dict[str, tuple[float, float, float]]:
    """p50/p95/p99 of each group's mixture of routes, from grid convolutions per route.

    Each route gets its own grid (a power-of-two span from mean + 10 sd, doubled until
    99.99% of the mass is on it), so a 1 ms route is not blurred by a 10 s one; the mixture
    CDF is then inverted by root finding on the interpolated route CDFs.
    """
    spectra: dict[tuple[str, float, float, int], np.ndarray] = {}
    cdfs = {}
    for calls in {calls for routes in groups.values() for _, calls in routes}:
        cdfs[calls] = _route_cdf(calls, stations, states, spectra)
    out = {}
    for label, routes in groups.items():
        parts = [(p, *cdfs[calls]) for p, calls in routes]
        out[label] = tuple(_mixture_quantile(parts, q) for q in QUANTILES)
    return out


def _route_cdf(calls, stations, states, spectra) -> tuple[np.ndarray, np.ndarray]:
    """CDF of one route's latency at cell edges ``(i + 1/2) dx``, with a leading (0, 0)."""
    mean = sum(_contribution(c, stations, states) for c in calls)
    var = sum(_contribution_var(c, stations, states) for c in calls)
    wide = mean + 10.0 * math.sqrt(max(var, 0.0))
    span = 2.0 ** math.ceil(math.log2(wide)) if wide > 0 else 1e-9
    n = GRID_POINTS
    for _ in range(12):
        dx = span / n
        pmf = np.zeros(n)
        pmf[0] = 1.0
        for call in calls:
            pmf = _convolve(pmf, _spectrum(call, span, n, stations, states, spectra))
        cdf = np.cumsum(pmf)
        if cdf[-1] >= 1.0 - 1e-4:
            break
        span, n = 2.0 * span, min(2 * n, 16 * GRID_POINTS)
    edges = (np.arange(n) + 0.5) * dx
    return np.concatenate([[0.0], edges]), np.concatenate([[0.0], cdf])


def _spectrum(visit: Visit, span, n, stations, states, cache) -> np.ndarray:
    """FFT (length 2n) of one visit's pmf: the station's wait convolved with the visit's own
    (scaled) service; the calls a holder makes are visits of their own on the route.

    Each grid point carries the mass of the cell around it (midpoint rule), so sums of
    stations land on grid points without a drift of half a cell per station.
    """
    name, scale = visit.component, visit.scale
    key = (name, scale, span, n)
    if key not in cache:
        edges = (np.arange(n) + 0.5) * (span / n)
        wait = np.diff(states[name].wait_cdf(edges), prepend=0.0)
        service = np.diff(np.asarray(stations[name].service.cdf(edges / scale), float),
                          prepend=0.0)
        cache[key] = np.fft.rfft(_convolve(wait, np.fft.rfft(service, 2 * n)), 2 * n)
    return cache[key]


def _convolve(pmf: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    """Linear (not circular) convolution, truncated to the grid: mass past the end is dropped."""
    n = pmf.size
    out = np.fft.irfft(np.fft.rfft(pmf, 2 * n) * spectrum, 2 * n)[:n]
    return np.maximum(out, 0.0)


def _mixture_quantile(parts, q: float) -> float:
    """Invert ``sum_r w_r F_r(x)`` (piecewise linear F_r); NaN if the grids hold too little."""
    def cdf(x: float) -> float:
        return sum(w * np.interp(x, xs, fs) for w, xs, fs in parts)

    hi = max(xs[-1] for _, xs, _ in parts)
    if cdf(hi) < q:
        return NAN
    return float(optimize.brentq(lambda x: cdf(x) - q, 0.0, hi, xtol=1e-12 * hi, rtol=1e-12))


# --------------------------------------------------------------------------- closed workloads


def _solve_closed(system, workload, stations, duration_s) -> AnalyticResult:
    """Exact MVA on demands ``D_k = visits_k x scale x E[S_k]``; think time and delays enter
    as infinite-server demand (by their means only).

    Exact for exponential service (the think station and delays are insensitive to their
    distribution); for other service distributions MVA is an approximation. Request
    percentiles are NaN: MVA gives means only. Finite queues are ignored (they can drop only if
    servers + queue_capacity < users; then drops and error rates are NaN). A TTL cache's hit
    ratio depends on the throughput: a fixed point. Consumers are open stations fed at the
    MVA throughput. Holding is not modelled (a holder's demand is its own service).
    """
    z = workload.think_time.mean
    users = workload.users
    names = [n for n, st in stations.items() if not st.delay and not st.consumer]
    delays = [n for n, st in stations.items() if st.delay]
    hit = comp.hit_ratios(system, 0.0)
    for _ in range(100):
        ratio = (lambda h: lambda c: h[c.name])(hit)
        visits = system.visits(ratio)
        demands = _own_demands(system, ratio, stations)
        demand = {n: demands[n] for n in names}
        servers = {n: stations[n].servers for n in names}
        z_all = z + sum(demands[n] for n in delays)
        res = mva(demand, users, z_all, servers)
        new = comp.hit_ratios(system, res.throughput)
        if max((abs(new[k] - hit[k]) for k in hit), default=0.0) < 1e-12:
            break
        hit = new
    bnds = bounds(demand, z_all, users, servers)
    x = res.throughput
    states: dict[str, _State] = {}
    risky = set()
    for i, name in enumerate(names):
        st, v = stations[name], visits[name]
        busy = x * demand[name]
        per_visit_service = demand[name] / v if v > 0 else st.service.mean
        w = res.residence_time[i] / v if v > 0 else st.service.mean
        blocking = 0.0
        if st.queue_capacity is not None and st.servers + st.queue_capacity < users:
            risky.add(name)
            blocking = NAN
        states[name] = _State(x * v, busy / st.servers, busy / st.servers, x * v,
                              max(res.queue_length[i] - busy, 0.0), res.queue_length[i],
                              max(w - per_visit_service, 0.0), w, blocking, True)
    for name in delays:
        v = visits[name]
        w = demands[name] / v if v > 0 else stations[name].service.mean
        states[name] = _State(x * v, 0.0, 0.0, x * v, 0.0, x * demands[name], 0.0, w, 0.0, True)
    _closed_holding(system, ratio, stations, states, x)
    rates = comp.step_rates(system, hit)
    consumer_states, async_groups = _async_states(
        system, stations, {q: x * n for q, n in rates.publishes.items()}, 1.0,
        all(isinstance(stations[n].service, Exponential) for n in stations
            if stations[n].consumer))
    states.update(consumer_states)
    comp_rows = []
    for name, st in stations.items():
        s = states[name]
        drops = NAN if name in risky else _count(
            s.arrival_rate * s.blocking, duration_s,
            can_drop=st.max_wait_s is not None and s.blocking > 0)
        comp_rows.append(_plain((name, INF if st.delay else st.servers, s.offered_load,
                                 s.utilization, s.throughput, s.lq, s.ls, s.wq, s.w, drops,
                                 s.stable)))
    groups = {f.name: [(r.probability * f.weight, r.calls) for r in system.flow_routes(f, ratio)]
              for f in system.flows}
    rows = [_closed_row(label, routes, stations, states, x, risky)
            for label, routes in groups.items()]
    rows += _async_rows(async_groups, stations, states, duration_s)
    if len(system.flows) > 1:
        rows.append(_closed_row(ALL_FLOWS, [(r.probability, r.calls)
                                            for r in system.routes(ratio)],
                                stations, states, x, risky))
    exact = all(isinstance(stations[n].service, Exponential) for n in names)
    notes = ["closed workload: exact MVA means" if exact else
             "closed workload: MVA with non-exponential service (approximation)",
             "request percentiles are NaN: MVA gives means only"]
    if risky:
        notes.append("finite queues ignored by MVA at: " + ", ".join(sorted(risky)))
    if any(v.holds for r in system.routes(ratio) for v in r.calls):
        notes.append("holding calls: a holder's row adds the time its workers wait on the calls "
                     "they make (utilization, response), but MVA queues for its own service "
                     "only, so a pool saturated by holding is not seen (use an open workload "
                     "for the cascade)")
    notes += _component_notes(system, workload, stations, states, hit, system.routes(ratio))
    return AnalyticResult(
        system=system.name,
        workload=f"ClosedWorkload(users={users}, think={z:.6g}s)",
        closed=True,
        latency_rows=tuple(rows),
        component_rows=tuple(comp_rows),
        bottleneck=str(bnds.bottleneck),
        unstable_components=tuple(n for n in stations if not states[n].stable),
        notes=tuple(notes),
        closed_bounds=bnds,
    )


def _closed_holding(system, ratio, stations, states, x) -> None:
    """A holder's row counts the calls it waits on (busy time, response, number present); MVA
    itself queues for its own service only, so a pool saturated by holding is not seen."""
    routes = system.routes(ratio)
    plan = _route_plan(routes, x)
    names = [n for n in stations if not stations[n].consumer]
    zero = dict.fromkeys(names, 0.0)
    *_, classes = _flow_rates(plan, zero)
    wq = {n: states[n].wq for n in names}
    for n in names:
        st, s = stations[n], states[n]
        if not any(held for _, held in classes[n]):
            continue
        m = _effective_service(st, classes[n], stations, wq, zero, zero)[0]
        s.w = s.wq + m
        s.ls = s.lq + s.arrival_rate * m
        if not st.delay:
            s.utilization = s.offered_load = s.arrival_rate * m / st.servers


def _own_demands(system, ratio, stations) -> dict[str, float]:
    """Busy time per request at each request station from its own visits (visits x scale x
    mean service): ``System.demands`` also charges a holder for the service of the calls it
    makes, which MVA would count twice (the request is at the called station meanwhile)."""
    d = dict.fromkeys(stations, 0.0)
    for route in system.routes(ratio):
        for v in route.calls:
            d[v.component] += route.probability * v.scale * stations[v.component].service.mean
    return d


def _closed_row(label, routes, stations, states, x, risky) -> tuple:
    share = sum(p for p, _ in routes)
    mean = sum(p * sum(_contribution(c, stations, states) for c in calls)
               for p, calls in routes) / share
    touches = any(c.component in risky for _, calls in routes for c in calls)
    err = NAN if touches else 0.0
    return _plain((label, NAN, x * share, mean, NAN, NAN, NAN, err, err, True))

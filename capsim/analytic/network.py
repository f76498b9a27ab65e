"""The analytic twin of a whole system: ``solve(system, workload) -> AnalyticResult``.

Open workloads are solved station by station (a queueing network decomposition):

* arrival rate per component ``lambda_k = lambda x visits_k``, thinned by drops upstream;
* an unbounded station with Poisson arrivals and exponential service everywhere (a product-form
  network) uses exact M/M/c means; otherwise Allen-Cunneen G/G/c with the arrival scv carried
  along the routes by Whitt's QNA (superposition, splitting, departure scv): an approximation;
* a finite ``queue_capacity`` uses M/M/c/K (exact for exponential service, an approximation
  otherwise), solved as a fixed point because drops upstream thin the load downstream;
* latency percentiles convolve per-station sojourn-time distributions on a grid, assuming the
  stations are independent: exact for one M/M/c station and for M/M/1 tandems (Reich),
  an approximation elsewhere.

Closed workloads use exact MVA (see ``mva``); they are always stable, and their percentiles are
NaN because MVA yields means only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from capsim.analytic.mva import Bounds, bounds, mva
from capsim.analytic.queues import erlang_c, ggc_wait, mmc, mmck, mmck_probabilities
from capsim.dists import Distribution, Exponential
from capsim.errors import ModelError
from capsim.model import ClosedWorkload, OpenWorkload, Route, System
from capsim.schema import ALL_FLOWS, COMPONENT_COLUMNS, LATENCY_COLUMNS

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
        """Per flow (plus ``ALL_FLOWS`` when several): schema.LATENCY_COLUMNS, count = NaN."""
        df = pd.DataFrame(list(self.latency_rows), columns=LATENCY_COLUMNS)
        return df.astype({"stable": bool})

    def components(self) -> pd.DataFrame:
        """Per component: schema.COMPONENT_COLUMNS."""
        df = pd.DataFrame(list(self.component_rows), columns=COMPONENT_COLUMNS)
        return df.astype({"stable": bool, "servers": int})

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
    servers: int
    service: Distribution
    queue_capacity: int | None


@dataclass
class _State:
    """Steady state of one station per visit, plus its wait distribution for the grid."""

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
    out = {}
    for st in system.stations():
        if st.servers is None:
            raise ModelError(f"{st.name}: the analytic twin does not solve delays yet")
        out[st.name] = _Station(st.name, st.servers, st.service_time, st.queue_capacity)
    return out


# ---------------------------------------------------------------------------- open workloads


def _flow_rates(routes: tuple[Route, ...], lam: float, blocking: dict[str, float]):
    """Arrival rate per station, rate on each hop (j -> k) and first-visit rate per station."""
    arrivals = dict.fromkeys(blocking, 0.0)
    hops: dict[tuple[str, str], float] = {}
    first = dict.fromkeys(blocking, 0.0)
    for route in routes:
        rate = lam * route.probability
        prev = None
        for call in route.calls:
            k = call.component
            arrivals[k] += rate
            if prev is None:
                first[k] += rate
            else:
                hops[prev, k] = hops.get((prev, k), 0.0) + rate
            rate *= 1.0 - blocking[k]
            prev = k
    return arrivals, hops, first


def _blocking_fixed_point(stations, routes, lam):
    """Drops at finite stations thin the load downstream; iterate until the rates settle."""
    blocking = dict.fromkeys(stations, 0.0)
    finite = [s for s in stations.values() if s.queue_capacity is not None]
    for _ in range(1000):
        arrivals, hops, first = _flow_rates(routes, lam, blocking)
        change = 0.0
        for st in finite:
            b = mmck(arrivals[st.name], st.service.mean, st.servers, st.queue_capacity).blocking
            change = max(change, abs(b - blocking[st.name]))
            blocking[st.name] = b
        if change < 1e-13:
            break
    return blocking, _flow_rates(routes, lam, blocking)


def _arrival_scv(stations, names, arrivals, hops, first, lam, ca0, rho, blocking):
    """QNA traffic equations: ca2_k = sum over streams into k of (share x split scv).

    A stream split with probability q has scv ``q c2 + 1 - q``; departures of j have
    ``cd2 = rho^2 (1 + (cs2-1)/sqrt(c)) + (1 - rho^2) ca2_j``, linear in ca2_j, so the whole
    network is one small linear system.
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
        for (j, kk), rate in hops.items():
            if kk != k:
                continue
            st = stations[j]
            q = rate / (arrivals[j] * (1.0 - blocking[j]))
            r2 = min(rho[j], 1.0) ** 2
            alpha = r2 * (1.0 + (st.service.scv - 1.0) / math.sqrt(st.servers))
            b[i] += rate / lk * (q * alpha + 1.0 - q)
            a[i, idx[j]] -= rate / lk * q * (1.0 - r2)
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


def _mmck_wait(st: _Station, lam: float) -> tuple[Callable, float]:
    """Wait of an accepted M/M/c/K request: Erlang(n-c+1, c mu) if it finds n >= c (PASTA).

    ``P(W > x) = sum_i Poisson(i; c mu x) T_i`` with ``T_i = P(more than i stages)``: one
    pass over the stages, in logs so that long queues (c mu x > 700) do not underflow.
    """
    p = mmck_probabilities(lam, st.service.mean, st.servers, st.queue_capacity)
    accepted = p[:-1] / max(1.0 - p[-1], 1e-300)
    rate = st.servers / st.service.mean
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


def _open_states(system, workload, stations):
    lam = workload.arrival_rate_per_s
    routes = system.routes()
    markov = isinstance(workload.interarrival, Exponential) and all(
        isinstance(s.service, Exponential) for s in stations.values())
    blocking, (arrivals, hops, first) = _blocking_fixed_point(stations, routes, lam)
    states: dict[str, _State] = {}
    rho = {}
    for name, st in stations.items():
        s, c, lk = st.service.mean, st.servers, arrivals[name]
        offered = lk * s / c
        if st.queue_capacity is not None:
            m = mmck(lk, s, c, st.queue_capacity)
            cdf, var = _mmck_wait(st, lk)
            states[name] = _State(lk, offered, m.utilization, m.throughput, m.mean_queue_length,
                                  m.mean_in_system, m.mean_wait, m.mean_response, m.blocking,
                                  True, cdf, var)
        elif offered >= 1.0:
            states[name] = _State(lk, offered, 1.0, c / s, INF, INF, INF, INF, 0.0, False)
        rho[name] = states[name].utilization if name in states else offered
    ca2 = _arrival_scv(stations, list(stations), arrivals, hops, first, lam,
                       workload.interarrival.scv, rho, blocking)
    for name, st in stations.items():
        if name in states:
            continue
        s, c, lk = st.service.mean, st.servers, arrivals[name]
        if markov:
            r = mmc(lk, s, c)
            wq, p_wait = r.mean_wait, r.p_wait
        else:
            wq = ggc_wait(lk, s, c, ca2[name], st.service.scv)
            p_wait = erlang_c(c, lk * s)
        tail = wq / p_wait if p_wait > 0 else 0.0
        states[name] = _State(lk, lk * s / c, lk * s / c, lk, lk * wq, lk * (wq + s), wq, wq + s,
                              0.0, True, _exp_wait_cdf(p_wait, tail),
                              p_wait * 2 * tail**2 - wq**2)
    return states, markov


def _solve_open(system, workload, stations, duration_s) -> AnalyticResult:
    lam = workload.arrival_rate_per_s
    states, markov = _open_states(system, workload, stations)
    groups = {f.name: [(r.probability * f.weight, r.calls) for r in system.flow_routes(f)]
              for f in system.flows}
    if len(system.flows) > 1:
        groups[ALL_FLOWS] = [(r.probability, r.calls) for r in system.routes()]
    stable_groups = {}
    summary = {}
    for label, routes in groups.items():
        offered = sum(p for p, _ in routes)
        done = [(p * _survival(calls, states), calls) for p, calls in routes]
        completed = sum(p for p, _ in done)
        error_rate = sum(p * (1.0 - _survival(calls, states)) for p, calls in routes) / offered
        stable = all(states[c.component].stable for _, calls in routes for c in calls)
        if stable and completed > 0:
            mean = sum(p * sum(states[c.component].w for c in calls) for p, calls in done)
            summary[label] = (lam * completed, mean / completed, error_rate, True, offered)
            stable_groups[label] = [(p / completed, calls) for p, calls in done if p > 0]
        else:
            summary[label] = (NAN if not stable else 0.0, INF if not stable else NAN,
                              error_rate, stable, offered)
    pct = _percentiles(stable_groups, stations, states)
    rows = []
    for label, (thr, mean, err, stable, offered) in summary.items():
        p50, p95, p99 = pct.get(label, (INF, INF, INF) if not stable else (NAN, NAN, NAN))
        errors = _count(lam * offered * err, duration_s, can_drop=err > 0)
        rows.append(_plain((label, NAN, thr, mean, p50, p95, p99, errors, err, stable)))
    comp_rows = []
    for name, st in stations.items():
        s = states[name]
        drops = _count(s.arrival_rate * s.blocking, duration_s,
                       can_drop=st.queue_capacity is not None and s.blocking > 0)
        comp_rows.append(_plain((name, st.servers, s.offered_load, s.utilization, s.throughput,
                                 s.lq, s.ls, s.wq, s.w, drops, s.stable)))
    notes = _open_notes(stations, workload, markov)
    return AnalyticResult(
        system=system.name,
        workload=f"OpenWorkload(lambda={lam:.6g}/s)",
        closed=False,
        latency_rows=tuple(rows),
        component_rows=tuple(comp_rows),
        bottleneck=max(stations, key=lambda n: states[n].offered_load),
        unstable_components=tuple(n for n in stations if not states[n].stable),
        notes=notes,
    )


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


def _open_notes(stations, workload, markov) -> tuple[str, ...]:
    notes = []
    if markov:
        notes.append("Poisson arrivals, exponential service: per-station means are exact "
                     "(product form); M/M/c/K is exact for one finite station, approximate when "
                     "drops upstream thin (and un-Poisson) its arrivals")
    else:
        notes.append("non-Markovian model: G/G/c waits by Allen-Cunneen with QNA-propagated "
                     "arrival scv (approximation; exact only for M/G/1 at a Poisson-fed station)")
        if any(s.queue_capacity is not None and not isinstance(s.service, Exponential)
               for s in stations.values()):
            notes.append("finite queues with non-exponential service use M/M/c/K (approximation)")
    notes.append("percentiles convolve independent per-station sojourn times (exact for one "
                 "M/M/c station and M/M/1 tandems; an approximation otherwise)")
    return tuple(notes)


# ----------------------------------------------------------------------- latency percentiles


def _percentiles(groups, stations, states) -> dict[str, tuple[float, float, float]]:
    """p50/p95/p99 of each group's mixture of routes, from grid convolutions per route.

    Each route gets its own grid (a power-of-two span from mean + 10 sd, doubled until
    99.99% of the mass is on it), so a 1 ms route is not blurred by a 10 s one; the mixture
    CDF is then inverted by root finding on the interpolated route CDFs.
    """
    spectra: dict[tuple[str, float, int], np.ndarray] = {}
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
    mean = sum(states[c.component].w for c in calls)
    var = sum(states[c.component].wait_var + stations[c.component].service.variance
              for c in calls)
    wide = mean + 10.0 * math.sqrt(max(var, 0.0))
    span = 2.0 ** math.ceil(math.log2(wide)) if wide > 0 else 1e-9
    n = GRID_POINTS
    for _ in range(12):
        dx = span / n
        pmf = np.zeros(n)
        pmf[0] = 1.0
        for call in calls:
            pmf = _convolve(pmf, _spectrum(call.component, span, n, stations, states, spectra))
        cdf = np.cumsum(pmf)
        if cdf[-1] >= 1.0 - 1e-4:
            break
        span, n = 2.0 * span, min(2 * n, 16 * GRID_POINTS)
    edges = (np.arange(n) + 0.5) * dx
    return np.concatenate([[0.0], edges]), np.concatenate([[0.0], cdf])


def _spectrum(name, span, n, stations, states, cache) -> np.ndarray:
    """FFT (length 2n) of one station's sojourn pmf: its wait convolved with its service.

    Each grid point carries the mass of the cell around it (midpoint rule), so sums of
    stations land on grid points without a drift of half a cell per station.
    """
    key = (name, span, n)
    if key not in cache:
        edges = (np.arange(n) + 0.5) * (span / n)
        wait = np.diff(states[name].wait_cdf(edges), prepend=0.0)
        service = np.diff(np.asarray(stations[name].service.cdf(edges), float), prepend=0.0)
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
    """Exact MVA on demands ``D_k = visits_k E[S_k]``; think time enters by its mean only.

    Exact for exponential service (the think station is insensitive to its distribution);
    for other service distributions MVA is an approximation. Percentiles are NaN: MVA gives
    means only. Finite queues are ignored (they can drop only if servers + queue_capacity <
    users; then drops and error rates are NaN).
    """
    visits = system.visits()
    names = list(stations)
    demand = {n: visits[n] * stations[n].service.mean for n in names}
    servers = {n: stations[n].servers for n in names}
    z = workload.think_time.mean
    users = workload.users
    res = mva(demand, users, z, servers)
    bnds = bounds(demand, z, users, servers)
    x = res.throughput
    comp_rows = []
    risky = set()
    for i, name in enumerate(names):
        st, v = stations[name], visits[name]
        s = st.service.mean
        busy = x * demand[name]
        w = res.residence_time[i] / v if v > 0 else s
        drops = 0.0
        if st.queue_capacity is not None and st.servers + st.queue_capacity < users:
            risky.add(name)
            drops = NAN
        comp_rows.append(_plain((name, st.servers, busy / st.servers, busy / st.servers, x * v,
                                 max(res.queue_length[i] - busy, 0.0), res.queue_length[i],
                                 max(w - s, 0.0), w, drops, True)))
    per_visit = {name: row[8] for name, row in zip(names, comp_rows, strict=True)}
    groups = {f.name: [(r.probability * f.weight, r.calls) for r in system.flow_routes(f)]
              for f in system.flows}
    if len(system.flows) > 1:
        groups[ALL_FLOWS] = [(r.probability, r.calls) for r in system.routes()]
    rows = []
    for label, routes in groups.items():
        share = sum(p for p, _ in routes)
        mean = sum(p * sum(per_visit[c.component] for c in calls) for p, calls in routes) / share
        touches = any(c.component in risky for _, calls in routes for c in calls)
        err = NAN if touches else 0.0
        rows.append(_plain((label, NAN, x * share, mean, NAN, NAN, NAN, err, err, True)))
    exact = all(isinstance(s.service, Exponential) for s in stations.values())
    notes = ["closed workload: exact MVA means" if exact else
             "closed workload: MVA with non-exponential service (approximation)",
             "percentiles are NaN: MVA gives means only"]
    if risky:
        notes.append("finite queues ignored by MVA at: " + ", ".join(sorted(risky)))
    return AnalyticResult(
        system=system.name,
        workload=f"ClosedWorkload(users={users}, think={z:.6g}s)",
        closed=True,
        latency_rows=tuple(rows),
        component_rows=tuple(comp_rows),
        bottleneck=str(bnds.bottleneck),
        unstable_components=(),
        notes=tuple(notes),
        closed_bounds=bnds,
    )

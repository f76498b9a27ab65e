"""Open workloads: the network solved station by station (see ``capsim.analytic.network``).

Arrival rates come from the routes, thinned by drops upstream; arrival scv is carried along
them by Whitt's QNA; finite queues (drops) and holding (a holder's service includes the waits
downstream) are one fixed point.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from capsim.analytic import components as comp
from capsim.analytic.consumers import async_rows, solve_consumers
from capsim.analytic.notes import open_notes
from capsim.analytic.percentiles import latency_percentiles
from capsim.analytic.result import AnalyticResult
from capsim.analytic.stations import (
    StationState,
    expected_count,
    plain_row,
    station_state,
    survival,
    visit_mean,
)
from capsim.analytic.traffic import effective_service, flow_rates, route_plan
from capsim.dists import Exponential
from capsim.schema import ALL_FLOWS

__all__ = ["solve_open"]

INF = math.inf
NAN = math.nan


def solve_open(system, workload, stations, duration_s) -> AnalyticResult:
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
    consumer_states, async_groups = solve_consumers(system, stations, msg_rates, ca0, markov)
    states.update(consumer_states)

    groups = {f.name: [(r.probability * f.weight, r.calls) for r in system.flow_routes(f, ratio)]
              for f in system.flows}
    if len(system.flows) > 1:
        groups[ALL_FLOWS] = [(r.probability, r.calls) for r in system.routes(ratio)]
    summary = {label: _request_summary(g, stations, states, lam) for label, g in groups.items()}
    pct = latency_percentiles({label: _completed(groups[label], states)
                        for label, (thr, _, _, stable, _) in summary.items()
                        if stable and thr > 0}, stations, states)
    rows = []
    for label, (thr, mean, err, stable, offered_rate) in summary.items():
        p50, p95, p99 = pct.get(label, (INF, INF, INF) if not stable else (NAN, NAN, NAN))
        errors = expected_count(offered_rate * err, duration_s, can_drop=err > 0)
        rows.append(plain_row((label, NAN, thr, mean, p50, p95, p99, errors, err, stable)))
    # as in the simulation: request flows, then one row per queue, then the pooled requests
    rows[len(system.flows):len(system.flows)] = async_rows(async_groups, stations, states,
                                                            duration_s)
    comp_rows = []
    for name, st in stations.items():
        s = states[name]
        can_drop = (st.queue_capacity is not None or st.max_wait_s is not None) and s.blocking > 0
        drops = expected_count(s.arrival_rate * s.blocking, duration_s, can_drop=can_drop)
        comp_rows.append(plain_row((name, INF if st.delay else st.servers, s.offered_load,
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
        notes=open_notes(system, workload, stations, states, markov, hit, routes),
    )


def _open_states(stations, routes, lam: float, ca0: float, markov: bool):
    """Request stations: blocking (finite queues) and holding (synchronous calls) are one
    fixed point, since a holder's service includes the waits downstream and drops upstream
    thin the load downstream."""
    plan = route_plan(routes, lam)
    names = list(stations)
    blocking = dict.fromkeys(names, 0.0)
    wq = dict.fromkeys(names, 0.0)
    wvar = dict.fromkeys(names, 0.0)
    states: dict[str, StationState] = {}
    for _ in range(1000):
        arrivals, hops, first, classes = flow_rates(plan, blocking)
        eff = {n: effective_service(stations[n], classes[n], stations, wq, wvar, blocking)
               for n in names}
        holds = {n: any(held for _, held in classes[n]) for n in names}
        mixed = {n: len({scale for scale, _ in classes[n]}) > 1 for n in names}
        states = {}
        for n in names:
            s = station_state(stations[n], arrivals[n], eff[n], markov, None, holds[n],
                               mixed[n])
            if s is not None:
                states[n] = s
        rho = {n: states[n].utilization if n in states else
               arrivals[n] * eff[n][0] / stations[n].servers for n in names}
        ca2 = _arrival_scv(stations, names, arrivals, hops, first, lam, ca0, rho, blocking,
                           {n: eff[n][1] for n in names}, {n: eff[n][4] for n in names})
        for n in names:
            if n not in states:
                states[n] = station_state(stations[n], arrivals[n], eff[n], markov, ca2[n],
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


def _rel_change(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return 1.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


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


def _completed(group, states):
    done = [(p * survival(calls, states), calls) for p, calls in group]
    total = sum(p for p, _ in done)
    return [(p / total, calls) for p, calls in done if p > 0]


def _request_summary(group, stations, states, lam):
    """(throughput, mean latency, error rate, stable, offered rate) of a group of routes."""
    offered = sum(p for p, _ in group)
    done = [(p * survival(calls, states), calls) for p, calls in group]
    completed = sum(p for p, _ in done)
    error_rate = sum(p * (1.0 - survival(calls, states)) for p, calls in group) / offered
    stable = all(states[c.component].stable for _, calls in group for c in calls)
    if stable and completed > 0:
        mean = sum(p * sum(visit_mean(c, stations, states) for c in calls)
                   for p, calls in done)
        return lam * completed, mean / completed, error_rate, True, lam * offered
    return (NAN if not stable else 0.0, INF if not stable else NAN, error_rate, stable,
            lam * offered)


def _bottleneck(stations, states) -> str:
    """The station that saturates first. When some station is overloaded by its own work, the
    most overloaded of those (a holder upstream of it is overloaded only because of it);
    otherwise the highest offered load, holding time included."""
    queueing = [n for n in stations if not stations[n].delay] or list(stations)
    own = [n for n in queueing if states[n].own_load >= 1.0]
    if own:
        return max(own, key=lambda n: states[n].own_load)
    return max(queueing, key=lambda n: states[n].offered_load)

"""Closed workloads: exact MVA on the stations' demands, delays as infinite-server demand.

Means only (request percentiles are NaN); MessageQueue consumers are open stations fed at the
MVA throughput.
"""

from __future__ import annotations

import math

from capsim.analytic import components as comp
from capsim.analytic.consumers import async_rows, solve_consumers
from capsim.analytic.mva import bounds, mva
from capsim.analytic.notes import component_notes
from capsim.analytic.result import AnalyticResult
from capsim.analytic.stations import StationState, expected_count, plain_row, visit_mean
from capsim.analytic.traffic import effective_service, flow_rates, route_plan
from capsim.dists import Exponential
from capsim.schema import ALL_FLOWS

__all__ = ["solve_closed"]

INF = math.inf
NAN = math.nan


def solve_closed(system, workload, stations, duration_s) -> AnalyticResult:
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
    states: dict[str, StationState] = {}
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
        states[name] = StationState(x * v, busy / st.servers, busy / st.servers, x * v,
                              max(res.queue_length[i] - busy, 0.0), res.queue_length[i],
                              max(w - per_visit_service, 0.0), w, blocking, True)
    for name in delays:
        v = visits[name]
        w = demands[name] / v if v > 0 else stations[name].service.mean
        states[name] = StationState(x * v, 0.0, 0.0, x * v, 0.0, x * demands[name], 0.0, w,
                                    0.0, True)
    _closed_holding(system, ratio, stations, states, x)
    rates = comp.step_rates(system, hit)
    consumer_states, async_groups = solve_consumers(
        system, stations, {q: x * n for q, n in rates.publishes.items()}, 1.0,
        all(isinstance(stations[n].service, Exponential) for n in stations
            if stations[n].consumer))
    states.update(consumer_states)
    comp_rows = []
    for name, st in stations.items():
        s = states[name]
        drops = NAN if name in risky else expected_count(
            s.arrival_rate * s.blocking, duration_s,
            can_drop=st.max_wait_s is not None and s.blocking > 0)
        comp_rows.append(plain_row((name, INF if st.delay else st.servers, s.offered_load,
                                 s.utilization, s.throughput, s.lq, s.ls, s.wq, s.w, drops,
                                 s.stable)))
    groups = {f.name: [(r.probability * f.weight, r.calls) for r in system.flow_routes(f, ratio)]
              for f in system.flows}
    rows = [_closed_row(label, routes, stations, states, x, risky)
            for label, routes in groups.items()]
    rows += async_rows(async_groups, stations, states, duration_s)
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
    notes += component_notes(system, workload, stations, states, hit, system.routes(ratio))
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
    plan = route_plan(routes, x)
    names = [n for n in stations if not stations[n].consumer]
    zero = dict.fromkeys(names, 0.0)
    *_, classes = flow_rates(plan, zero)
    wq = {n: states[n].wq for n in names}
    for n in names:
        st, s = stations[n], states[n]
        if not any(held for _, held in classes[n]):
            continue
        m = effective_service(st, classes[n], stations, wq, zero, zero)[0]
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
    mean = sum(p * sum(visit_mean(c, stations, states) for c in calls)
               for p, calls in routes) / share
    touches = any(c.component in risky for _, calls in routes for c in calls)
    err = NAN if touches else 0.0
    return plain_row((label, NAN, x * share, mean, NAN, NAN, NAN, err, err, True))

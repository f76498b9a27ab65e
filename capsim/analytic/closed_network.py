"""Closed workloads: exact MVA on the stations' demands, delays as infinite-server demand.

Means only (request percentiles are NaN); MessageQueue consumers are open stations fed at the
MVA throughput.
"""

from __future__ import annotations

import math

from scipy import optimize

from capsim.analytic import components as comp
from capsim.analytic.consumers import async_rows, solve_consumers
from capsim.analytic.disciplines import prio_key, priority_ratios, tag_routes
from capsim.analytic.mva import bounds, mva
from capsim.analytic.notes import component_notes, discipline_notes
from capsim.analytic.open_network import _room
from capsim.analytic.queues import mmc
from capsim.analytic.result import AnalyticResult
from capsim.analytic.stations import (
    StationState,
    expected_count,
    plain_row,
    prio_of,
    visit_mean,
)
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
    distribution) and for processor sharing with any service (product form: the same MVA,
    multi-core = load-dependent); for other service distributions MVA is an approximation.
    A host is a load-dependent station of its cores whose demand is the work of the stations
    on it / speed; those stations' visits take their work x the host's slowdown, and their
    threads are ignored (they can bind only where threads < users). A priority station is
    solved as FCFS and its wait split over the priority classes by M/M/c's ratios
    (approximation). Request percentiles are NaN: MVA gives means only. Finite queues are
    ignored (they can drop only if servers + queue_capacity < users; then drops and error
    rates are NaN). A TTL cache's hit ratio depends on the throughput: a fixed point.
    Consumers are open stations fed at the MVA throughput. Holding is not modelled (a
    holder's demand is its own service).
    """
    z = workload.think_time.mean
    users = workload.users
    names = [n for n, st in stations.items()
             if not st.delay and not st.consumer and st.host is None]
    delays = [n for n, st in stations.items() if st.delay]
    on_host = {h.name: [n for n, st in stations.items() if st.host == h.name and not
                        st.consumer] for h in system.hosts}
    hosts = {h.name: h for h in system.hosts if on_host[h.name]}
    hit = comp.hit_ratios(system, 0.0)
    for _ in range(100):
        ratio = (lambda h: lambda c: h[c.name])(hit)
        visits = system.visits(ratio)
        demands = _own_demands(system, ratio, stations)
        demand = {n: demands[n] for n in names}
        demand.update({hn: sum(demands[n] for n in on_host[hn]) / hosts[hn].speed
                       for hn in hosts})
        servers = {n: stations[n].servers for n in names}
        servers.update({hn: hosts[hn].cores for hn in hosts})
        z_all = z + sum(demands[n] for n in delays)
        res = mva(demand, users, z_all, servers)
        new = comp.hit_ratios(system, res.throughput)
        if max((abs(new[k] - hit[k]) for k in hit), default=0.0) < 1e-12:
            break
        hit = new
    bnds = bounds(demand, z_all, users, servers)
    x = res.throughput
    routes = tag_routes(system, system.routes(ratio), stations)
    at = {n: i for i, n in enumerate(demand)}
    states: dict[str, StationState] = {}
    risky = set()
    for name in names:
        i = at[name]
        st, v = stations[name], visits[name]
        busy = x * demand[name]
        per_visit_service = demand[name] / v if v > 0 else st.service.mean
        w = res.residence_time[i] / v if v > 0 else st.service.mean
        blocking = 0.0
        if st.queue_capacity is not None and _room(st) < users:
            risky.add(name)
            blocking = NAN
        s = StationState(x * v, busy / st.servers, busy / st.servers, x * v,
                         max(res.queue_length[i] - busy, 0.0), res.queue_length[i],
                         max(w - per_visit_service, 0.0), w, blocking, True)
        if st.ps:  # product form: the residence is the demand x the mean slowdown
            s.wq, s.stretch = 0.0, (res.residence_time[i] / demand[name]
                                    if demand[name] > 0 else 1.0)
        states[name] = s
    _priority_split(stations, states, priority_moments(stations, [(x, r) for r in routes]))
    host_rows = []
    for hn, box in hosts.items():
        i = at[hn]
        d_h, r_h = demand[hn], res.residence_time[i]
        slow = r_h / d_h if d_h > 0 else 1.0
        jobs = x * sum(visits[n] for n in on_host[hn])
        for n in on_host[hn]:
            st, v = stations[n], visits[n]
            held = x * demands[n] / box.speed * slow  # threads busy (their work on the cores)
            w = held / (x * v) if v > 0 else st.service.mean / box.speed * slow
            states[n] = StationState(x * v, held / st.servers, held / st.servers, x * v, 0.0,
                                     held, 0.0, w, 0.0, True, stretch=slow / box.speed)
        busy = x * d_h
        host_rows.append(plain_row((hn, box.cores, busy / box.cores, busy / box.cores, jobs,
                                    max(res.queue_length[i] - busy, 0.0), res.queue_length[i],
                                    0.0, res.queue_length[i] / jobs if jobs > 0 else 0.0, 0.0,
                                    True)))
    for name in delays:
        v = visits[name]
        w = demands[name] / v if v > 0 else stations[name].service.mean
        states[name] = StationState(x * v, 0.0, 0.0, x * v, 0.0, x * demands[name], 0.0, w,
                                    0.0, True)
    _closed_holding(routes, stations, states, x)
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
    comp_rows += host_rows
    groups = {f.name: [(r.probability * f.weight, r.calls)
                       for r in tag_routes(system, system.flow_routes(f, ratio), stations)]
              for f in system.flows}
    rows = [_closed_row(label, routes_, stations, states, x, risky)
            for label, routes_ in groups.items()]
    rows += async_rows(async_groups, stations, states, duration_s)
    if len(system.flows) > 1:
        rows.append(_closed_row(ALL_FLOWS, [(r.probability, r.calls) for r in routes],
                                stations, states, x, risky))
    notes = [closed_exactness(stations, names, {n: users for hn in hosts
                                                for n in on_host[hn]}),
             "request percentiles are NaN: MVA gives means only"]
    if risky:
        notes.append("finite queues ignored by MVA at: " + ", ".join(sorted(risky)))
    if any(v.holds for r in routes for v in r.calls):
        notes.append("holding calls: a holder's row adds the time its workers wait on the calls "
                     "they make (utilization, response), but MVA queues for its own service "
                     "only, so a pool saturated by holding is not seen (use an open workload "
                     "for the cascade)")
    notes += discipline_notes(system, stations, states, hosts, closed=True, users=users)
    notes += component_notes(system, workload, stations, states, hit, routes)
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


def closed_exactness(stations, names, bound: dict[str, float], what: str = "closed workload",
                     more: tuple[str, ...] = ()) -> str:
    """The note saying whether MVA is exact here, and if not, where and why. ``bound``:
    hosted station -> the most requests that can be at it (its threads bind below that);
    ``more``: other reasons it is not."""
    why = list(more)
    fcfs = [n for n in names if not stations[n].ps and not stations[n].priority
            and not isinstance(stations[n].service, Exponential)]
    if fcfs:
        why.append("non-exponential FCFS service at " + ", ".join(fcfs))
    prio = [n for n in names if stations[n].priority]
    if prio:
        why.append("priorities at " + ", ".join(prio))
    bind = [n for n, b in bound.items() if stations[n].servers < b]
    if bind:
        why.append("host threads that can bind at " + ", ".join(bind))
    if not why:
        return f"{what}: exact MVA means (product form)"
    return f"{what}: MVA is an approximation here (" + "; ".join(why) + ")"


def priority_moments(stations, weighted) -> dict[str, dict]:
    """Per priority station, priority class -> (visits per s, mean, second moment of the own
    service); ``weighted``: (rate, route) pairs."""
    acc: dict[str, dict] = {}
    for rate, r in weighted:
        for v in r.calls:
            st = stations[v.component]
            if not st.priority:
                continue
            d = v.service_of(st.service)
            m = v.scale * d.mean
            a = acc.setdefault(v.component, {}).setdefault(prio_of(v), [0.0, 0.0, 0.0])
            q = rate * r.probability
            a[0] += q
            a[1] += q * m
            a[2] += q * (v.scale**2 * d.variance + m * m)
    return {n: {k: (a[0], a[1] / a[0], a[2] / a[0]) for k, a in per.items() if a[0] > 0}
            for n, per in acc.items()}


def _priority_split(stations, states, moments) -> None:
    """A priority station solved as FCFS: its mean wait split over the priority classes by
    the priority/FCFS ratios of an M/G/1 with a c-times faster server (Bondi & Buzen, with
    the classes' own service moments) at the open load that waits as long as MVA's station
    (a closed population's queue is shorter than an open stream's), scaled to keep the
    rate-weighted mean wait MVA found (consistent with MVA's throughput; the mean is exact
    for exponential service equal for all classes, where the number waiting does not depend
    on the order). An approximation of the split."""
    for n, per in moments.items():
        s, st = states[n], stations[n]
        keys = sorted(per, key=prio_key)
        lam = [per[k][0] for k in keys]
        total = sum(lam)
        if len(keys) < 2 or total <= 0 or s.wq <= 0:
            s.classes = {k: (s.wq, 0.0, None) for k in keys}
            continue
        means = [per[k][1] for k in keys]
        c = st.servers
        m = sum(r * q for r, q in zip(lam, means, strict=True)) / total
        load = total * m / c
        f = _open_equivalent(s.wq, m, c, min(load, 0.999999)) / load if load > 0 else 1.0
        ratios = priority_ratios([r * f for r in lam], means, [per[k][2] for k in keys], c)
        ratios = [q if math.isfinite(q) else 0.0 for q in ratios]
        norm = sum(r * q for r, q in zip(lam, ratios, strict=True)) / total
        s.classes = {k: (s.wq * q / norm if norm > 0 else s.wq, 0.0, None)
                     for k, q in zip(keys, ratios, strict=True)}


def _open_equivalent(wait: float, mean: float, c: int, load: float) -> float:
    """The per-server load at which an open M/M/c waits ``wait``: a finite population queues
    less than an open stream at the same utilization, so its priority split is taken at the
    open load that queues as much (never above the real one)."""
    def gap(rho: float) -> float:
        return mmc(rho * c / mean, mean, c).mean_wait - wait

    if load <= 0 or gap(load) <= 0:
        return load
    return float(optimize.brentq(gap, 1e-12, load, xtol=1e-14, rtol=1e-12))


def _closed_holding(routes, stations, states, x) -> None:
    """A holder's row counts the calls it waits on (busy time, response, number present); MVA
    itself queues for its own service only, so a pool saturated by holding is not seen."""
    plan = route_plan(routes, x)
    names = [n for n in stations if not stations[n].consumer]
    zero = dict.fromkeys(names, 0.0)
    *_, classes = flow_rates(plan, zero)
    wq = {n: states[n].wq for n in names}
    stretch = {n: states[n].stretch for n in names if states[n].stretch != 1.0}
    class_wq = {n: {k: v[0] for k, v in states[n].classes.items()} for n in names
                if states[n].classes}
    for n in names:
        st, s = stations[n], states[n]
        if not any(held for _, held in classes[n]):
            continue
        m = effective_service(st, classes[n], stations, wq, zero, zero, stretch, class_wq)[0]
        s.w = s.wq + m
        s.ls = s.lq + s.arrival_rate * m
        if not st.delay and not st.ps:  # PS: the cores' busy share, held slots or not
            s.utilization = s.offered_load = s.arrival_rate * m / st.servers


def _own_demands(system, ratio, stations) -> dict[str, float]:
    """Busy time per request at each request station from its own visits (visits x scale x
    mean service): ``System.demands`` also charges a holder for the service of the calls it
    makes, which MVA would count twice (the request is at the called station meanwhile)."""
    d = dict.fromkeys(stations, 0.0)
    for route in system.routes(ratio):
        for v in route.calls:
            d[v.component] += (route.probability * v.scale
                               * v.service_of(stations[v.component].service).mean)
    return d


def _closed_row(label, routes, stations, states, x, risky) -> tuple:
    share = sum(p for p, _ in routes)
    mean = sum(p * sum(visit_mean(c, stations, states) for c in calls)
               for p, calls in routes) / share
    touches = any(c.component in risky for _, calls in routes for c in calls)
    err = NAN if touches else 0.0
    return plain_row((label, NAN, x * share, mean, NAN, NAN, NAN, err, err, True))

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
from capsim.analytic import shedding as shed
from capsim.analytic.consumers import async_rows, solve_consumers
from capsim.analytic.disciplines import (
    host_states,
    priority_state,
    ps_cpu,
    ps_state,
    stretch_scv,
    tag_routes,
)
from capsim.analytic.notes import open_notes
from capsim.analytic.percentiles import latency_percentiles
from capsim.analytic.queues import erlang_c
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


def solve_open(system, workload, stations, duration_s, populations=None) -> AnalyticResult:
    """``populations``: name -> {flow: share of all requests} for per-population rows (a
    mixed workload solved as one superposed stream)."""
    lam = workload.judged_rate_per_s(duration_s)  # a profile: its busiest five minutes
    ca0 = workload.interarrival.scv
    hit = comp.hit_ratios(system, lam)

    def ratio(c):
        return hit[c.name]

    gates = shed.gates_for(system, lam, ratio)  # rate limits, lossy hops (analytic.shedding)
    routes = tag_routes(system, shed.admitted_routes(system.routes(ratio), gates), stations)
    # a finite queue behind a pool of fewer workers than it has room for never drops
    callers = _callers(routes, stations)
    stations = {n: replace(st, queue_capacity=None) if st.queue_capacity is not None
                and callers.get(n, INF) <= _room(st) else st
                for n, st in stations.items()}
    sync = {n: st for n, st in stations.items() if not st.consumer}
    # a binding rate limit lets through a stream smoother than Poisson
    poisson = isinstance(workload.interarrival, Exponential) and not shed.smooths(gates)
    markov = poisson and all(
        isinstance(s.service, Exponential) for s in stations.values() if not s.delay)
    states, hosts = _open_states(system, sync, routes, lam, ca0, markov, poisson,
                                 shed.station_gates(sync, gates))
    rates = comp.step_rates(system, hit)
    msg_rates = {q: lam * n for q, n in rates.publishes.items()}
    consumer_states, async_groups = solve_consumers(system, stations, msg_rates, ca0, markov)
    states.update(consumer_states)

    by_flow = {f.name: tag_routes(system, shed.admitted_routes(system.flow_routes(f, ratio),
                                                               gates), stations)
               for f in system.flows}
    groups = {f.name: [(r.probability * f.weight, r.calls) for r in by_flow[f.name]]
              for f in system.flows}
    if len(system.flows) > 1:
        groups[ALL_FLOWS] = [(r.probability, r.calls) for r in routes]
    pop_groups = {name: [(r.probability * share, r.calls) for f, share in mix.items()
                         for r in by_flow[f]] for name, mix in (populations or {}).items()}
    groups.update({("population", k): g for k, g in pop_groups.items()})
    summary = {label: _request_summary(g, stations, states, lam) for label, g in groups.items()}
    # a flow's own limit: its rejected requests are errors that visited nothing
    summary = shed.entry_errors(summary, shed.entry_shares(system, gates, populations))
    pct = latency_percentiles({label: _completed(groups[label], states)
                        for label, (thr, _, _, stable, _) in summary.items()
                        if stable and thr > 0}, stations, states)
    rows, pop_rows = [], []
    for label, (thr, mean, err, stable, offered_rate) in summary.items():
        p50, p95, p99 = pct.get(label, (INF, INF, INF) if not stable else (NAN, NAN, NAN))
        errors = expected_count(offered_rate * err, duration_s, can_drop=err > 0)
        if isinstance(label, tuple):
            pop_rows.append(plain_row((label[1], NAN, thr, mean, p50, p95, p99, errors, err,
                                       stable)))
            continue
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
    comp_rows += [plain_row(h.row()) for h in hosts.values()]  # after the stations, as a run
    return AnalyticResult(
        system=system.name,
        workload=f"OpenWorkload(lambda={lam:.6g}/s)",
        closed=False,
        latency_rows=tuple(rows),
        component_rows=tuple(comp_rows),
        bottleneck=_bottleneck(stations, states, hosts),
        unstable_components=tuple([n for n in stations if not states[n].stable]
                                  + [h for h, hs in hosts.items() if not hs.stable]),
        notes=open_notes(system, workload, stations, states, markov, hit, routes, hosts),
        population_rows=tuple(pop_rows),
    )


def _open_states(system, stations, routes, lam: float, ca0: float, markov: bool,
                 poisson: bool, gates: dict[str, float] | None = None):
    """Request stations: blocking (finite queues) and holding (synchronous calls) are one
    fixed point, since a holder's service includes the waits downstream and drops upstream
    thin the load downstream; so are the slowdowns of processor sharing and shared hosts
    (which stretch the visits' own service) and the priority classes' waits. ``gates``
    (rate limits, lossy hops) thin the arrivals at the stations they guard."""
    plan = route_plan(routes, lam)
    names = list(stations)
    blocking = dict.fromkeys(names, 0.0)
    wq = dict.fromkeys(names, 0.0)
    wvar = dict.fromkeys(names, 0.0)
    ca2_prev = dict.fromkeys(names, 1.0)
    stretch: dict[str, float] = {}
    class_wq: dict[str, dict] = {}
    states: dict[str, StationState] = {}
    hosts: dict = {}
    for _ in range(1000):
        arrivals, hops, first, classes = flow_rates(plan, blocking, gates)
        holds = {n: any(held for _, held in classes[n]) for n in names}
        mixed = {n: len({own[:2] for own, _ in classes[n]}) > 1 for n in names}
        work = {n: _own_work(stations[n], classes[n]) for n in names}
        cpus = {}
        for n in names:
            st = stations[n]
            if st.ps:
                own = work[n] / arrivals[n] if arrivals[n] > 0 else st.service.mean
                cpus[n] = ps_cpu(st, arrivals[n], own, ca2_prev[n], holds[n])
                stretch[n] = cpus[n].stretch
        hosts = host_states(system, stations, {n: arrivals[n] * (1.0 - blocking[n])
                                               for n in names},
                            {n: work[n] * (1.0 - blocking[n]) for n in names})
        for n in names:
            h = stations[n].host
            if h is not None:
                stretch[n] = hosts[h].stretch / hosts[h].speed
        eff = {n: effective_service(stations[n], classes[n], stations, wq, wvar, blocking,
                                    stretch, class_wq)
               for n in names}
        states = {}
        for n in names:
            s = _state(stations[n], arrivals[n], eff[n], classes[n], stations, wq, wvar,
                       blocking, stretch, class_wq, cpus.get(n), markov, poisson, None,
                       ca2_prev[n], holds[n], mixed[n])
            if s is not None:
                states[n] = s
        rho = {n: states[n].utilization if n in states else
               arrivals[n] * eff[n][0] / stations[n].servers for n in names}
        # a symmetric queue (processor sharing without a pool) passes Poisson on: cs2 = 1
        sym = {n for n in names if stations[n].ps and not (
            holds[n] and stations[n].max_concurrency is not None)}
        ca2 = _arrival_scv(stations, names, arrivals, hops, first, lam, ca0, rho, blocking,
                           {n: 1.0 if n in sym else eff[n][1] for n in names},
                           {n: 1.0 if n in sym else eff[n][4] for n in names})
        for n in names:
            if n not in states:
                states[n] = _state(stations[n], arrivals[n], eff[n], classes[n], stations, wq,
                                   wvar, blocking, stretch, class_wq, cpus.get(n), markov,
                                   poisson, ca2[n], ca2_prev[n], holds[n], mixed[n])
        for n in names:
            st = stations[n]
            if st.host is not None:
                _hosted(states[n], st, hosts[st.host], stretch[n], eff[n], poisson, ca2[n])
        new_cwq = {n: {k: v[0] for k, v in states[n].classes.items()}
                   for n in names if states[n].classes}
        change = max([abs(states[n].blocking - blocking[n]) for n in names]
                     + [_rel_change(states[n].wq, wq[n]) for n in names]
                     + [_rel_change(states[n].wait_var, wvar[n]) for n in names]
                     + [_rel_change(ca2[n], ca2_prev[n]) for n in names if n in cpus]
                     + [_rel_change(v, class_wq.get(n, {}).get(k, NAN))
                        for n, cw in new_cwq.items() for k, v in cw.items()], default=0.0)
        blocking = {n: states[n].blocking for n in names}
        wq = {n: states[n].wq for n in names}
        wvar = {n: states[n].wait_var for n in names}
        class_wq = new_cwq
        ca2_prev = ca2
        if change < 1e-13:
            break
    for n, share in (gates or {}).items():
        states[n].gate = share  # a request reaching it survives its gate with this share
    return states, hosts


def _own_work(st, classes) -> float:
    """Work (seconds of own service, unstretched) arriving per second at a station."""
    return sum(r * scale * (st.service if service is None else service).mean
               for ((scale, service, _), _), r in classes.items())


def _state(st, lk, eff, classes, stations, wq, wvar, blocking, stretch, class_wq, cpu,
           markov, poisson, ca2, ca2_prev, holds, mixed):
    """One station's state by its discipline (``ca2=None``: only what needs no arrival scv;
    processor sharing uses the previous iteration's scv, so it is always solved)."""
    if st.ps:
        return ps_state(st, lk, eff, cpu, ca2 if ca2 is not None else ca2_prev, holds, mixed,
                        poisson)
    if st.priority:
        by_class: dict = {}
        for cls, r in classes.items():
            by_class.setdefault(cls[0][2], {})[cls] = r
        class_eff = {}
        for k, sub in by_class.items():
            m, scv, *_ = effective_service(st, sub, stations, wq, wvar, blocking, stretch,
                                           class_wq)
            class_eff[k] = (sum(sub.values()), m, scv)
        return priority_state(st, lk, eff, class_eff, markov, poisson, ca2, holds, mixed)
    # a hosted pool's service is a PS sojourn: never exponential, so G/G/c
    return station_state(st, lk, eff, markov and st.host is None, ca2, holds, mixed)


def _hosted(s: StationState, st, host, stretch: float, eff, poisson: bool, ca2: float) -> None:
    """A hosted station's pool state, with its host's slowdown and stability."""
    s.stretch = stretch
    s.stretch_scv = stretch_scv(host.stretch)
    own = eff[2] * stretch
    s.own_load = s.arrival_rate * own / st.servers if math.isfinite(own) else INF
    bind = erlang_c(st.servers, s.arrival_rate * eff[0]) if s.stable else 1.0
    s.exact = (poisson and abs(ca2 - 1.0) < 1e-9 and host.stable and bind < 1e-6
               and not s.holds)


def _room(st) -> float:
    """Requests a station holds before its finite queue drops (inf: never drops: processor
    sharing without a cap admits everyone)."""
    if st.ps:
        return INF if st.max_concurrency is None else st.max_concurrency + st.queue_capacity
    return st.servers + st.queue_capacity


def _slots(st) -> float:
    """Requests a station works on at once (a holder waits on at most one call per slot)."""
    if st.ps:
        return INF if st.max_concurrency is None else st.max_concurrency
    return st.servers


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
    return {k: INF if h is None else sum(_slots(stations[n]) for n in h)
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


def _bottleneck(stations, states, hosts=None) -> str:
    """The station (or host) that saturates first. When some station is overloaded by its
    own work, the most overloaded of those (a holder upstream of it is overloaded only
    because of it; a station on an overloaded host only because of the host); otherwise the
    highest offered load, holding time included."""
    hosts = hosts or {}
    queueing = [n for n in stations if not stations[n].delay] or list(stations)
    load = {n: states[n].own_load for n in queueing
            if stations[n].host is None or hosts[stations[n].host].stable}
    load.update({h: hs.rho for h, hs in hosts.items()})
    own = [n for n, v in load.items() if v >= 1.0]
    if own:
        return max(own, key=lambda n: load[n])
    offered = {n: states[n].offered_load for n in queueing}
    offered.update({h: hs.rho for h, hs in hosts.items()})
    return max(offered, key=lambda n: offered[n])

"""Several populations with at least one closed: multi-class MVA on the system's stations.

Each population is a class (``capsim.model.shares``): its demand at each station comes from
the flows it runs (``System.with_flows``, the same per-visit demands as ``solve_closed``), a
closed one brings its users and mean think time, an open one its rate. The stations are the
queueing stations (FCFS, priority, processor sharing: ``servers`` servers, load-dependent when
more than one), the hosts (a load-dependent station of ``cores`` servers whose demand is the
work of the stations on it / speed; those stations' own rows take their share of it), and
the delays (infinite servers). Closed classes alone are solved by exact multi-class MVA
(``multiclass.mva_multiclass``); with open classes by the BCMP mixed-network method
(``multiclass.mixed_network``). Exact for product form: FCFS with the same exponential service
for every visit, processor sharing (any service), delays, hosts whose threads cannot bind;
class-dependent FCFS service, priorities (solved as FCFS, the wait split over the priority
classes), non-exponential FCFS service, non-Poisson open arrivals and holding are
approximations, named in the notes. Means only: percentiles are NaN.

Rows: per flow (a flow several populations run pools their requests, throughput-weighted),
the pooled ``"all"`` row, one ``population_rows`` row per population, per station and host.
MessageQueue consumers are open stations fed at the solved throughputs.
"""

from __future__ import annotations

import math

from capsim.analytic import components as comp
from capsim.analytic.closed_network import (
    _closed_holding,
    _own_demands,
    _priority_split,
    closed_exactness,
    priority_moments,
)
from capsim.analytic.consumers import async_rows, solve_consumers
from capsim.analytic.disciplines import tag_routes
from capsim.analytic.multiclass import mixed_network, mva_multiclass
from capsim.analytic.notes import component_notes, discipline_notes
from capsim.analytic.open_network import _room
from capsim.analytic.result import AnalyticResult
from capsim.analytic.stations import StationState, build_stations, plain_row, visit_mean
from capsim.dists import Exponential
from capsim.errors import ModelError
from capsim.model import ClosedWorkload, OpenWorkload
from capsim.model.workload import weighted_system
from capsim.schema import ALL_FLOWS

__all__ = ["solve_multiclass"]

INF = math.inf
NAN = math.nan


def solve_multiclass(system, workload, parts, duration_s) -> AnalyticResult:
    """``parts``: the workload's populations (``shares(system, workload)``), at least one
    closed."""
    stations = build_stations(system)
    queueing = [n for n, st in stations.items()
                if not st.delay and not st.consumer and st.host is None]
    delays = [n for n, st in stations.items() if st.delay]
    on_host = {h.name: [n for n, st in stations.items() if st.host == h.name
                        and not st.consumer] for h in system.hosts}
    hosts = {h.name: h for h in system.hosts if on_host[h.name]}
    mva_names = queueing + list(hosts) + delays  # the solver's stations, in this order
    servers = {n: stations[n].servers for n in queueing}
    servers.update({h: hosts[h].cores for h in hosts})
    servers.update(dict.fromkeys(delays, 1))
    delay = {n: n in delays for n in mva_names}
    closed = [p for p in parts if isinstance(p.workload, ClosedWorkload)]
    opens = [p for p in parts if isinstance(p.workload, OpenWorkload)]
    views = {p.name: system.with_flows(p.flows, p.probabilities) for p in parts}
    lam = {p.name: p.workload.judged_rate_per_s(duration_s) for p in opens}
    users = {p.name: p.workload.users for p in closed}
    think = {p.name: p.workload.think_time.mean for p in closed}

    rates = {p.name: lam.get(p.name, 0.0) for p in parts}
    hit = comp.hit_ratios(*weighted_system(system, parts, list(rates.values())))
    approx_mva = False
    for _ in range(100):
        ratio = (lambda h: lambda c: h[c.name])(hit)
        own = {p.name: _own_demands(views[p.name], ratio, stations) for p in parts}
        demand = {c: _mva_demands(d, queueing, delays, hosts, on_host) for c, d in own.items()}
        res, approx_mva = _solve(opens, closed, lam, users, think, demand, servers, delay)
        x = _throughputs(res, parts, lam)
        new = comp.hit_ratios(*weighted_system(system, parts, [x[p.name] for p in parts]))
        if max((abs(new[k] - hit[k]) for k in hit), default=0.0) < 1e-12:
            break
        hit = new
    per_class, total = _tables(res)
    stable = getattr(res, "stable", True)
    visits = {p.name: views[p.name].visits(ratio) for p in parts}
    routes = {p.name: {f: tag_routes(views[p.name], views[p.name].flow_routes(f, ratio),
                                     stations) for f in p.flows} for p in parts}
    label = _label(parts, lam)
    if not stable:
        return _unstable(system, parts, stations, res, label, hosts)

    # per class: what a visit of that class waits and how much its service is stretched
    class_states = {}
    for p in parts:
        c = p.name
        resid = per_class[c]["residence"]
        states = {}
        for n in stations:
            if stations[n].consumer:
                continue
            st, v = stations[n], visits[c].get(n, 0.0)
            if st.host is not None:
                h = st.host
                d_h = demand[c][h]
                slow = resid[h] / d_h if d_h > 0 else 1.0
                states[n] = _visit_state(0.0, slow / hosts[h].speed)
            elif st.delay:
                states[n] = _visit_state(0.0, 1.0)
            elif st.ps:
                d = demand[c][n]
                states[n] = _visit_state(0.0, resid[n] / d if d > 0 else 1.0)
            else:
                d = demand[c][n]
                states[n] = _visit_state(max(resid[n] - d, 0.0) / v if v > 0 else 0.0, 1.0)
        class_states[c] = states
    _split_priorities(stations, parts, class_states, routes, x)

    # station rows: the classes together
    states = _station_states(stations, queueing, delays, hosts, on_host, parts, visits,
                             demand, own, per_class, total, x)
    x_all = sum(x.values())
    mix = [x[p.name] for p in parts]
    view_all, _ = weighted_system(system, parts, mix)
    all_routes = tag_routes(view_all, view_all.routes(ratio), stations)
    _closed_holding(all_routes, stations, states, x_all)
    publishes = {}
    for p in parts:
        for q, n in comp.step_rates(views[p.name], hit).publishes.items():
            publishes[q] = publishes.get(q, 0.0) + x[p.name] * n
    consumer_states, async_groups = solve_consumers(
        system, stations, publishes, 1.0,
        all(isinstance(stations[n].service, Exponential) for n in stations
            if stations[n].consumer))
    states.update(consumer_states)

    risky = {n for n in queueing if stations[n].queue_capacity is not None
             and _room(stations[n]) < (INF if opens else sum(users.values()))}
    comp_rows = []
    for name, st in stations.items():
        s = states[name]
        drops = NAN if name in risky else (0.0 if st.max_wait_s is None or s.blocking <= 0
                                           else _count(s.arrival_rate * s.blocking,
                                                       duration_s))
        comp_rows.append(plain_row((name, INF if st.delay else st.servers, s.offered_load,
                                    s.utilization, s.throughput, s.lq, s.ls, s.wq, s.w,
                                    drops, s.stable)))
    comp_rows += _host_rows(hosts, on_host, visits, parts, x, total, demand)

    # latency: per (population, flow), then pooled per flow, all, and per population
    cells = {}
    for p in parts:
        for f, q in zip(p.flows, p.probabilities, strict=True):
            rs = routes[p.name][f]
            share = sum(r.probability for r in rs)
            mean = sum(r.probability * sum(visit_mean(v, stations, class_states[p.name])
                                           for v in r.calls) for r in rs) / share
            err = NAN if any(v.component in risky for r in rs for v in r.calls) else 0.0
            cells[p.name, f] = (x[p.name] * q, mean, err)
    used = [f.name for f in system.flows if any(k[1] == f.name for k in cells)]
    rows = [_pooled(f, [v for k, v in cells.items() if k[1] == f]) for f in used]
    rows += async_rows(async_groups, stations, states, duration_s)
    if len(used) > 1:
        rows.append(_pooled(ALL_FLOWS, list(cells.values())))
    pop_rows = [_pooled(p.name, [v for k, v in cells.items() if k[0] == p.name])
                for p in parts]

    notes = _notes(system, workload, stations, queueing, hosts, on_host, parts, opens, users,
                   res, approx_mva, risky, routes, states, hit, all_routes)
    return AnalyticResult(
        system=system.name,
        workload=label,
        closed=not opens,
        latency_rows=tuple(rows),
        component_rows=tuple(comp_rows),
        bottleneck=_bottleneck(queueing, hosts, total),
        unstable_components=tuple(n for n in stations if not states[n].stable),
        notes=tuple(notes),
        population_rows=tuple(pop_rows),
    )


# ------------------------------------------------------------------------------- the solve


def _mva_demands(own: dict, queueing, delays, hosts, on_host) -> dict[str, float]:
    """One class's demand per solver station: its own service at a station, a host's work /
    speed, a delay's latency."""
    d = {n: own[n] for n in queueing}
    d.update({h: sum(own[n] for n in on_host[h]) / hosts[h].speed for h in hosts})
    d.update({n: own[n] for n in delays})
    return d


def _solve(opens, closed, lam, users, think, demand, servers, delay):
    """(result, approximate): exact MVA, or Schweitzer-Bard where the exact lattice is too
    large."""
    def run(approximate: bool):
        dc = {p.name: demand[p.name] for p in closed}
        if not opens:
            return mva_multiclass(dc, {c: users[c] for c in dc}, {c: think[c] for c in dc},
                                  servers, delay, approximate=approximate)
        do = {p.name: demand[p.name] for p in opens}
        return mixed_network({o: lam[o] for o in do}, do, dc, {c: users[c] for c in dc},
                             {c: think[c] for c in dc}, servers, delay,
                             approximate=approximate)

    try:
        return run(False), False
    except ModelError as exc:
        if "approximate=True" not in str(exc):
            raise
        return run(True), True


def _throughputs(res, parts, lam) -> dict[str, float]:
    if hasattr(res, "open_classes"):
        x = dict(zip(res.closed_classes, res.closed_throughput, strict=True))
        x.update(dict(zip(res.open_classes, res.open_throughput, strict=True)))
    else:
        x = dict(zip(res.classes, res.throughput, strict=True))
    return {p.name: float(x.get(p.name, lam.get(p.name, 0.0))) for p in parts}


def _tables(res):
    """Per class {"residence": station -> R, "queue": station -> Q}; per station totals."""
    def table(classes, resid, queue):
        return {c: {"residence": dict(zip(res.stations, r, strict=True)),
                    "queue": dict(zip(res.stations, q, strict=True))}
                for c, r, q in zip(classes, resid, queue, strict=True)}

    if hasattr(res, "open_classes"):
        out = table(res.closed_classes, res.closed_residence_time, res.closed_queue_length)
        out.update(table(res.open_classes, res.open_residence_time, res.open_queue_length))
    else:
        out = table(res.classes, res.residence_time, res.queue_length)
    total = {"utilization": dict(zip(res.stations, res.total_utilization, strict=True)),
             "queue": dict(zip(res.stations, res.total_queue_length, strict=True))}
    return out, total


def _visit_state(wq: float, stretch: float) -> StationState:
    """What a visit of one class sees at a station: its wait and its service's stretch."""
    return StationState(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, wq, 0.0, 0.0, True, stretch=stretch)


def _split_priorities(stations, parts, class_states, routes, x) -> None:
    """A priority station's wait split over the priority classes (see
    ``closed_network._priority_split``). MVA charges each population a wait in proportion to
    its own service time (``D_ck (1 + Q_k)``), which under FCFS is the same for all; the
    station's pooled wait (rate-weighted, MVA's queue) is split by priority class instead,
    the same for every population of that class."""
    weighted = [(x[p.name] * q, r) for p in parts
                for f, q in zip(p.flows, p.probabilities, strict=True) for r in routes[p.name][f]]
    moments = priority_moments(stations, weighted)
    for n, per in moments.items():
        lam_c = {}
        for p in parts:
            for f, q in zip(p.flows, p.probabilities, strict=True):
                for r in routes[p.name][f]:
                    k = sum(1 for v in r.calls if v.component == n)
                    if k:
                        lam_c[p.name] = lam_c.get(p.name, 0.0) + x[p.name] * q * r.probability * k
        total = sum(lam_c.values())
        if total <= 0 or len(per) < 2:
            continue
        wq = sum(lam_c[c] * class_states[c][n].wq for c in lam_c) / total
        probe = StationState(total, 0.0, 0.0, total, 0.0, 0.0, wq, wq, 0.0, True)
        _priority_split(stations, {n: probe}, {n: per})
        if wq <= 0 or not probe.classes:
            continue
        for c in lam_c:  # FCFS waits alike for every population: the pooled wait, split
            class_states[c][n].classes = dict(probe.classes)


def _station_states(stations, queueing, delays, hosts, on_host, parts, visits, demand,
                    own, per_class, total, x) -> dict[str, StationState]:
    """The classes together, per station (rows; holding and consumers start from these)."""
    states: dict[str, StationState] = {}
    for n in queueing + delays:
        st = stations[n]
        thr = sum(x[p.name] * visits[p.name].get(n, 0.0) for p in parts)
        busy = sum(x[p.name] * demand[p.name][n] for p in parts)
        ls = total["queue"][n]
        w = ls / thr if thr > 0 else st.service.mean
        if st.delay:
            states[n] = StationState(thr, 0.0, 0.0, thr, 0.0, ls, 0.0, w, 0.0, True)
            continue
        service = busy / thr if thr > 0 else st.service.mean
        u = total["utilization"][n]
        s = StationState(thr, u, u, thr, max(ls - busy, 0.0), ls, max(w - service, 0.0), w,
                         0.0, True)
        if st.ps:
            s.wq, s.stretch = 0.0, (w / service if service > 0 else 1.0)
        states[n] = s
    for h, box in hosts.items():
        for n in on_host[h]:
            st = stations[n]
            thr = sum(x[p.name] * visits[p.name].get(n, 0.0) for p in parts)
            held = work = 0.0  # threads busy: each class's work there x its slowdown
            for p in parts:
                d_h = demand[p.name][h]
                slow = per_class[p.name]["residence"][h] / d_h if d_h > 0 else 1.0
                held += x[p.name] * own[p.name][n] * slow / box.speed
                work += x[p.name] * own[p.name][n]
            w = held / thr if thr > 0 else st.service.mean / box.speed
            states[n] = StationState(thr, held / st.servers, held / st.servers, thr, 0.0, held,
                                     0.0, w, 0.0, True, stretch=held / work if work > 0 else 1.0)
    return states


def _host_rows(hosts, on_host, visits, parts, x, total, demand) -> list[tuple]:
    """Each host's row, as the engine's: servers = cores, no wait, busy cores."""
    rows = []
    for h, box in hosts.items():
        jobs = sum(x[p.name] * visits[p.name].get(n, 0.0) for p in parts for n in on_host[h])
        busy = sum(x[p.name] * demand[p.name][h] for p in parts)
        ls = total["queue"][h]
        rows.append(plain_row((h, box.cores, total["utilization"][h], total["utilization"][h],
                               jobs, max(ls - busy, 0.0), ls, 0.0,
                               ls / jobs if jobs > 0 else 0.0, 0.0, True)))
    return rows


def _pooled(label, cells) -> tuple:
    """A latency row from (throughput, mean, error rate) cells: throughput-weighted."""
    thr = sum(t for t, _, _ in cells)
    mean = sum(t * m for t, m, _ in cells) / thr if thr > 0 else NAN
    err = NAN if any(math.isnan(e) for _, _, e in cells) else 0.0
    return plain_row((label, NAN, thr, mean, NAN, NAN, NAN, err, err, True))


def _count(rate: float, duration_s: float | None) -> float:
    return NAN if duration_s is None else rate * duration_s


def _bottleneck(queueing, hosts, total) -> str:
    """The most utilized queueing station or host (per server)."""
    names = queueing + list(hosts)
    if not names:
        return ""
    return max(names, key=lambda n: total["utilization"][n])


def _label(parts, lam) -> str:
    out = []
    for p in parts:
        w = p.workload
        if isinstance(w, ClosedWorkload):
            out.append(f"{p.name}: users={w.users}, think={w.think_time.mean:.6g}s")
        else:
            out.append(f"{p.name}: lambda={lam[p.name]:.6g}/s")
    return "MixedWorkload(" + "; ".join(out) + ")"


# ------------------------------------------------------------------------ the unstable case


def _unstable(system, parts, stations, res, label, hosts) -> AnalyticResult:
    """The open classes alone saturate a station: no steady state anywhere downstream of it;
    every latency is inf and the closed classes' throughput 0 (they end up queued there)."""
    bad = set(res.unstable_stations)
    util = dict(zip(res.stations, res.total_utilization, strict=True))
    rows = []
    for name, st in stations.items():
        if st.consumer:
            rows.append(plain_row((name, st.servers, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0.0,
                                   True)))
            continue
        key = name if st.host is None else None
        u = util.get(key, 0.0) if not st.delay else 0.0
        if name in bad:
            rows.append(plain_row((name, st.servers, u, 1.0, NAN, INF, INF, INF, INF, 0.0,
                                   False)))
        else:
            rows.append(plain_row((name, INF if st.delay else st.servers, u, u, NAN, NAN, NAN,
                                   NAN, NAN, 0.0, True)))
    for h, box in hosts.items():
        u = util[h]
        ok = h not in bad
        rows.append(plain_row((h, box.cores, u, u if ok else 1.0, NAN, NAN if ok else INF,
                               NAN if ok else INF, 0.0, NAN if ok else INF, 0.0, ok)))
    used = [f.name for f in system.flows if any(f.name in p.flows for p in parts)]
    lat = [plain_row((f, NAN, NAN, INF, INF, INF, INF, 0.0, 0.0, False)) for f in used]
    if len(used) > 1:
        lat.append(plain_row((ALL_FLOWS, NAN, NAN, INF, INF, INF, INF, 0.0, 0.0, False)))
    pops = [plain_row((p.name, NAN, NAN, INF, INF, INF, INF, 0.0, 0.0, False)) for p in parts]
    worst = max(bad, key=lambda n: util[n])
    return AnalyticResult(
        system=system.name, workload=label, closed=False, latency_rows=tuple(lat),
        component_rows=tuple(rows), bottleneck=worst, unstable_components=tuple(sorted(bad)),
        notes=("mixed network: the open populations alone saturate " + ", ".join(sorted(bad))
               + " (offered load >= 1): no steady state, every latency is inf and the closed "
               "populations' throughput tends to 0 (their requests end up queued there); the "
               "other stations' queue metrics are NaN",),
        population_rows=tuple(pops),
    )


# ----------------------------------------------------------------------------------- notes


def _notes(system, workload, stations, queueing, hosts, on_host, parts, opens, users, res,
           approx_mva, risky, routes, states, hit, all_routes) -> list[str]:
    how = ("Schweitzer-Bard approximate recursion" if approx_mva else
           "exact Reiser-Lavenberg recursion")
    what = "multi-class MVA (" + ("BCMP mixed network: open classes fix the utilizations, "
                                  "closed ones see the stations slowed by them; " + how
                                  if opens else how) + ")"
    bound = sum(users.values()) if not opens else INF
    why = []
    dependent = _class_dependent(stations, queueing, parts, routes)
    if dependent:
        why.append("class-dependent FCFS service (BCMP needs one exponential service for "
                   "every class at an FCFS station; MVA charges each class its own) at "
                   + ", ".join(dependent))
    if opens and not getattr(res, "exact", True):
        why.append("a multi-server station shared by open and closed classes (Seidmann's "
                   "approximation)")
    poisson = [p.name for p in opens if not isinstance(p.workload.interarrival, Exponential)]
    if poisson:
        why.append("non-Poisson open arrivals taken as Poisson: " + ", ".join(poisson))
    if approx_mva:
        why.insert(0, "the exact recursion's lattice of population vectors is too large: "
                   "Schweitzer-Bard approximate MVA, a few percent")
    notes = [closed_exactness(stations, queueing, {n: bound for h in hosts for n in on_host[h]},
                              what, tuple(why))]
    notes.append("request percentiles are NaN: multi-class MVA gives means only")
    notes.append("populations are the classes: each with the flows it runs (its demands), "
                 "its users and mean think time (closed) or rate (open); a flow several "
                 "populations run is their requests pooled (throughput-weighted)")
    if risky:
        notes.append("finite queues ignored by MVA at: " + ", ".join(sorted(risky)))
    if any(v.holds for r in all_routes for v in r.calls):
        notes.append("holding calls: a holder's row adds the time its workers wait on the calls "
                     "they make (utilization, response), but MVA queues for its own service "
                     "only, so a pool saturated by holding is not seen")
    if any(stations[n].priority for n in queueing):
        notes.append("non-preemptive priority in multi-class MVA: solved as FCFS, each "
                     "population's wait split over the priority classes by M/M/c's "
                     "priority/FCFS ratios keeping the station's mean (approximation): "
                     + ", ".join(n for n in queueing if stations[n].priority))
    notes += [n for n in discipline_notes(system, stations, states, hosts, closed=True,
                                          users=bound)
              if not n.startswith("non-preemptive priority")]
    notes += component_notes(system, workload, stations, states, hit, all_routes)
    return notes


def _class_dependent(stations, queueing, parts, routes) -> list[str]:
    """FCFS stations whose visits do not all draw the same service (BCMP's condition)."""
    seen: dict[str, set] = {}
    for p in parts:
        for rs in routes[p.name].values():
            for r in rs:
                for v in r.calls:
                    st = stations[v.component]
                    if v.component in queueing and not st.ps:
                        seen.setdefault(v.component, set()).add(
                            (v.scale, v.service_of(st.service)))
    return [n for n, s in seen.items() if len(s) > 1]

"""simulate(): one run of a model as a pure function of (system, workload, seed)."""

from __future__ import annotations

import math
import time

import numpy as np
import simpy

from capsim.engine.clock import BareEvent, events_scheduled, schedule
from capsim.engine.customer import LOWEST, Customer
from capsim.engine.failover import failover_records
from capsim.engine.network import Network
from capsim.engine.resilience import breaker_records, call_probes
from capsim.engine.result import RunResult
from capsim.engine.sources import ClosedSource, OpenSource, Recorder, _RoutePicker, send_home
from capsim.engine.station import Station
from capsim.engine.streams import Draws, ThinnedGaps, seed_sequence, stream
from capsim.errors import ModelError, check_number
from capsim.model import ClosedWorkload, MixedWorkload, OpenWorkload, System, shares
from capsim.model.flows import Call, _walk
from capsim.model.lowering import async_flow_name, hit_ratios
from capsim.model.workload import weighted_system


def simulate(
    system: System,
    workload: OpenWorkload | ClosedWorkload,
    duration_s: float,
    warmup_s: float = 0.0,
    seed: int | np.random.SeedSequence = 0,
    *,
    sample_interval_s: float | None = None,
    trace: bool = False,
) -> RunResult:
    """Run ``system`` under ``workload`` for ``duration_s`` simulated seconds.

    Requests that arrive before ``warmup_s`` are not measured, and component statistics cover
    ``[warmup_s, duration_s]``. Component counters are also sampled every
    ``sample_interval_s`` (default: 1/500 of the run), so the warm-up can be moved after the
    fact (``RunResult.with_warmup``) and metrics read per time window. The same arguments
    always give the same result; every random input has its own stream derived from ``seed``.

    ``workload`` may be a :class:`~capsim.MixedWorkload` (several populations, each with its
    own source and flows; ``latency(by="population")``). ``trace`` logs the arrivals and
    departures of FCFS stations (processor-sharing, priority and hosted ones are not traced).
    """
    if not isinstance(system, System):
        raise ModelError(f"simulate.system: must be a System, got {system!r}")
    if not isinstance(workload, (OpenWorkload, ClosedWorkload, MixedWorkload)):
        raise ModelError("simulate.workload: must be an Open, Closed or MixedWorkload, got "
                         f"{workload!r}")
    duration_s = check_number("simulate", "duration_s", duration_s)
    warmup_s = check_number("simulate", "warmup_s", warmup_s, strict=False)
    if warmup_s >= duration_s:
        raise ModelError(f"simulate.warmup_s: must be < duration_s ({duration_s:g}), "
                         f"got {warmup_s!r}")
    if sample_interval_s is None:
        sample_interval_s = duration_s / 500
    sample_interval_s = check_number("simulate", "sample_interval_s", sample_interval_s)

    started = time.perf_counter()
    env = simpy.Environment()
    log: list | None = [] if trace else None
    recorder = Recorder()
    root = seed_sequence(seed)
    table = _RouteTable(system, workload)
    pops = table.shares
    has_closed = any(isinstance(sh.workload, ClosedWorkload) for sh in pops)

    tracing = None if log is None else _tracing_station(log)
    if has_closed:  # each finished request goes home to its population to think
        finish, drop = send_home(recorder)
    else:
        finish, drop = recorder.finish, recorder.drop
    net = Network(system, env, root, on_drop=drop, trace=tracing)
    if log is not None:
        net.pools.trace_into(log)  # pools' and bulkheads' acquires, waits, releases...
    programs, _ = net.programs(_traced_finish(finish, log, env),
                               async_route=len(table.route_flow))
    sources = []
    for p, sh in enumerate(pops):
        mine = table.routes_of(p)
        suffix = "" if p == 0 else f":{sh.name}"  # population 0 keeps the streams it always had
        picker = _RoutePicker([table.route_probability[r] for r in mine],
                              stream(root, "flows" + suffix))
        routes = [programs[table.route_flow[r]] for r in mine]
        rids = None if table.plain else mine
        prios = None if table.priorities is None else [table.priorities[r] for r in mine]
        w = sh.workload
        if isinstance(w, OpenWorkload):
            if w.profile is None:
                gaps = Draws(w.interarrival_time(), stream(root, "arrivals" + suffix))
            else:
                gaps = ThinnedGaps(w.arrival_rate_per_s, w.profile,
                                   stream(root, "arrivals" + suffix), duration_s)
            sources.append(OpenSource(env, routes, picker, gaps, rids, prios))
        else:
            think = Draws(w.think_time, stream(root, "think" + suffix))
            sources.append(ClosedSource(env, w.users, routes, picker, think, recorder, rids,
                                        prios))

    stations = list(net.stations.values()) + list(net.hosts.values())
    # each call has two probes: its attempts, then its breaker, budget and backoff
    probes = (list(net.caches.values()) + list(net.databases.values())
              + list(net.timed_calls.values()) + call_probes(net))
    sampler = Sampler(env, stations + probes, _sample_times(duration_s, warmup_s,
                                                              sample_interval_s))
    # rate limits, deadlines and lossy hops: their counters at the same times (only if any)
    shedders = net.shedding.probes()
    shed_sampler = Sampler(env, shedders, _sample_times(duration_s, warmup_s,
                                                        sample_interval_s)) if shedders else None
    limiters = net.pools.all  # connection pools and bulkheads: theirs too (engine.pools)
    pool_sampler = Sampler(env, limiters, _sample_times(duration_s, warmup_s,
                                                        sample_interval_s)) if limiters else None
    env.run(until=duration_s)
    sampler.take(None)
    if shed_sampler is not None:
        shed_sampler.take(None)
    if pool_sampler is not None:
        pool_sampler.take(None)
    arrival_s, finish_s, route, drop_arrival_s, drop_route = recorder.arrays()
    # judge stability at each population's rate: an open one at its busiest five minutes (as
    # the twin), a closed loop at the rate it completed (it offers what it completes)
    rates = []
    for p, sh in enumerate(pops):
        if isinstance(sh.workload, OpenWorkload):
            rates.append(sh.workload.judged_rate_per_s(duration_s))
        else:
            mine = np.isin(route, table.routes_of(p))
            rates.append(np.count_nonzero(mine & (finish_s >= warmup_s))
                         / (duration_s - warmup_s))
    judged, rate = table.judged(rates)
    loads = judged.offered_load(rate)
    bounded = _closed_loop_stations(system, table) if has_closed else set()
    work = _work_per_visit(judged, rate)

    queues = list(net.async_programs)
    n_flows = len(system.flows)
    flows = tuple(f.name for f in system.flows) + tuple(
        async_flow_name(system.component(q)) for q in queues)
    route_flow = table.route_flow + tuple(range(n_flows, n_flows + len(queues)))
    components = tuple(system.flows[f].components() for f in table.route_flow) + tuple(
        (q,) for q in queues)
    arrivals_per_flow = [0] * n_flows
    route_arrivals = [0] * len(table.route_flow)
    for p, src in enumerate(sources):
        for r, n in zip(table.routes_of(p), src.started, strict=True):
            arrivals_per_flow[table.route_flow[r]] += n
            route_arrivals[r] += n
    specs = dict(net.specs)
    specs.update({h.name: h for h in net.hosts.values()})
    n_stations = len(stations)
    return RunResult(
        system=system.name,
        workload=repr(workload),
        seed=_describe(root),
        duration_s=duration_s,
        warmup_s=warmup_s,
        flows=flows,
        route_flow=route_flow,
        route_components=components,
        populations=() if table.plain else tuple(sh.name for sh in pops),
        route_population=() if table.plain else table.route_population + (-1,) * len(queues),
        route_arrivals=tuple(route_arrivals),
        async_flows=len(queues),
        arrival_s=arrival_s,
        finish_s=finish_s,
        route=route,
        drop_arrival_s=drop_arrival_s,
        drop_route=drop_route,
        station_names=tuple(st.name for st in stations),
        station_servers=tuple(_servers(specs[st.name]) for st in stations),
        offered_loads=tuple(loads[st.name] for st in stations),
        finite_queues=tuple(getattr(st, "capacity", math.inf) != math.inf
                            or getattr(st, "max_wait_s", None) is not None
                            or st.name in bounded for st in stations),
        station_components=tuple(getattr(specs[st.name], "component", st.name)
                                 for st in stations),
        station_work_s=tuple(work.get(st.name, math.nan) for st in stations),
        station_scv=tuple(_scv(specs[st.name]) for st in stations),
        flow_arrivals=tuple(arrivals_per_flow),
        sample_times_s=np.asarray(sampler.times),
        samples=np.asarray([row[:n_stations] for row in sampler.rows], dtype=float),
        cache_names=tuple(net.caches),
        database_names=tuple(net.databases),
        call_names=tuple(net.timed_calls),
        autoscaling=tuple((sc.spec.component, t, running, serving)
                          for sc in net.scalers for t, running, serving in sc.history),
        failovers=failover_records(net),
        breakers=breaker_records(net),
        probe_samples=np.asarray([row[n_stations:] for row in sampler.rows],
                                 dtype=float).reshape(len(sampler.rows), len(probes), 4),
        shedding_points=net.shedding.points(),
        shed_samples=None if shed_sampler is None else np.asarray(
            shed_sampler.rows, dtype=float).reshape(len(shed_sampler.rows), len(shedders), 2),
        events=events_scheduled(env),
        wall_s=time.perf_counter() - started,
        trace_log=tuple(log) if log is not None else (),
        **net.pools.run_fields(pool_sampler),
    )


def _closed_loop_stations(system: System, table: _RouteTable) -> set[str]:
    """Stations only closed populations visit synchronously: at most ``users`` requests can
    be there, so they saturate but cannot diverge (unless abandoned attempts pile up: a
    system with timeouts or retries gets no such pass; nor does a station open traffic
    reaches too)."""
    if any(isinstance(step, Call) and step.guarded
           for f in system.flows for step in _walk(f.steps)):
        return set()
    closed, open_ = set(), set()
    for sh in table.shares:
        seen = {v.component for f in sh.flows for r in system.flow_routes(f) for v in r.calls}
        (closed if isinstance(sh.workload, ClosedWorkload) else open_).update(seen)
    return closed - open_


class _RouteTable:
    """The run's routes: one per (population, flow it runs). A single population running
    every flow by its weight is ``plain``: route i is flow i, as it always was."""

    def __init__(self, system: System, workload) -> None:
        self.shares = shares(system, workload)
        index = {f.name: i for i, f in enumerate(system.flows)}
        flow, pop, prob = [], [], []
        for p, sh in enumerate(self.shares):
            for name, q in zip(sh.flows, sh.probabilities, strict=True):
                flow.append(index[name])
                pop.append(p)
                prob.append(q)
        self.system = system
        self.route_flow, self.route_population = tuple(flow), tuple(pop)
        self.route_probability = tuple(prob)
        self.plain = len(self.shares) == 1 and self.route_flow == tuple(range(len(index)))
        given = [system.flows[f].priority for f in flow]
        self.priorities = None if all(g is None for g in given) else [
            LOWEST if g is None else g for g in given]

    def routes_of(self, population: int) -> list[int]:
        return [r for r, p in enumerate(self.route_population) if p == population]

    def judged(self, rates: list[float]) -> tuple[System, float]:
        """The system with each flow weighted by the requests it gets from all populations
        at these rates, and the total rate: what offered loads are judged on."""
        if self.plain:
            return self.system, math.fsum(rates)
        return weighted_system(self.system, self.shares, rates)


def _servers(spec) -> float:
    return math.inf if spec.servers is None else spec.servers


def _scv(spec) -> float:
    service = getattr(spec, "service_time", None)
    return float(service.scv) if service is not None else 1.0


def _work_per_visit(system: System, rate: float) -> dict[str, float]:
    """The model's mean busy time per visit of each station (held calls included)."""
    hits = hit_ratios(system, rate)
    demands = system.demands(lambda c: hits[c.name])
    visits = system.visits(lambda c: hits[c.name])
    return {k: demands[k] / visits[k] if visits[k] > 0 else math.nan for k in demands}


class Sampler(BareEvent):
    """Records every station's cumulative counters at given times (an event of its own)."""

    __slots__ = ("callbacks", "env", "stations", "due", "times", "rows", "_callbacks")

    def __init__(self, env, stations: list, due: list[float]) -> None:
        self.env, self.stations, self.due = env, stations, due[::-1]
        self.times: list[float] = []
        self.rows: list[list[tuple]] = []
        self._callbacks = (self.take,)
        self.take(None)
        self._next()

    def _next(self) -> None:
        if self.due:
            self.callbacks = self._callbacks
            schedule(self.env, self, self.due.pop() - self.env.now)

    def take(self, _event) -> None:
        self.times.append(self.env.now)
        self.rows.append([st.counters() for st in self.stations])
        if _event is not None:
            self._next()


def _sample_times(duration_s: float, warmup_s: float, every_s: float) -> list[float]:
    """Sampling instants in (0, duration): the regular grid plus the warm-up boundary."""
    grid = np.arange(1, math.ceil(duration_s / every_s)) * every_s
    times = set(grid[grid < duration_s].tolist())
    if warmup_s > 0:
        times.add(warmup_s)
    return sorted(times)


def _describe(root: np.random.SeedSequence) -> str:
    key = "/".join(str(k) for k in root.spawn_key)
    return f"{root.entropy}" + (f"/{key}" if key else "")


def _traced_finish(finish, log, env):
    if log is None:
        return finish

    def traced(cust: Customer) -> None:
        log.append((env.now, cust.id, None, "finish"))
        finish(cust)

    return traced


def _tracing_station(log: list) -> type[Station]:
    class TracingStation(Station):
        """Logs (time, request, component, event) before each arrival and departure."""

        def arrive(self, cust: Customer) -> None:
            log.append((self.env.now, cust.id, self.name, "arrive"))
            drops = self.drops
            super().arrive(cust)
            if self.drops > drops:
                log.append((self.env.now, cust.id, self.name, "drop"))

        def _done(self, cust: Customer) -> None:
            log.append((self.env.now, cust.id, self.name, "depart"))
            super()._done(cust)

    return TracingStation

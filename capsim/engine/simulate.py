"""simulate(): one run of a model as a pure function of (system, workload, seed)."""

from __future__ import annotations

import math
import time

import numpy as np
import simpy

from capsim.engine.clock import BareEvent, events_scheduled, schedule
from capsim.engine.customer import Customer
from capsim.engine.network import Network
from capsim.engine.result import RunResult
from capsim.engine.sources import ClosedSource, OpenSource, Recorder, _RoutePicker
from capsim.engine.station import Station
from capsim.engine.streams import Draws, ThinnedGaps, seed_sequence, stream
from capsim.errors import ModelError, check_number
from capsim.model import ClosedWorkload, OpenWorkload, System
from capsim.model.flows import Call, _walk
from capsim.model.lowering import async_flow_name, hit_ratios


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
    """
    if not isinstance(system, System):
        raise ModelError(f"simulate.system: must be a System, got {system!r}")
    if not isinstance(workload, (OpenWorkload, ClosedWorkload)):
        raise ModelError(f"simulate.workload: must be an Open/ClosedWorkload, got {workload!r}")
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
    picker = _RoutePicker([f.weight for f in system.flows], stream(root, "flows"))

    tracing = None if log is None else _tracing_station(log)
    recorded = _traced_finish(recorder.finish, log, env)
    if isinstance(workload, OpenWorkload):
        net = Network(system, env, root, on_drop=recorder.drop, trace=tracing)
        table, _ = net.programs(recorded)
        if workload.profile is None:
            gaps = Draws(workload.interarrival_time(), stream(root, "arrivals"))
        else:
            gaps = ThinnedGaps(workload.arrival_rate_per_s, workload.profile,
                               stream(root, "arrivals"), duration_s)
        source = OpenSource(env, table, picker, gaps)
        rate = workload.judged_rate_per_s(duration_s)  # its busiest five minutes, as the twin
        loads = system.offered_load(rate)
    else:
        think = Draws(workload.think_time, stream(root, "think"))
        holder: list[ClosedSource] = []
        net = Network(system, env, root, on_drop=lambda c: holder[0].drop(c), trace=tracing)
        table, _ = net.programs(_traced_finish(lambda c: holder[0].finish(c), log, env),
                                async_finish=recorded)
        source = ClosedSource(env, workload.users, table, picker, think, recorder)
        holder.append(source)

    stations = list(net.stations.values())
    probes = (list(net.caches.values()) + list(net.databases.values())
              + list(net.timed_calls.values()))
    sampler = Sampler(env, stations + probes, _sample_times(duration_s, warmup_s,
                                                              sample_interval_s))
    env.run(until=duration_s)
    sampler.take(None)
    arrival_s, finish_s, route, drop_arrival_s, drop_route = recorder.arrays()
    if isinstance(workload, ClosedWorkload):
        # a closed loop offers what it completes: judge what it feeds (consumers of its
        # messages, above all) at the request rate it measured
        requests = route < len(system.flows)  # not consumed messages
        rate = np.count_nonzero(requests & (finish_s >= warmup_s)) / (duration_s - warmup_s)
        loads = system.offered_load(rate)
        bounded = _closed_loop_stations(system)
    else:
        bounded = set()
    work = _work_per_visit(system, rate)

    queues = list(net.async_programs)
    flows = tuple(f.name for f in system.flows) + tuple(
        async_flow_name(system.component(q)) for q in queues)
    components = tuple(f.components() for f in system.flows) + tuple((q,) for q in queues)
    n_stations = len(stations)
    return RunResult(
        system=system.name,
        workload=repr(workload),
        seed=_describe(root),
        duration_s=duration_s,
        warmup_s=warmup_s,
        flows=flows,
        route_flow=tuple(range(len(flows))),
        route_components=components,
        async_flows=len(queues),
        arrival_s=arrival_s,
        finish_s=finish_s,
        route=route,
        drop_arrival_s=drop_arrival_s,
        drop_route=drop_route,
        station_names=tuple(st.name for st in stations),
        station_servers=tuple(math.inf if net.specs[st.name].servers is None
                              else net.specs[st.name].servers for st in stations),
        offered_loads=tuple(loads[st.name] for st in stations),
        finite_queues=tuple(st.capacity != math.inf or st.max_wait_s is not None
                            or st.name in bounded for st in stations),
        station_components=tuple(net.specs[st.name].component for st in stations),
        station_work_s=tuple(work[st.name] for st in stations),
        station_scv=tuple(float(net.specs[st.name].service_time.scv) for st in stations),
        flow_arrivals=tuple(source.started),
        sample_times_s=np.asarray(sampler.times),
        samples=np.asarray([row[:n_stations] for row in sampler.rows], dtype=float),
        cache_names=tuple(net.caches),
        database_names=tuple(net.databases),
        call_names=tuple(net.timed_calls),
        autoscaling=tuple((sc.spec.component, t, running, serving)
                          for sc in net.scalers for t, running, serving in sc.history),
        probe_samples=np.asarray([row[n_stations:] for row in sampler.rows],
                                 dtype=float).reshape(len(sampler.rows), len(probes), 4),
        events=events_scheduled(env),
        wall_s=time.perf_counter() - started,
        trace_log=tuple(log) if log is not None else (),
    )


def _closed_loop_stations(system: System) -> set[str]:
    """Stations a closed population visits synchronously: at most ``users`` requests can be
    there, so they saturate but cannot diverge (unless abandoned attempts pile up: a system
    with timeouts or retries gets no such pass)."""
    if any(isinstance(step, Call) and step.guarded
           for f in system.flows for step in _walk(f.steps)):
        return set()
    return {v.component for route in system.routes() for v in route.calls}


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

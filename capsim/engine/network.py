"""The stations of a System on a SimPy environment, and the step programs that route requests
to them.

A Network makes one station per station of the model's lowering (so they carry the same names
as the analytic twin's), the state of its caches and databases, its outages and autoscalers,
and, for the compiler, the steps of each visit: a balancer that picks an instance, a cache
lookup that decides hit or miss, a database read that picks a shard and a replica, a publish
that hands a message to the consumers.
"""

from __future__ import annotations

import numpy as np
import simpy

from capsim.engine.balancer import Balancer
from capsim.engine.customer import Customer
from capsim.engine.disciplines import make_hosts, make_station
from capsim.engine.dynamics import Scaler, schedule_outage
from capsim.engine.failover import FailoverCommitted, FailoverWrite, make_failovers
from capsim.engine.pools import Limits
from capsim.engine.program import Compiler
from capsim.engine.resilience import make_call
from capsim.engine.shedding import Shedding
from capsim.engine.station import Station
from capsim.engine.steps import (
    AttemptDone,
    CacheInvalidate,
    CacheLookup,
    DatabaseRead,
    PublishMessage,
    TimedCall,
    WriteCommitted,
)
from capsim.engine.stores import CacheState, DbStats
from capsim.engine.streams import Draws, seed_sequence, stream
from capsim.errors import ModelError, did_you_mean
from capsim.model import CDN, Cache, Database, MessageQueue, Service, System
from capsim.model import lowering as low


class Network:
    """Stations and step programs for ``system`` on ``env``.

    ``simulate`` uses it; a user can too, to drive the same stations from their own SimPy
    processes: ``net = Network(system, env, seed=1)``, then ``net["db"].request()``.
    """

    def __init__(self, system: System, env: simpy.Environment,
                 seed: int | np.random.SeedSequence = 0, *, on_drop=None, trace=None) -> None:
        self.system, self.env = system, env
        self.root = seed_sequence(seed)
        self.on_drop = on_drop
        self.timed_calls: dict[str, TimedCall] = {}
        station_cls = Station if trace is None else trace
        self.stations: dict[str, Station] = {}
        self.specs = {spec.name: spec for spec in system.stations()}
        self.hosts = make_hosts(env, system)
        for spec in self.specs.values():
            draws = Draws(spec.service_time, stream(self.root, f"service:{spec.name}"))
            self.stations[spec.name] = make_station(env, spec, draws, self.dropped,
                                                    station_cls, self.hosts)
        self.components = {c.name: c for c in system.components}
        self.caches = {c.name: CacheState(c, stream(self.root, f"keys:{c.name}"))
                       for c in system.components if isinstance(c, (Cache, CDN))}
        self.failovers = make_failovers(self)
        self.databases = {c.name: DbStats(c, stream(self.root, f"lag:{c.name}"),
                                          self.failovers.get(c.name, ()))
                          for c in system.components if isinstance(c, Database)}
        for outage in system.outages:
            schedule_outage(self, outage)
        # instances an autoscaler is stopping: balancers send them nothing new, and they
        # finish what they were given (in service or queued) before they stop
        self.draining: set[Station] = set()
        self.scalers = [Scaler(self, a) for a in system.autoscalers]
        # rate limits, queue deadlines, lossy hops, latency spikes (engine.shedding)
        self.shedding = Shedding(self)
        self.pools = Limits(self)  # connection pools and bulkheads (engine.pools)

    def __getitem__(self, name: str) -> Station:
        if name not in self.stations:
            did_you = did_you_mean(name, self.stations)
            raise ModelError(f"Network: no component or station named {name!r}{did_you}; "
                             f"stations: {', '.join(self.stations)}")
        return self.stations[name]

    def dropped(self, cust: Customer) -> None:
        """A request (or one attempt of a call) was turned away: free the workers it held,
        then let the call it belongs to retry, or record the failure."""
        held = cust.held
        while held:
            st, t_arr = held.pop()
            cust.t_arr = t_arr
            st._release(cust, cust.t_now)
        if cust.parent is not None:
            cust.parent[0].attempt_failed(cust)
        elif self.on_drop is not None:
            self.on_drop(cust)

    def limits(self, step, where: str) -> tuple[list, list]:
        """The steps to put before and after ``step``: its pool's connection, its caller's
        bulkhead slot (none in a system without pools or bulkheads)."""
        return self.pools.around(step, where)

    def of(self, component: str) -> list[Station]:
        """The stations a component is made of."""
        return [self.stations[s.name] for s in self.specs.values() if s.component == component]

    # -- programs -----------------------------------------------------------------------------
    def programs(self, finish, async_finish=None, async_route: int | None = None
                 ) -> tuple[list[tuple], list[tuple]]:
        """Flow programs (ending with ``finish``) and the async programs of message queues
        (ending with ``async_finish``: a consumed message is not a user going back to think).
        Messages get route ids from ``async_route`` on (default: after the flows)."""
        async_finish = async_finish or finish
        first = len(self.system.flows) if async_route is None else async_route
        compiler = Compiler(self, lambda key: stream(self.root, key))
        flows = [self.shedding.entry(flow, compiler.compile(flow, finish))
                 for flow in self.system.flows]
        self.async_programs = {}
        self.async_index = {}
        for i, c in enumerate(q for q in self.system.components if isinstance(q, MessageQueue)):
            consumers = [self.stations[n] for n in low.consumer_names(c)]
            pick = Balancer(consumers, "random", stream(self.root, f"partition:{c.name}"),
                            weights=c.partition_share())
            self.async_programs[c.name] = (pick, async_finish)
            self.async_index[c.name] = first + i
        return flows, list(self.async_programs.values())

    def timed_call(self, step, where: str, compiler, after_index: int):
        """A call the caller watches: each attempt runs the call as a child request."""
        plain = type(step)(step.component, step.calls, service_time=step.service_time)
        name = f"{where.removeprefix('flow:')} -> {step.component}"
        # a breaker, budget or backoff is per call step, under this name
        node = make_call(self, step, after_index, name)
        node.sub = compiler.compile_steps([plain], AttemptDone(), f"{where}/attempt")
        self.timed_calls[name] = node
        return node

    def call(self, step, where: str, holding: bool):
        comp = self.components[step.component]
        stations = self.of(comp.name)
        policy = comp.balancing if isinstance(comp, Service) else "round_robin"
        if len(stations) == 1 and not holding:
            visit = stations[0].arrive
        else:
            visit = Balancer(stations, policy, stream(self.root, f"balance:{where}"),
                             hold=holding, closed=self.draining)
        return self.shedding.visit(comp, visit)  # the visit itself unless it sheds load

    def read(self, step, where: str):
        """(visit step, decision step or None) for a Read."""
        comp = self.components[step.component]
        if isinstance(comp, Database):
            return DatabaseRead(self, comp, step.index, where, step.service_time), None
        return self.stations[comp.name].arrive, CacheLookup(self.caches[comp.name])

    def write(self, step, where: str):
        comp = self.components[step.component]
        if isinstance(comp, Database) and comp.failover is not None:
            return [FailoverWrite(self, comp, where), FailoverCommitted(self, comp)]
        if isinstance(comp, Database):
            primaries = [self.stations[shard[0]] for shard in low.database_names(comp)]
            # the write counts as done (and replication lag starts) when the primary commits it
            return [Balancer(primaries, "random", stream(self.root, f"shard:{where}"),
                             weights=comp.weights), WriteCommitted()]
        return [self.stations[comp.name].arrive, CacheInvalidate(self.caches[comp.name])]

    def publish(self, step, where: str):
        comp = self.components[step.component]
        out = [PublishMessage(self, comp.name)]
        if comp.publish_latency is not None:
            out.append(self.stations[low.broker_name(comp)].arrive)
        return out



__all__ = ["Network"]

"""System: components plus the flows that use them, checked as a whole."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from capsim.errors import ModelError, check_name, check_number, did_you_mean, fail
from capsim.model import lowering, shedding
from capsim.model.components import (
    CDN,
    Autoscaler,
    Cache,
    Component,
    Database,
    Delay,
    DelaySpike,
    Host,
    MessageQueue,
    Outage,
    Service,
)
from capsim.model.flows import Branch, Call, Flow, Publish, Read, Route, Write, _walk
from capsim.model.pools import check_limits
from capsim.schema import async_queue

# which steps each kind of component accepts
ACCEPTS = {
    Service: (Call,),
    Delay: (Call,),
    Cache: (Read, Write),
    CDN: (Read,),
    Database: (Read, Write),
    MessageQueue: (Publish,),
}


@dataclass(frozen=True)
class System:
    """An immutable model: ``System([web, db], flows=[browse, checkout])``.

    Variants for what-if questions are copies: ``system.evolve("db", servers=8)``.
    ``hosts`` are the boxes components may share (``Service(..., host="box")``).
    ``spikes`` are latency spikes on hops (:class:`DelaySpike`), scheduled like ``outages``.
    """

    components: tuple[Component, ...]
    flows: tuple[Flow, ...]
    name: str = "system"
    outages: tuple[Outage, ...] = ()
    autoscalers: tuple[Autoscaler, ...] = ()
    hosts: tuple[Host, ...] = ()
    spikes: tuple[DelaySpike, ...] = ()

    def __post_init__(self) -> None:
        check_name("System", "name", self.name)
        components = _as_tuple("components", self.components, Component)
        flows = _as_tuple("flows", self.flows, Flow)
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "flows", flows)
        _unique("components", [c.name for c in components])
        _unique("flows", [f.name for f in flows])
        known = {c.name for c in components}
        for flow in flows:
            for name in flow.components():
                if name not in known:
                    did_you = did_you_mean(name, known)
                    raise ModelError(
                        f"Flow({flow.name!r}).steps: unknown component {name!r}{did_you}; "
                        f"known: {', '.join(sorted(known))}"
                    )
        by_name = {c.name: c for c in components}
        for flow in flows:
            for step in _walk(flow.steps):
                comp = by_name[step.component]
                allowed = ACCEPTS[type(comp)]
                if not isinstance(step, allowed):
                    raise ModelError(
                        f"Flow({flow.name!r}).steps: {type(step).__name__}({comp.name!r}) is not "
                        f"something a {type(comp).__name__} does; use "
                        f"{' or '.join(a.__name__ for a in allowed)}")
                if isinstance(step, Read) and isinstance(comp, Database) and step.on_miss:
                    raise ModelError(f"Flow({flow.name!r}).steps: Read({comp.name!r}) on a "
                                     "Database has no on_miss (only caches miss)")
                if isinstance(step, Read) and not step.index:
                    comp.scan_factor()  # needs table_rows: fails here, not mid-run
        outages = _as_tuple_or_empty("outages", self.outages, Outage)
        object.__setattr__(self, "outages", outages)
        station_names = {st.name for st in lowering.stations(self)} if outages else set()
        for i, o in enumerate(outages):
            comp = by_name.get(o.component)
            if comp is None and o.component in station_names and o.instance is None:
                continue  # one box of a component: "pg/shard0/replica1", "app[2]"
            if comp is None:
                raise ModelError(f"System.outages[{i}].component: unknown component or "
                                 f"station {o.component!r}; components: "
                                 f"{', '.join(sorted(known))}")
            if o.instance is not None and (not isinstance(comp, Service)
                                           or o.instance >= comp.instances):
                raise ModelError(f"System.outages[{i}].instance: {comp.label} has no instance "
                                 f"{o.instance}")
        scalers = _as_tuple_or_empty("autoscalers", self.autoscalers, Autoscaler)
        object.__setattr__(self, "autoscalers", scalers)
        for i, a in enumerate(scalers):
            comp = by_name.get(a.component)
            if not isinstance(comp, Service):
                raise ModelError(f"System.autoscalers[{i}].component: must name a Service, got "
                                 f"{a.component!r}")
            if comp.instances < a.max_instances:
                raise ModelError(f"System.autoscalers[{i}].max_instances: {comp.label} has "
                                 f"instances={comp.instances}; give it at least "
                                 f"{a.max_instances} (the pool to scale within)")
        spikes = _as_tuple_or_empty("spikes", self.spikes, DelaySpike)
        object.__setattr__(self, "spikes", spikes)
        for i, sp in enumerate(spikes):
            if not isinstance(by_name.get(sp.component), Delay):
                raise ModelError(f"System.spikes[{i}].component: must name a Delay (a hop), "
                                 f"got {sp.component!r}; delays: " + (", ".join(
                                     sorted(c.name for c in components
                                            if isinstance(c, Delay))) or "none"))
        hosts = _as_tuple_or_empty("hosts", self.hosts, Host)
        object.__setattr__(self, "hosts", hosts)
        _unique("hosts", [h.name for h in hosts])
        host_names = {h.name for h in hosts}
        clash = host_names & known
        if clash:
            raise ModelError(f"System.hosts: {sorted(clash)[0]!r} is also a component's name "
                             "(a host's row sits beside the components' rows: name it apart)")
        for c in components:
            host = getattr(c, "host", None)
            if host is not None and host not in host_names:
                did_you = did_you_mean(host, host_names)
                listed = ", ".join(sorted(host_names)) or "none: add System(hosts=[Host(...)])"
                raise ModelError(f"{c.label}.host: unknown host {host!r}{did_you}; hosts: "
                                 f"{listed}")
        for i, a in enumerate(scalers):
            if getattr(by_name[a.component], "host", None) is not None:
                raise ModelError(f"System.autoscalers[{i}].component: {a.component!r} is on a "
                                 "host; an autoscaler adds boxes, a host is one box")
        for flow in flows:
            if flow.priority is None:
                continue
            if not any(getattr(by_name[s.component], "discipline", "fcfs") == "priority"
                       for s in _walk(flow.steps)):
                raise ModelError(f"Flow({flow.name!r}).priority: set to {flow.priority}, but "
                                 "none of the components it calls serves by priority; give "
                                 "the contended Service discipline='priority'")
        check_limits(self, by_name)  # bulkheads name dependencies their service calls
        total = math.fsum(f.weight for f in flows)
        if abs(total - 1.0) > 1e-6:
            shares = ", ".join(f"{f.name}={f.weight:g}" for f in flows)
            raise ModelError(f"System.flows: weights must sum to 1, got {total:g} ({shares})")

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        did_you = did_you_mean(name, [c.name for c in self.components])
        raise ModelError(f"System.components: no component named {name!r}{did_you}")

    def stations(self) -> tuple[lowering.StationSpec, ...]:
        """The queueing stations the components are made of (see ``capsim.model.lowering``)."""
        return lowering.stations(self)

    def flow_routes(self, flow: Flow | str, hit_ratio=lowering.default_hit_ratio
                    ) -> tuple[Route, ...]:
        """Routes of one flow over stations; probabilities sum to 1 within the flow."""
        flow = flow if isinstance(flow, Flow) else self.flow(flow)
        return lowering.flow_routes(self, flow, hit_ratio)

    def routes(self, hit_ratio=lowering.default_hit_ratio) -> tuple[Route, ...]:
        """All routes of all flows, with probability = flow weight x route probability."""
        return tuple(replace(r, probability=f.weight * r.probability)
                     for f in self.flows for r in self.flow_routes(f, hit_ratio))

    def flow(self, name: str) -> Flow:
        for f in self.flows:
            if f.name == name:
                return f
        raise ModelError(f"System.flows: no flow named {name!r}")

    def publish_rates(self) -> dict[str, float]:
        """Messages per request sent to each MessageQueue."""
        return lowering.step_rates(self).publishes

    def visits(self, hit_ratio=lowering.default_hit_ratio) -> dict[str, float]:
        """Mean visits to each station per request, async consumers included (visit ratios)."""
        v = {st.name: 0.0 for st in self.stations()}
        for route in self.routes(hit_ratio):
            for visit in route.calls:
                v[visit.component] += route.probability
        rates = self.publish_rates()
        for route in lowering.async_routes(self):
            queue = async_queue(route.flow)
            v[route.calls[0].component] += rates.get(queue, 0.0) * route.probability
        return v

    def demands(self, hit_ratio=lowering.default_hit_ratio) -> dict[str, float]:
        """Mean busy time per request at each station (visits x scale x mean service, plus
        the service of calls made while holding the station's worker)."""
        d = {st.name: 0.0 for st in self.stations()}
        service = {st.name: st.service_time for st in self.stations()}

        def own(v) -> float:
            return v.scale * v.service_of(service[v.component]).mean

        for route in self.routes(hit_ratio):
            calls = route.calls
            for i, visit in enumerate(calls):
                # a worker held across synchronous calls is busy for their service too (a
                # lower bound of the holding time: waits downstream come on top)
                held = sum(own(v) for v in calls[i + 1:i + 1 + visit.holds])
                d[visit.component] += route.probability * (own(visit) + held)
        rates = self.publish_rates()
        for route in lowering.async_routes(self):
            queue = async_queue(route.flow)
            name = route.calls[0].component
            d[name] += rates.get(queue, 0.0) * route.probability * service[name].mean
        return d

    def host_demands(self, hit_ratio=lowering.default_hit_ratio) -> dict[str, float]:
        """Core-seconds of work per request on each host: the own service (not the holding
        time: a thread waiting on a call uses no core) of every visit to a station on it."""
        on = {st.name: st.host for st in self.stations() if st.host is not None}
        d = {h.name: 0.0 for h in self.hosts}
        if not on:
            return d
        service = {st.name: st.service_time for st in self.stations()}
        for route in self.routes(hit_ratio):
            for v in route.calls:
                if v.component in on:
                    d[on[v.component]] += (route.probability * v.scale
                                           * v.service_of(service[v.component]).mean)
        return d

    def offered_load(self, arrival_rate_per_s: float) -> dict[str, float]:
        """lambda x demand_k / servers_k per station at a given request rate (0 for a delay).

        At 1 or more the station has no steady state (its queue grows without bound). Cache
        hit ratios are the ones this rate gives (a TTL expires more keys at a lower rate), and
        an autoscaled service spreads its load over the instances it may run
        (``max_instances``), not over the pool it scales within. A worker held across
        synchronous calls counts their service time (not their waits: the analytic twin adds
        those), and retries are not counted (they depend on the waits): a lower bound, so >= 1
        is certainly unstable; the run's own divergence check covers the rest. Rate limits
        and lossy hops thin the traffic they let through, and all after them on its route
        (``capsim.model.shedding``: what a limit admits at this rate).
        """
        hits = lowering.hit_ratios(self, arrival_rate_per_s)
        work = None
        if shedding.used(self):
            demands, work = shedding.thinned_demands(self, arrival_rate_per_s,
                                                     lambda c: hits[c.name])
        else:
            demands = self.demands(lambda c: hits[c.name])
        load = {st.name: 0.0 if st.servers is None
                else arrival_rate_per_s * demands[st.name] / st.servers
                for st in self.stations()}
        for scaler in self.autoscalers:
            names = lowering.instance_names(self.component(scaler.component))
            total = sum(load[n] for n in names)
            for k, n in enumerate(names):
                load[n] = total / scaler.max_instances if k < scaler.max_instances else 0.0
        if self.hosts:
            if work is None:
                work = self.host_demands(lambda c: hits[c.name])
            for h in self.hosts:
                load[h.name] = arrival_rate_per_s * work[h.name] / h.capacity
        return load

    def with_flows(self, flows: tuple[str, ...], probabilities: tuple[float, ...]) -> System:
        """A copy that runs only ``flows``, with these weights: one population's view."""
        by_name = {f.name: f for f in self.flows}
        if tuple(flows) == tuple(by_name) and all(
                abs(by_name[f].weight - p) < 1e-12 for f, p in zip(flows, probabilities,
                                                                    strict=True)):
            return self
        return replace(self, flows=tuple(replace(by_name[f], weight=p)
                                         for f, p in zip(flows, probabilities, strict=True)))

    def scaled_demands(self, component: str, factor: float) -> System:
        """A copy in which every demand on ``component`` takes ``factor`` times as long: its
        own service time and every step's ``service_time`` on it (a faster or slower box runs
        all the endpoints' work, not only the default)."""
        check_number("System.scaled_demands", "factor", factor)
        comp = self.component(component)

        def scale(steps):
            out = []
            for step in steps:
                if isinstance(step, Branch):
                    step = Branch(tuple((p, scale(sub)) for p, sub in step.options))
                elif isinstance(step, (Call, Read, Write)):
                    if isinstance(step, Call):
                        step = replace(step, calls=scale(step.calls))
                    elif isinstance(step, Read):
                        step = replace(step, on_miss=scale(step.on_miss))
                    own = step.service_time
                    if step.component == component and own is not None:
                        step = replace(step, service_time=own.scaled(own.mean * factor))
                out.append(step)
            return tuple(out)

        changes = {}
        dist = getattr(comp, "service_time", None)
        if dist is not None:
            changes["service_time"] = dist.scaled(dist.mean * factor)
        flows = tuple(replace(f, steps=scale(f.steps)) for f in self.flows)
        return replace(self.evolve(component, **changes), flows=flows)

    def evolve(self, component: str, **changes) -> System:
        """A copy with one component changed: ``system.evolve("db", servers=8)``."""
        old = self.component(component)
        new = replace(old, **changes)
        return replace(self, components=tuple(new if c is old else c for c in self.components))


def _as_tuple(field: str, items: Iterable, kind: type) -> tuple:
    if isinstance(items, kind):
        items = (items,)
    try:
        items = tuple(items)
    except TypeError as exc:
        raise fail("System", field, f"must be a list of {kind.__name__}", items) from exc
    if not items:
        raise fail("System", field, f"must hold at least one {kind.__name__}", list(items))
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise fail("System", f"{field}[{i}]", f"must be a {kind.__name__}", item)
    return items


def _as_tuple_or_empty(field: str, items, kind: type) -> tuple:
    return _as_tuple(field, items, kind) if items else ()


def _unique(field: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ModelError(f"System.{field}: duplicate name {name!r}")
        seen.add(name)

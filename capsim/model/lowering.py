"""Lowering: a System as the queueing stations it is made of, and the routes over them.

A component may stand for several stations (a service's instances, a database's primaries and
replicas per shard, a queue's consumers). The engine builds exactly these stations, and the
analytic twin solves them, so both speak of the same names. Routes expand every random choice
that does not depend on the system's state (branches, fixed hit ratios, shard and replica
choice) with its probability; a cache whose hits depend on its state appears with the hit
ratio the caller supplies (the twin uses Che's approximation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from capsim.dists import Distribution
from capsim.errors import ModelError
from capsim.model.components import CDN, Cache, Component, Database, Delay, MessageQueue, Service
from capsim.model.flows import Branch, Call, Publish, Read, Route, Write
from capsim.model.popularity import che_hit_ratio, lru_hit_ratio
from capsim.schema import async_flow


@dataclass(frozen=True)
class StationSpec:
    """One queueing station: ``servers=None`` is a pure delay (infinite servers)."""

    name: str
    component: str
    servers: int | None
    service_time: Distribution
    queue_capacity: int | None = None
    max_wait_s: float | None = None  # waiting longer than this loses the request (retention)


@dataclass(frozen=True)
class Visit:
    """One visit to a station. ``component`` is the station's name (as in ``Route.calls``);
    ``scale`` multiplies its service time; the next ``holds`` visits happen while this one
    keeps its server (a synchronous downstream call)."""

    component: str
    scale: float = 1.0
    holds: int = 0


def stations(system) -> tuple[StationSpec, ...]:
    out: list[StationSpec] = []
    for c in system.components:
        out.extend(component_stations(c))
    return tuple(out)


def component_stations(c: Component) -> list[StationSpec]:
    if isinstance(c, Service):
        return [StationSpec(n, c.name, c.servers, c.service_time, c.queue_capacity)
                for n in instance_names(c)]
    if isinstance(c, Delay):
        return [StationSpec(c.name, c.name, None, c.latency)]
    if isinstance(c, CDN):
        return [StationSpec(c.name, c.name, None, c.edge_latency)]
    if isinstance(c, Cache):
        return [StationSpec(c.name, c.name, c.servers, c.service_time)]
    if isinstance(c, Database):
        return [StationSpec(n, c.name, c.servers, c.service_time, c.queue_capacity)
                for shard in database_names(c) for n in shard]
    if isinstance(c, MessageQueue):
        out = []
        if c.publish_latency is not None:
            out.append(StationSpec(broker_name(c), c.name, None, c.publish_latency))
        out += [StationSpec(n, c.name, 1, c.consumer.service_time, None, c.retention_s)
                for n in consumer_names(c)]
        return out
    raise ModelError(f"{c.label}: unknown component kind")


def instance_names(c: Service) -> list[str]:
    return [c.name] if c.instances == 1 else [f"{c.name}[{i}]" for i in range(c.instances)]


def database_names(c: Database) -> list[list[str]]:
    """Per shard: [primary, replica1, ...]."""
    out = []
    for s in range(c.shards):
        primary = c.name if c.shards == 1 else f"{c.name}/shard{s}"
        out.append([primary] + [f"{primary}/replica{j}" for j in range(1, c.read_replicas + 1)])
    return out


def broker_name(c: MessageQueue) -> str:
    return f"{c.name}/broker"


def consumer_names(c: MessageQueue) -> list[str]:
    return [f"{c.name}/consumer{k}" for k in range(c.consumers)]


def async_flow_name(c: MessageQueue) -> str:
    """The flow its messages are reported as (named in ``capsim.schema``)."""
    return async_flow(c.name)


HitRatio = Callable[[Cache], float]


def default_hit_ratio(cache: Cache) -> float:
    """The fixed ratio, or Che's LRU approximation (TTL ignored: it needs the request rate)."""
    if cache.hit_ratio is not None:
        return cache.hit_ratio
    return che_hit_ratio(cache.keys, cache.zipf_s, cache.capacity_keys)


class _Expander:
    def __init__(self, system, hit_ratio: HitRatio) -> None:
        self.by_name = {c.name: c for c in system.components}
        self.hit_ratio = hit_ratio

    def steps(self, steps) -> list[tuple[float, tuple[Visit, ...]]]:
        paths: list[tuple[float, tuple[Visit, ...]]] = [(1.0, ())]
        for step in steps:
            options = self.step(step)
            paths = [(p * q, a + b) for p, a in paths for q, b in options if p * q > 0]
        return paths

    def step(self, step) -> list[tuple[float, tuple[Visit, ...]]]:
        if isinstance(step, Branch):
            return [(q * r, v) for q, sub in step.options for r, v in self.steps(sub)]
        c = self.by_name[step.component]
        if isinstance(step, Call):
            nested = self.steps(step.calls)
            names = (instance_names(c) if isinstance(c, Service) else [c.name])
            return [(r / len(names), (Visit(n, 1.0, len(v)),) + v)
                    for n in names for r, v in nested]
        if isinstance(step, Read):
            if isinstance(c, Database):
                scale = 1.0 if step.index else c.scan_factor()
                return [(w / len(readers), (Visit(n, scale),))
                        for w, shard in zip(c.weights, database_names(c), strict=True)
                        for readers in [shard[1:] or shard[:1]] for n in readers]
            h = self.hit_ratio(c)
            miss = self.steps(step.on_miss)
            return [(h, (Visit(c.name),))] + [((1 - h) * r, (Visit(c.name),) + v)
                                              for r, v in miss]
        if isinstance(step, Write):
            if isinstance(c, Database):
                return [(w, (Visit(shard[0]),))
                        for w, shard in zip(c.weights, database_names(c), strict=True)]
            return [(1.0, (Visit(c.name),))]
        if isinstance(step, Publish):
            return [(1.0, (Visit(broker_name(c)),) if c.publish_latency is not None else ())]
        raise ModelError(f"cannot lower step {step!r}")  # pragma: no cover


def flow_routes(system, flow, hit_ratio: HitRatio = default_hit_ratio) -> tuple[Route, ...]:
    """Routes of one flow over station names, probabilities summing to 1 within the flow."""
    merged: dict[tuple[Visit, ...], float] = {}
    for p, visits in _Expander(system, hit_ratio).steps(flow.steps):
        merged[visits] = merged.get(visits, 0.0) + p
    return tuple(Route(flow.name, p, visits) for visits, p in merged.items())


@dataclass(frozen=True)
class StepRates:
    """Mean steps per request: cache/CDN reads and cache writes per cache, publishes per queue."""

    reads: dict[str, float] = field(default_factory=dict)
    writes: dict[str, float] = field(default_factory=dict)
    publishes: dict[str, float] = field(default_factory=dict)


def step_rates(system, hit_ratio: HitRatio = default_hit_ratio, flows=None) -> StepRates:
    """Walk the flows (weighted; branches; misses at ``1 - hit_ratio``) and count the steps
    that are not station visits of their own: cache reads and writes, publishes."""
    out = StepRates()
    by_name = {c.name: c for c in system.components}

    def add(d: dict, key: str, w: float) -> None:
        d[key] = d.get(key, 0.0) + w

    def walk(steps, w: float) -> None:
        for step in steps:
            if isinstance(step, Branch):
                for q, sub in step.options:
                    walk(sub, w * q)
            elif isinstance(step, Call):
                walk(step.calls, w)
            elif isinstance(step, Read):
                c = by_name[step.component]
                if isinstance(c, (Cache, CDN)):
                    add(out.reads, c.name, w)
                    walk(step.on_miss, w * (1.0 - hit_ratio(c)))
            elif isinstance(step, Write):
                if isinstance(by_name[step.component], Cache):
                    add(out.writes, step.component, w)
            elif isinstance(step, Publish):
                add(out.publishes, step.component, w)

    for flow in system.flows if flows is None else flows:
        walk(flow.steps, flow.weight)
    return out


def async_routes(system) -> tuple[Route, ...]:
    """Per MessageQueue, the consumer a message goes to (its partition's owner)."""
    out = []
    for c in system.components:
        if isinstance(c, MessageQueue):
            out += [Route(async_flow_name(c), share, (Visit(n),))
                    for n, share in zip(consumer_names(c), c.partition_share(), strict=True)]
    return tuple(out)


def _needs_rate(c) -> bool:
    return isinstance(c, Cache) and c.dynamic and (c.ttl_s is not None or c.invalidate_on_write)


def hit_ratios(system, arrival_rate_per_s: float) -> dict[str, float]:
    """Hit ratio of every Cache and CDN at ``arrival_rate_per_s`` requests per second.

    Unlike ``default_hit_ratio`` this counts a TTL and invalidating writes, which depend on
    the rate (a TTL in seconds is a TTL in requests only at a given rate): the load a
    cache's origin really gets, for the model's offered load and for the twin. Remembered
    per (system, rate): every replication of a sweep point asks the same question."""
    try:
        return dict(_hit_ratios_cached(system, float(arrival_rate_per_s)))
    except TypeError:  # an unhashable model (a user's own field): no memory, same answer
        return _hit_ratios(system, arrival_rate_per_s)


@lru_cache(maxsize=512)
def _hit_ratios_cached(system, arrival_rate_per_s: float) -> tuple[tuple[str, float], ...]:
    return tuple(_hit_ratios(system, arrival_rate_per_s).items())


def _hit_ratios(system, arrival_rate_per_s: float) -> dict[str, float]:
    caches = [c for c in system.components if isinstance(c, (Cache, CDN))]
    hit = {c.name: default_hit_ratio(c) for c in caches}
    moving = [c for c in caches if _needs_rate(c)]
    for _ in range(200):
        if not moving:
            break
        rates = step_rates(system, lambda c: hit[c.name])
        change = 0.0
        for c in moving:
            reads = rates.reads.get(c.name, 0.0)
            if reads <= 0:
                continue
            writes = rates.writes.get(c.name, 0.0) if c.invalidate_on_write else 0.0
            ttl = None if c.ttl_s is None else c.ttl_s * arrival_rate_per_s * reads
            h = lru_hit_ratio(c.keys, c.zipf_s, c.capacity_keys, ttl, writes / reads)
            change = max(change, abs(h - hit[c.name]))
            hit[c.name] = h
        if change < 1e-12:
            break
    return hit

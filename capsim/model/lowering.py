"""Lowering: a System as the queueing stations it is made of, and the routes over them.

A component may stand for several stations (a service's instances, a database's primaries and
replicas per shard, a queue's consumers). The engine builds exactly these stations, and the
analytic twin solves them, so both speak of the same names. Routes expand every random choice
that does not depend on the system's state (branches, fixed hit ratios, shard and replica
choice) with its probability; a cache whose hits depend on its state appears with the hit
ratio the caller supplies (the twin uses Che's approximation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from capsim.dists import Count, Distribution
from capsim.errors import ModelError
from capsim.model.components import CDN, Cache, Component, Database, Delay, MessageQueue, Service
from capsim.model.flows import Branch, Call, Publish, Read, Route, Write
from capsim.model.pools import pooled_stations
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
    # a request that has waited longer than this when a server would take it is lost: a
    # topic's retention, a service's queue deadline
    max_wait_s: float | None = None
    discipline: str = "fcfs"  # fcfs, ps (processor sharing over ``servers`` cores), priority
    max_concurrency: int | None = None  # ps: most requests sharing the cores at once
    host: str | None = None  # on a Host: ``servers`` are threads sharing its cores


@dataclass(frozen=True)
class Visit:
    """One visit to a station. ``component`` is the station's name (as in ``Route.calls``);
    ``service`` is the visit's own demand (None: the station's); ``scale`` multiplies it; the
    next ``holds`` visits happen while this one keeps its server (a synchronous downstream
    call)."""

    component: str
    scale: float = 1.0
    holds: int = 0
    service: Distribution | None = None

    def __post_init__(self) -> None:
        # routes of pages that repeat their queries hold thousands of visits, and the twin
        # keys dicts by them: hash once
        object.__setattr__(self, "_hash", hash((self.component, self.scale, self.holds,
                                                self.service)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):  # the hash of a string differs between processes: never pickle it
        return (Visit, (self.component, self.scale, self.holds, self.service))

    def service_of(self, station_service: Distribution) -> Distribution:
        """The distribution this visit's service is drawn from (before ``scale``)."""
        return station_service if self.service is None else self.service


def stations(system) -> tuple[StationSpec, ...]:
    out: list[StationSpec] = []
    for c in system.components:
        specs = component_stations(c)
        if getattr(c, "pool", None) is not None:  # a binding pool is all its boxes serve
            specs = pooled_stations(system, c, specs)
        out.extend(specs)
    return tuple(out)


def component_stations(c: Component) -> list[StationSpec]:
    if isinstance(c, Service):
        return [StationSpec(n, c.name, c.servers, c.service_time, c.queue_capacity,
                            c.queue_deadline_s, c.discipline, c.max_concurrency, c.host)
                for n in instance_names(c)]
    if isinstance(c, Delay):
        return [StationSpec(c.name, c.name, None, c.latency)]
    if isinstance(c, CDN):
        return [StationSpec(c.name, c.name, None, c.edge_latency)]
    if isinstance(c, Cache):
        return [StationSpec(c.name, c.name, c.servers, c.service_time, host=c.host)]
    if isinstance(c, Database):
        return [StationSpec(n, c.name, c.servers, c.service_time, c.queue_capacity, None,
                            host=c.host)
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
        if isinstance(step, Publish):
            return self.once(step)
        visits = step.visits
        if isinstance(visits, Count):
            counts, probs = visits.support()
            return [(p * q, v) for k, p in zip(counts.tolist(), probs.tolist(), strict=True)
                    for q, v in repeated(self.once(step), int(k))]
        return self.once(step) if visits == 1 else repeated(self.once(step), visits)

    def once(self, step) -> list[tuple[float, tuple[Visit, ...]]]:
        c = self.by_name[step.component]
        own = step.service_time if isinstance(step, (Call, Read, Write)) else None
        if isinstance(step, Call):
            nested = self.steps(step.calls)
            names = (instance_names(c) if isinstance(c, Service) else [c.name])
            return [(r / len(names), (Visit(n, 1.0, len(v), own),) + v)
                    for n in names for r, v in nested]
        if isinstance(step, Read):
            if isinstance(c, Database):
                scale = 1.0 if step.index else c.scan_factor(own)
                return [(w / len(readers), (Visit(n, scale, 0, own),))
                        for w, shard in zip(c.weights, database_names(c), strict=True)
                        for readers in [shard[1:] or shard[:1]] for n in readers]
            h = self.hit_ratio(c)
            miss = self.steps(step.on_miss)
            me = Visit(c.name, 1.0, 0, own)
            return [(h, (me,))] + [((1 - h) * r, (me,) + v) for r, v in miss]
        if isinstance(step, Write):
            if isinstance(c, Database):
                return [(w, (Visit(shard[0], 1.0, 0, own),))
                        for w, shard in zip(c.weights, database_names(c), strict=True)]
            return [(1.0, (Visit(c.name, 1.0, 0, own),))]
        if isinstance(step, Publish):
            return [(1.0, (Visit(broker_name(c)),) if c.publish_latency is not None else ())]
        raise ModelError(f"cannot lower step {step!r}")  # pragma: no cover


def repeated(block: list[tuple[float, tuple[Visit, ...]]], times: int
             ) -> list[tuple[float, tuple[Visit, ...]]]:
    """A step's paths taken ``times`` times in a row, one path per *multiset* of choices
    (blocks in a fixed order, with their multinomial probability): the twin does not depend on
    the order of independent repeats, and ordered paths would grow as options**times."""
    if times == 0:
        return [(1.0, ())]
    if len(block) == 1:
        p, v = block[0]
        return [(p**times, v * times)]
    if math.comb(times + len(block) - 1, len(block) - 1) > EXACT_COMPOSITIONS:
        return _rounded(block, times)
    out: dict[tuple[Visit, ...], float] = {}
    for counts in _compositions(times, len(block)):
        log_p = math.lgamma(times + 1)
        visits: tuple[Visit, ...] = ()
        for (q, v), n in zip(block, counts, strict=True):
            if n:
                log_p += n * math.log(q) - math.lgamma(n + 1) if q > 0 else -math.inf
            visits += v * n
        p = math.exp(log_p)
        if p > 0:
            out[visits] = out.get(visits, 0.0) + p
    return [(p, v) for v, p in out.items()]


EXACT_COMPOSITIONS = 64  # beyond this many multisets, a repeated choice is rounded


def _rounded(block: list[tuple[float, tuple[Visit, ...]]], times: int
             ) -> list[tuple[float, tuple[Visit, ...]]]:
    """``times`` repeats of a choice among many options (a read over several replicas, many
    times): at most one path per option, whose counts are ``times x q`` rounded by systematic
    sampling, so every option's mean count is exactly ``times x q`` (the loads stay exact)
    while the spread of the split is understated. The exact multinomial would need
    ``comb(times + options - 1, options - 1)`` paths."""
    want = [times * q for q, _ in block]
    base = [math.floor(w) for w in want]
    edges = [0.0]
    for w, b in zip(want, base, strict=True):
        edges.append(edges[-1] + (w - b))
    cuts = sorted({0.0, 1.0} | {e - math.floor(e) for e in edges})
    out: dict[tuple[Visit, ...], float] = {}
    for u0, u1 in zip(cuts, cuts[1:], strict=False):
        if u1 - u0 <= 0:
            continue
        u = 0.5 * (u0 + u1)  # options whose [edge_i, edge_i+1) holds a point u + j get one more
        visits: tuple[Visit, ...] = ()
        for i, ((_, v), b) in enumerate(zip(block, base, strict=True)):
            extra = math.ceil(edges[i + 1] - u) - math.ceil(edges[i] - u)
            visits += v * (b + extra)
        out[visits] = out.get(visits, 0.0) + (u1 - u0)
    return [(p, v) for v, p in out.items()]


def _compositions(total: int, parts: int):
    """Every tuple of ``parts`` counts >= 0 summing to ``total``."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)


def flow_routes(system, flow, hit_ratio: HitRatio = default_hit_ratio) -> tuple[Route, ...]:
    """Routes of one flow over station names, probabilities summing to 1 within the flow.

    Remembered per (system, flow, hit ratios): a run, a twin solve and a sweep ask for the same
    routes many times, and a page that repeats its queries has many."""
    hits = tuple(hit_ratio(c) for c in system.components if isinstance(c, (Cache, CDN)))
    try:
        return _flow_routes_cached(system, flow, hits)
    except TypeError:  # an unhashable model (a user's own field): no memory, same answer
        return _flow_routes(system, flow, hit_ratio)


@lru_cache(maxsize=256)
def _flow_routes_cached(system, flow, hits: tuple[float, ...]) -> tuple[Route, ...]:
    caches = [c.name for c in system.components if isinstance(c, (Cache, CDN))]
    table = dict(zip(caches, hits, strict=True))
    return _flow_routes(system, flow, lambda c: table[c.name])


def _flow_routes(system, flow, hit_ratio: HitRatio) -> tuple[Route, ...]:
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
                walk(step.calls, w * mean_visits(step))
            elif isinstance(step, Read):
                c = by_name[step.component]
                if isinstance(c, (Cache, CDN)):
                    m = w * mean_visits(step)
                    add(out.reads, c.name, m)
                    walk(step.on_miss, m * (1.0 - hit_ratio(c)))
            elif isinstance(step, Write):
                if isinstance(by_name[step.component], Cache):
                    add(out.writes, step.component, w * mean_visits(step))
            elif isinstance(step, Publish):
                add(out.publishes, step.component, w)

    for flow in system.flows if flows is None else flows:
        walk(flow.steps, flow.weight)
    return out


def mean_visits(step) -> float:
    """How many times a step runs per pass, on average (``visits``)."""
    v = step.visits
    return float(v.mean) if isinstance(v, Count) else float(v)


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

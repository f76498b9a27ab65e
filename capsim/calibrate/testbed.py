"""A capsim model of a real shop from what a team can measure of it.

The testbed (``capsim.testbed``) measures each endpoint alone at three arrival rates: the CPU
time every process group used (the app's gunicorn workers, PostgreSQL, Redis, the load
generator k6; as ``pidstat`` or a container's CPU counter shows it), the requests k6 completed
and their latency, how many SQL statements they ran (``pg_stat_statements``) and the Redis hit
ratio, and the app's own timing of its database and cache clients. :func:`shop_model` turns
that into a :class:`~capsim.model.System` with no constant tuned per stage:

* **service demand** = the slope of a tier's CPU rate against throughput between the two
  highest rates (the utilization law ``U = U0 + D X``). The slope, not ``CPU / requests``:
  the load generator and the app burn CPU per second as well as per request (k6's metric
  pipeline, gunicorn's heartbeats), and that fixed part, the intercept ``U0``, is idle work
  that takes a share of the cores whatever the load (the host's ``speed`` is lowered by it);
* **PostgreSQL's demand per statement**, the slope against statements per second: behind a
  cache the statements per request fall as the rate rises, and a miss costs a statement;
* **the app's client work** (its database and cache client CPU, timed by the app) moves from
  the worker's step to the database's and the cache's, so a cache hit skips it;
* **what is not CPU** = the mean latency at the lowest rate minus the CPU per request that
  same run measured (a commit's fsync, a wake-up): a delay the request waits while holding
  its worker;
* **the spread**: a log-normal with the lowest run's mean and p99, on the largest step;
* **the arrivals**: evenly spaced, as k6's arrival-rate executors start them.

The machine's cores are a :class:`~capsim.model.Host`: the app's workers, PostgreSQL and Redis
share it by processor sharing, and so does k6 when it runs on the same cores (a stage's
``loadgen_shares_cores``); otherwise k6 has a host of its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capsim.dists import Deterministic, Exponential, LogNormal
from capsim.errors import ModelError, fail

__all__ = ["EndpointMeasurement", "StageMeasurement", "TIERS", "demand_frame", "demands",
           "latency_cv", "load_measurements", "non_cpu_wait", "save_measurements", "shop_model",
           "shop_workload", "statement_demand"]

TIERS = ("web", "postgres", "redis", "k6")
MIN_DEMAND_S = 1e-5  # a tier the endpoint does not use measures ~0: 10 microseconds


@dataclass(frozen=True)
class EndpointMeasurement:
    """One endpoint alone at rising arrival rates (index 0: the lowest, where latency is all
    service; the last two give the demands).

    ``cpu_s[tier]``: CPU seconds each tier used over each run of ``duration_s`` seconds;
    ``throughput_per_s``: requests completed per second; ``mean_s``, ``p99_s``: their latency
    (k6); ``statements``: SQL statements each run executed (pg_stat_statements); ``cache_hits`` and
    ``cache_misses``: Redis keyspace counters over the runs; ``db_client_cpu_s`` and
    ``cache_client_cpu_s``: the app's own timing of its database and cache clients, CPU
    seconds per request in the last run (part of the web tier's CPU).
    """

    name: str
    share: float
    rates_per_s: tuple[float, ...]
    duration_s: tuple[float, ...]
    throughput_per_s: tuple[float, ...]
    mean_s: tuple[float, ...]
    p99_s: tuple[float, ...]
    cpu_s: dict[str, tuple[float, ...]]
    statements: tuple[float, ...]
    cache_hits: int = 0
    cache_misses: int = 0
    db_client_cpu_s: float = 0.0
    cache_client_cpu_s: float = 0.0


@dataclass(frozen=True)
class StageMeasurement:
    """A stage's set-up and its endpoints' calibration runs."""

    stage: str
    workers: int
    indexed: bool
    cache: bool
    cache_ttl_s: float
    shop_cores: int
    loadgen_shares_cores: bool
    product_keys: int
    search_terms: int
    zipf_s: float
    endpoints: tuple[EndpointMeasurement, ...] = field(default_factory=tuple)


def demands(m: EndpointMeasurement) -> tuple[dict[str, float], dict[str, float]]:
    """Per-tier CPU demand per request (the slopes, seconds) and idle CPU (the intercepts,
    cores): the utilization law ``U = U0 + D X`` through the last two runs (the highest
    rates: per-request CPU falls as load rises, as idle processes stop being woken one request
    at a time, so the line is drawn where the shop will be loaded)."""
    if len(m.throughput_per_s) < 2:
        raise fail(f"EndpointMeasurement({m.name!r})", "throughput_per_s",
                   "needs two runs or more", m.throughput_per_s)
    x0, x1 = m.throughput_per_s[-2:]
    d0, d1 = m.duration_s[-2:]
    if not x1 > x0 > 0:
        raise fail(f"EndpointMeasurement({m.name!r})", "throughput_per_s",
                   "must rise between the last two runs", m.throughput_per_s)
    slopes, idle = {}, {}
    for tier in TIERS:
        c0, c1 = m.cpu_s.get(tier, (0.0, 0.0))[-2:]
        u0, u1 = c0 / d0, c1 / d1
        # idle work is never negative: a slope steeper than the higher run's CPU per request
        # (contention between the two runs, or noise) gives way to that average; noise can
        # tilt a tiny slope below zero, and no tier works for free
        slopes[tier] = max(min((u1 - u0) / (x1 - x0), u1 / x1), MIN_DEMAND_S)
        idle[tier] = max(u1 - slopes[tier] * x1, 0.0)
    return slopes, idle


def latency_cv(mean_s: float, p99_s: float) -> float:
    """The coefficient of variation of a log-normal with this mean and 99th percentile: how
    spread an endpoint's latency is at low load (where it is all service, no queueing)."""
    z = 2.3263478740408408  # the standard normal's 99th percentile
    ratio = math.log(max(p99_s / mean_s, 1.0)) if mean_s > 0 and p99_s > 0 else 0.0
    disc = z * z - 2.0 * ratio
    sigma = z - math.sqrt(disc) if disc > 0 else z
    return max(math.sqrt(math.expm1(sigma * sigma)), 0.05)


def statement_demand(m: EndpointMeasurement) -> float:
    """PostgreSQL's CPU seconds per SQL statement: the slope of its CPU rate against the
    statement rate over the last two runs (the utilization law counted in the database's own
    work). Behind a cache the statements per request fall as the rate (and the hit ratio)
    rises, so a slope against *requests* would understate what a miss costs (by half, seen on
    the cached search)."""
    n0, n1 = m.statements[-2:]
    d0, d1 = m.duration_s[-2:]
    c0, c1 = m.cpu_s["postgres"][-2:]
    r0, r1 = n0 / d0, n1 / d1
    if not r1 > r0 > 0:
        # too few statements to draw a line (nearly every read a hit): the higher run's mean
        return c1 / n1 if n1 > 0 else MIN_DEMAND_S
    slope = (c1 / d1 - c0 / d0) / (r1 - r0)
    return max(min(slope, c1 / n1), MIN_DEMAND_S)


def shop_model(m: StageMeasurement):
    """The stage as a capsim ``System`` (flows ``product``, ``search``, ``checkout``)."""
    from capsim.model import Cache, Call, Database, Delay, Flow, Host, Read, Service, System, Write

    if not m.endpoints:
        raise fail(f"StageMeasurement({m.stage!r})", "endpoints", "must not be empty", ())
    fitted = {e.name: demands(e) for e in m.endpoints}
    on_box = ("web", "postgres", "redis") + (("k6",) if m.loadgen_shares_cores else ())
    # the idle work on the shop's cores, averaged over the endpoints' runs, is a share of the
    # cores no request gets: the host's speed is lowered by it
    idle_cores = sum(sum(idle[t] for t in on_box) for _, idle in fitted.values()) / len(fitted)
    shop = "box"
    loadgen_host = shop if m.loadgen_shares_cores else "loadgen_box"
    speed = max(1.0 - idle_cores / m.shop_cores, 0.05)
    hosts = [Host(shop, cores=m.shop_cores, speed=speed)]
    if not m.loadgen_shares_cores:
        hosts.append(Host(loadgen_host, cores=1))
    components = [
        Service("k6", servers=10_000, service_time=Exponential(1e-3), host=loadgen_host),
        Service("web", servers=m.workers, service_time=Exponential(1e-3), host=shop),
        Database("postgres", servers=m.workers, service_time=Exponential(1e-3), host=shop),
    ]
    if m.cache:
        components += [
            Cache("redis_products", servers=1, service_time=Exponential(1e-4), host=shop,
                  keys=m.product_keys, capacity_keys=m.product_keys, zipf_s=m.zipf_s,
                  ttl_s=m.cache_ttl_s),
            Cache("redis_search", servers=1, service_time=Exponential(1e-4), host=shop,
                  keys=m.search_terms, capacity_keys=m.search_terms, zipf_s=m.zipf_s,
                  ttl_s=m.cache_ttl_s),
        ]
    flows = []
    for e in m.endpoints:
        d, _ = fitted[e.name]
        wait = non_cpu_wait(e, d)
        # the app's own timing moves its database and cache clients' CPU (spent while it
        # waits on them, on the same cores) from the worker's step to the database's and the
        # cache's: a cache hit then costs the worker no database client work
        client_db = min(e.db_client_cpu_s, 0.9 * d["web"])
        client_cache = min(e.cache_client_cpu_s, 0.9 * d["web"] - client_db)
        # per statement (the last run's): the database's own work and the app's client work
        requests = e.throughput_per_s[-1] * e.duration_s[-1]
        per_request = e.statements[-1] / max(requests, 1.0)  # statements a request ran
        per_statement = statement_demand(e) + client_db / max(per_request, 1e-9)
        d = dict(d, web=d["web"] - client_db - client_cache,
                 postgres=per_statement * (per_request if e.name == "checkout" else 1.0),
                 redis=d["redis"] + client_cache)
        shaped = _Shapes(d, latency_cv(e.mean_s[0], e.p99_s[0]) * e.mean_s[0])
        if e.name == "checkout":
            db_steps = (Write("postgres", service_time=shaped("postgres")),)
            if m.cache:
                db_steps += (Write("redis_products", service_time=shaped("redis")),)
        else:
            # a read that reaches the database runs one statement; the cache decides how often
            cache_name = "redis_products" if e.name == "product" else "redis_search"
            db_steps = (Read("postgres", service_time=shaped("postgres")),)
            if m.cache:
                db_steps = (Read(cache_name, service_time=shaped("redis"), on_miss=db_steps),)
        inner = db_steps
        if wait > 0:
            components.append(Delay(f"wait_{e.name}", latency=Deterministic(wait)))
            inner = inner + (Call(f"wait_{e.name}"),)
        steps = (Call("k6", service_time=shaped("k6")),
                 Call("web", service_time=shaped("web"), calls=inner))
        flows.append(Flow(e.name, weight=e.share, steps=steps))
    return System(components=tuple(components), flows=tuple(flows), hosts=tuple(hosts),
                  name=f"testbed {m.stage}")


def non_cpu_wait(e: EndpointMeasurement, d: dict[str, float]) -> float:
    """Seconds of a request's latency at the lowest rate that no CPU accounts for (a commit's
    fsync, a wake-up): its mean latency there minus the shop's CPU per request measured *in
    that same run* (the same cache hit ratio, the same light-load costs) and k6's demand;
    never negative."""
    requests = e.throughput_per_s[0] * e.duration_s[0]
    shop_cpu = sum(e.cpu_s.get(t, (0.0,))[0] for t in ("web", "postgres", "redis"))
    return max(e.mean_s[0] - shop_cpu / max(requests, 1.0) - d["k6"], 0.0)


class _Shapes:
    """Service-time distributions for one endpoint's steps: the spread measured at low load
    (standard deviation ``sd``) goes to its largest step, log-normal; the others are fixed at
    their demand. The sum then has the measured variance."""

    def __init__(self, demand: dict[str, float], sd: float) -> None:
        self.demand = demand
        self.sd = sd
        self.big = max(demand, key=demand.get)

    def __call__(self, tier: str, mean: float | None = None):
        mean = self.demand[tier] if mean is None else mean
        if tier == self.big:
            return LogNormal(mean, max(self.sd / mean, 0.05))
        return Deterministic(mean)


def demand_frame(stages: list[StageMeasurement]):
    """Calibrated CPU demand per request (ms), by stage, endpoint and tier: what each change
    did to the work a request costs."""
    import pandas as pd

    rows = []
    for s in stages:
        for e in s.endpoints:
            d, _ = demands(e)
            for tier, v in d.items():
                rows.append({"stage": s.stage, "endpoint": e.name, "share": e.share,
                             "tier": tier, "demand_ms": v * 1e3})
    return pd.DataFrame(rows)


def shop_workload(rate_per_s: float):
    """``rate_per_s`` requests per second arriving as k6's arrival-rate executors start them:
    evenly spaced, not Poisson (a Poisson model of the same rate queues far more: at 80 % of
    capacity the monolith's p99 came out 4x what k6 measured)."""
    from capsim.model import OpenWorkload

    if not rate_per_s > 0:
        raise fail("shop_workload", "rate_per_s", "must be > 0", rate_per_s)
    return OpenWorkload(users=float(rate_per_s), requests_per_user_s=1.0,
                        interarrival=Deterministic(1.0))


def save_measurements(stages: list[StageMeasurement], path: str | Path, **meta) -> Path:
    """Write the calibration measurements (and ``meta``: tool versions, machine) as JSON."""
    path = Path(path)
    path.write_text(json.dumps({**meta, "stages": [asdict(s) for s in stages]}, indent=1))
    return path


def load_measurements(path: str | Path) -> list[StageMeasurement]:
    """Read what :func:`save_measurements` wrote."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"load_measurements({str(path)!r}): {e}") from e
    stages = []
    for s in data["stages"]:
        eps = tuple(EndpointMeasurement(**{
            k: (tuple(v) if isinstance(v, list) else
                {t: tuple(c) for t, c in v.items()} if k == "cpu_s" else v)
            for k, v in e.items()}) for e in s["endpoints"])
        stages.append(StageMeasurement(**{**s, "endpoints": eps}))
    return stages

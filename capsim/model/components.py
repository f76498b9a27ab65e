"""Components: the parts of a system that requests visit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from capsim.dists import Distribution
from capsim.errors import check_int, check_name, check_number, fail
from capsim.model.pools import Pool, check_bulkheads, check_pool

BALANCING = ("round_robin", "random", "least_connections", "power_of_two")
DISCIPLINES = ("fcfs", "ps", "priority")
FAILOVER_WRITES = ("fail", "wait")


@dataclass(frozen=True)
class Host:
    """A box with ``cores`` CPU cores: the components placed on it (``Service(...,
    host="box")``, ``Database(..., host="box")``) share them by processor sharing, so an app
    and its PostgreSQL on one machine slow each other down, and a bigger box is more cores.
    ``speed`` scales every core (1.0: service times are given at this box's speed; 2.0 does
    the same work in half the time)."""

    name: str
    cores: int = 1
    speed: float = 1.0

    def __post_init__(self) -> None:
        check_name("Host", "name", self.name)
        check_int(self.label, "cores", self.cores, minimum=1)
        check_number(self.label, "speed", self.speed)

    @property
    def label(self) -> str:
        return f"Host({self.name!r})"

    @property
    def capacity(self) -> float:
        """Core-seconds of work it does per second."""
        return self.cores * self.speed


@dataclass(frozen=True)
class Component:
    """Anything a flow can call; ``name`` is how flows refer to it."""

    name: str

    def __post_init__(self) -> None:
        check_name(type(self).__name__, "name", self.name)

    @property
    def label(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@dataclass(frozen=True)
class Service(Component):
    """A pool of ``servers`` identical workers in front of one FIFO queue.

    ``queue_capacity=None`` is an unbounded queue; a finite one drops arrivals that find it
    full (counted as errors of their flow), which is how a saturated pool sheds load.

    ``discipline`` says how the workers take work:

    * ``"fcfs"``: each worker serves one request at a time, first come first served;
    * ``"ps"``: processor sharing over ``servers`` cores: every request in service progresses,
      at ``min(1, servers / n)`` of a core each (a thread pool larger than the core count);
      ``max_concurrency`` caps how many are in service at once (the thread pool), the rest
      wait FIFO in front (``queue_capacity`` bounds that queue);
    * ``"priority"``: as fcfs, but a free worker takes the waiting request whose flow has the
      lowest ``Flow.priority`` first (non-preemptive; FIFO within a priority).

    ``host`` places the service on a :class:`Host`: ``servers`` are then its threads (how
    many requests it works on at once; the rest wait FIFO), and their work shares the host's
    cores with every other component on it. An infinite-server delay centre is a
    :class:`Delay`.

    Load shedding: ``rate_limit`` (a :class:`RateLimit`, one token bucket for all instances,
    as a gateway in front of them) rejects arrivals beyond its rate at once (429);
    ``queue_deadline_s`` drops a request that has waited longer than that when a worker
    would start it (its caller gave up), so a backlog does not make every later request
    late too (fcfs and priority pools, not on a host).

    ``bulkheads`` (``{"payments": 4}``): while a worker of an instance is in a call to a
    dependency it makes inside ``Call(this, calls=[...])``, at most that many of the
    instance's workers may be in calls to it at once; one call more fails at once (an error
    of its flow, counted in ``RunResult.bulkheads()``) instead of tying up another worker,
    so a slow dependency exhausts only its own slots.
    """

    servers: int = 1
    service_time: Distribution | None = None
    queue_capacity: int | None = None
    instances: int = 1
    balancing: str = "round_robin"
    discipline: str = "fcfs"
    max_concurrency: int | None = None
    host: str | None = None
    rate_limit: RateLimit | None = None
    queue_deadline_s: float | None = None
    bulkheads: tuple[tuple[str, int], ...] | dict[str, int] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "servers", self.servers, minimum=1)
        object.__setattr__(self, "bulkheads", check_bulkheads(self.label, self.bulkheads))
        _check_dist(self.label, "service_time", self.service_time)
        if self.queue_capacity is not None:
            check_int(self.label, "queue_capacity", self.queue_capacity, minimum=0)
        check_int(self.label, "instances", self.instances, minimum=1)
        _check_choice(self.label, "balancing", self.balancing, BALANCING)
        _check_choice(self.label, "discipline", self.discipline, DISCIPLINES)
        if self.max_concurrency is not None:
            if self.discipline != "ps":
                raise fail(self.label, "max_concurrency", "needs discipline='ps' (it caps the "
                           "requests sharing the cores)", self.max_concurrency)
            check_int(self.label, "max_concurrency", self.max_concurrency,
                      minimum=self.servers)
        _check_host(self.label, self.host)
        if self.host is not None:
            if self.discipline == "priority":
                raise fail(self.label, "discipline", "must be 'fcfs' or 'ps' on a host (its "
                           "threads share the host's cores)", self.discipline)
            if self.instances != 1:
                raise fail(self.label, "instances", "must be 1 on a host (instances on other "
                           "boxes are other hosts)", self.instances)
            if self.max_concurrency is not None:
                raise fail(self.label, "max_concurrency", "is not used on a host: there "
                           "``servers`` are the threads, which already cap the requests in "
                           "service", self.max_concurrency)
        _check_rate_limit(self.label, self.rate_limit)
        if self.queue_deadline_s is not None:
            check_number(self.label, "queue_deadline_s", self.queue_deadline_s)
            if self.discipline == "ps" or self.host is not None:
                raise fail(self.label, "queue_deadline_s", "needs an fcfs or priority pool "
                           "off a host (a processor-sharing or hosted pool has no deadline)",
                           self.queue_deadline_s)

    @property
    def capacity_per_s(self) -> float:
        """Requests per second all instances complete when every worker is busy."""
        return self.instances * self.servers / self.service_time.mean


@dataclass(frozen=True)
class Delay(Component):
    """Pure latency with no queue (a network hop, an external API): infinite servers.

    ``loss``: each request entering the hop is lost with that probability (never delivered,
    an error counted at the hop). A caller with ``timeout_s`` sees nothing come back and
    times out (then may retry), as a lost TCP request looks; with no timeout watching it the
    request fails at once, as a reset connection would."""

    latency: Distribution | None = None
    loss: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_dist(self.label, "latency", self.latency)
        if check_number(self.label, "loss", self.loss, strict=False) >= 1.0:
            raise fail(self.label, "loss", "must be < 1 (a probability; a dead hop is an "
                       "Outage)", self.loss)

    @property
    def capacity_per_s(self) -> float:
        return math.inf


@dataclass(frozen=True)
class Cache(Component):
    """A cache server (Redis, Memcached): ``Read`` it, and on a miss run the step's ``on_miss``.

    Give ``hit_ratio`` directly, or a key-popularity model: ``keys`` requested with Zipf
    popularity ``zipf_s`` and an LRU holding ``capacity_keys``; the simulation then runs the LRU
    (cold at start unless ``warm``) and the analytic twin uses Che's approximation. ``ttl_s``
    expires entries. A ``Write`` to the cache changes a key's data at the origin; with
    ``invalidate_on_write`` the cached copy is dropped, otherwise reads of it are stale until
    it expires (stale data versus slow data, measured in ``RunResult.caches()``). ``host``
    places the cache server on a :class:`Host` (Redis beside the app on one box takes its
    cores too).
    """

    servers: int = 1
    service_time: Distribution | None = None
    hit_ratio: float | None = None
    keys: int | None = None
    zipf_s: float = 0.9
    capacity_keys: int | None = None
    ttl_s: float | None = None
    warm: bool = True
    invalidate_on_write: bool = True
    host: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "servers", self.servers, minimum=1)
        _check_dist(self.label, "service_time", self.service_time)
        _check_host(self.label, self.host)
        if self.hit_ratio is not None:
            if self.keys is not None or self.capacity_keys is not None:
                raise fail(self.label, "hit_ratio", "give hit_ratio or keys+capacity_keys, "
                           "not both", self.hit_ratio)
            h = check_number(self.label, "hit_ratio", self.hit_ratio, strict=False)
            if h > 1:
                raise fail(self.label, "hit_ratio", "must be <= 1", self.hit_ratio)
        else:
            if self.keys is None or self.capacity_keys is None:
                raise fail(self.label, "hit_ratio", "give hit_ratio, or keys and "
                           "capacity_keys for an LRU over Zipf-popular keys", None)
            check_int(self.label, "keys", self.keys, minimum=1)
            check_int(self.label, "capacity_keys", self.capacity_keys, minimum=1)
            check_number(self.label, "zipf_s", self.zipf_s, strict=False)
        if self.ttl_s is not None:
            if self.hit_ratio is not None:
                raise fail(self.label, "ttl_s", "needs the key model (keys, capacity_keys); a "
                           "fixed hit_ratio already includes expiry", self.ttl_s)
            check_number(self.label, "ttl_s", self.ttl_s)

    @property
    def dynamic(self) -> bool:
        """True when hits depend on the cache's state (LRU, TTL), not a fixed ratio."""
        return self.hit_ratio is None

    @property
    def capacity_per_s(self) -> float:
        return self.servers / self.service_time.mean


@dataclass(frozen=True)
class CDN(Component):
    """An edge cache for static assets: ``hit_ratio`` of reads answered at the edge after
    ``edge_latency``; misses go on to the step's ``on_miss`` (the origin)."""

    hit_ratio: float = 0.9
    edge_latency: Distribution | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        h = check_number(self.label, "hit_ratio", self.hit_ratio, strict=False)
        if h > 1:
            raise fail(self.label, "hit_ratio", "must be <= 1", self.hit_ratio)
        _check_dist(self.label, "edge_latency", self.edge_latency)

    @property
    def capacity_per_s(self) -> float:
        return math.inf


@dataclass(frozen=True)
class Failover:
    """What a replicated database does when a primary fails (an :class:`Outage` of it).

    The failure is noticed after ``detect_s`` (health checks, a quorum's timeout) and a replica
    is promoted ``promote_s`` later (replay, DNS or proxy switch-over). Until then the shard
    takes no writes: with ``writes="fail"`` each one is refused at once (an error, which a
    caller's retries may repeat), writes queued at the primary included; with ``"wait"`` they
    wait and go to the new primary when it is promoted (a proxy holding connections). Reads
    go on at the replicas; the one promoted serves reads until it is primary, then only if no
    other replica is left. The failed box comes back, at the outage's end, as a replica.

    With asynchronous replication (the database's ``replication_lag``), the writes the
    primary had committed but not yet shipped when it failed are lost (the recovery point):
    a write committed ``a`` seconds before the failure is lost when its lag exceeds ``a``.
    Without ``replication_lag`` replication is synchronous and nothing is lost.
    """

    detect_s: float = 10.0
    promote_s: float = 20.0
    writes: str = "fail"

    def __post_init__(self) -> None:
        check_number("Failover", "detect_s", self.detect_s, strict=False)
        check_number("Failover", "promote_s", self.promote_s, strict=False)
        _check_choice("Failover", "writes", self.writes, FAILOVER_WRITES)

    @property
    def recovery_s(self) -> float:
        """Seconds from the failure until a new primary takes writes."""
        return self.detect_s + self.promote_s


@dataclass(frozen=True)
class Database(Component):
    """A database: a primary (writes) and ``read_replicas`` (reads, routed by ``read_policy``)
    per shard; ``shards`` split keys by ``shard_weights`` (uniform when None; a hot shard is a
    larger weight). ``Read(..., index=False)`` scans ``table_rows`` at ``scan_rows_per_s``
    instead of an index lookup. ``replication_lag`` makes a read soon after a write stale
    (asynchronous replication). ``failover`` promotes a replica when a primary fails (see
    :class:`Failover`; it needs ``read_replicas >= 1``). ``host`` places a single database
    server on a :class:`Host` (``servers`` are then its connections, sharing the host's cores
    with the other components there). ``pool`` is its callers' connection pool (see
    :class:`Pool`): a query waits for a connection before it queues here, and the pool's
    connections in all, when fewer than a box's ``servers``, are all the box ever serves
    (``System.stations()`` gives it that many servers)."""

    servers: int = 1
    service_time: Distribution | None = None
    read_replicas: int = 0
    shards: int = 1
    shard_weights: tuple[float, ...] | None = None
    read_policy: str = "round_robin"
    replication_lag: Distribution | None = None
    table_rows: int | None = None
    scan_rows_per_s: float = 5e6
    queue_capacity: int | None = None
    host: str | None = None
    failover: Failover | None = None
    pool: Pool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "servers", self.servers, minimum=1)
        _check_dist(self.label, "service_time", self.service_time)
        check_pool(self.label, self.pool)
        check_int(self.label, "read_replicas", self.read_replicas, minimum=0)
        if self.failover is not None:
            if not isinstance(self.failover, Failover):
                raise fail(self.label, "failover", "must be a Failover(detect_s, promote_s)",
                           self.failover)
            if not self.read_replicas:
                raise fail(self.label, "failover", "needs a replica to promote: give "
                           "read_replicas >= 1", self.failover)
        check_int(self.label, "shards", self.shards, minimum=1)
        if self.shard_weights is not None:
            weights = tuple(check_number(self.label, f"shard_weights[{i}]", w)
                            for i, w in enumerate(self.shard_weights))
            if len(weights) != self.shards:
                raise fail(self.label, "shard_weights", f"must hold {self.shards} weights "
                           "(one per shard)", list(weights))
            if abs(math.fsum(weights) - 1.0) > 1e-6:
                raise fail(self.label, "shard_weights", "must sum to 1", round(sum(weights), 9))
            object.__setattr__(self, "shard_weights", weights)
        _check_choice(self.label, "read_policy", self.read_policy, BALANCING)
        if self.replication_lag is not None:
            _check_dist(self.label, "replication_lag", self.replication_lag)
        if self.table_rows is not None:
            check_int(self.label, "table_rows", self.table_rows, minimum=1)
        check_number(self.label, "scan_rows_per_s", self.scan_rows_per_s)
        if self.queue_capacity is not None:
            check_int(self.label, "queue_capacity", self.queue_capacity, minimum=0)
        _check_host(self.label, self.host)
        if self.host is not None and (self.read_replicas or self.shards > 1):
            raise fail(self.label, "host", "places a single database server on a box: give "
                       "read_replicas=0 and shards=1 (replicas and shards are other boxes)",
                       self.host)

    @property
    def weights(self) -> tuple[float, ...]:
        return self.shard_weights or (1.0 / self.shards,) * self.shards

    def scan_factor(self, service: Distribution | None = None) -> float:
        """How many index lookups (of ``service``, the read's own demand, or the database's)
        one full scan of the table costs."""
        if self.table_rows is None:
            raise fail(self.label, "table_rows", "is needed for Read(..., index=False)", None)
        base = self.service_time if service is None else service
        return (self.table_rows / self.scan_rows_per_s) / base.mean

    @property
    def capacity_per_s(self) -> float:
        return self.servers / self.service_time.mean


@dataclass(frozen=True)
class MessageQueue(Component):
    """A Kafka-like topic: ``Publish`` returns after ``publish_latency`` (the broker's ack);
    the message waits in one of ``partitions`` and a consumer group of ``consumer.servers``
    consumers (each owning whole partitions, at most one per partition) processes it with
    ``consumer.service_time``. Messages older than ``retention_s`` are lost unread."""

    partitions: int = 1
    consumer: Service | None = None
    publish_latency: Distribution | None = None
    retention_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "partitions", self.partitions, minimum=1)
        if not isinstance(self.consumer, Service):
            raise fail(self.label, "consumer", "must be a Service (the consumer group)",
                       self.consumer)
        for name in ("rate_limit", "queue_deadline_s"):
            if getattr(self.consumer, name) is not None:
                raise fail(self.label, f"consumer.{name}", "is not used by a consumer group "
                           "(messages are not rejected; retention_s loses old ones)",
                           getattr(self.consumer, name))
        if self.consumer.servers > self.partitions:
            raise fail(self.label, "consumer.servers", f"must be <= partitions "
                       f"({self.partitions}): a partition has at most one consumer",
                       self.consumer.servers)
        if self.publish_latency is not None:
            _check_dist(self.label, "publish_latency", self.publish_latency)
        if self.retention_s is not None:
            check_number(self.label, "retention_s", self.retention_s)

    @property
    def consumers(self) -> int:
        return self.consumer.servers

    def partition_share(self) -> tuple[float, ...]:
        """Share of messages each consumer gets (partition p belongs to consumer p mod K)."""
        k = self.consumers
        return tuple(len(range(i, self.partitions, k)) / self.partitions for i in range(k))

    @property
    def capacity_per_s(self) -> float:
        return self.consumers / self.consumer.service_time.mean


@dataclass(frozen=True)
class Outage:
    """``component`` (or one ``instance`` of it) serves nothing from ``start_s`` for
    ``duration_s``: work in progress finishes, new work waits (or is shed by a full queue).

    ``component`` may also name one station of a component (``"pg/shard0/replica1"``, as
    ``System.stations()`` lists them): a failed replica's reads go to the others; a failed
    primary's writes wait for it. A database with a :class:`Failover` fails over instead: an
    outage of the database (or of one shard's primary, ``"pg/shard1"``) is the failure of
    its primary box (of every shard's, for the database), and a replica is promoted."""

    component: str
    start_s: float
    duration_s: float
    instance: int | None = None

    def __post_init__(self) -> None:
        check_name("Outage", "component", self.component)
        check_number("Outage", "start_s", self.start_s, strict=False)
        check_number("Outage", "duration_s", self.duration_s)
        if self.instance is not None:
            check_int("Outage", "instance", self.instance, minimum=0)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket (an API gateway's limit): ``rate_per_s`` tokens a second refill it
    continuously up to ``burst`` (full at the start; None: one second's worth, at least 1).
    Each request takes a token; one that finds less than a whole token is rejected at once
    (HTTP 429, an error of its flow that a caller's retries may repeat). No randomness: the
    same arrivals give the same admissions. In the long run it admits min(offered,
    rate_per_s) per second; ``burst`` is how many pass at once after a quiet spell."""

    rate_per_s: float
    burst: float | None = None

    def __post_init__(self) -> None:
        rate = check_number("RateLimit", "rate_per_s", self.rate_per_s)
        if self.burst is None:
            object.__setattr__(self, "burst", max(1.0, rate))
        check_number("RateLimit", "burst", self.burst, minimum=1.0, strict=False)


@dataclass(frozen=True)
class DelaySpike:
    """A latency spike on a hop: every request entering the :class:`Delay` ``component``
    from ``start_s`` for ``duration_s`` takes ``factor`` x its latency plus ``extra_s``
    (a congested link, a slow external API). Given in ``System(spikes=[...])``."""

    component: str
    start_s: float
    duration_s: float
    factor: float = 1.0
    extra_s: float = 0.0

    def __post_init__(self) -> None:
        owner = f"DelaySpike({self.component!r})"
        check_name("DelaySpike", "component", self.component)
        check_number(owner, "start_s", self.start_s, strict=False)
        check_number(owner, "duration_s", self.duration_s)
        check_number(owner, "factor", self.factor)
        check_number(owner, "extra_s", self.extra_s, strict=False)
        if self.factor == 1.0 and self.extra_s == 0.0:
            raise fail(owner, "factor", "gives no spike: set factor != 1 or extra_s > 0",
                       self.factor)


@dataclass(frozen=True)
class Autoscaler:
    """Target tracking for a replicated Service: every ``interval_s`` it measures the average
    utilization of the running instances and asks for ceil(running x utilization / target)
    instances, within [min, max]. New instances serve after ``provision_s`` (boot time);
    after a change it waits ``cooldown_s``. Instances beyond ``min_instances`` start stopped;
    the Service's ``instances`` must be at least ``max_instances`` (the pool it draws from)."""

    component: str
    target_utilization: float = 0.6
    min_instances: int = 1
    max_instances: int = 10
    interval_s: float = 60.0
    provision_s: float = 120.0
    cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        owner = f"Autoscaler({self.component!r})"
        check_name("Autoscaler", "component", self.component)
        t = check_number(owner, "target_utilization", self.target_utilization)
        if t >= 1:
            raise fail(owner, "target_utilization", "must be < 1", self.target_utilization)
        check_int(owner, "min_instances", self.min_instances, minimum=1)
        check_int(owner, "max_instances", self.max_instances, minimum=self.min_instances)
        check_number(owner, "interval_s", self.interval_s)
        check_number(owner, "provision_s", self.provision_s, strict=False)
        check_number(owner, "cooldown_s", self.cooldown_s, strict=False)


def _check_dist(owner: str, field: str, value) -> None:
    if not isinstance(value, Distribution):
        raise fail(owner, field, "must be a distribution such as Exponential(mean=0.01)", value)


def _check_rate_limit(owner: str, value) -> None:
    """A ``rate_limit`` is None or a RateLimit (shared by Service and Flow)."""
    if value is not None and not isinstance(value, RateLimit):
        raise fail(owner, "rate_limit", "must be a RateLimit(rate_per_s, burst)", value)


def _check_host(owner: str, host) -> None:
    if host is not None:
        check_name(owner, "host", host)


def _check_choice(owner: str, field: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise fail(owner, field, f"must be one of {', '.join(choices)}", value)

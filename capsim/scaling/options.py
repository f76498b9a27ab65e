"""Scaling options for one tier: a bigger box (vertical), more boxes (horizontal), or a database
split into read replicas and shards; and what the tier looks like with one box down.

**The reference model.** ``apply(system, component, option)`` reads the component's
``service_time`` as the work of one request on **one reference core** (speed 1.0 in the
catalogue) with nothing else running: the demand you would measure on a small box at low load.
It then sets the tier's workers to the instance's vCPUs and each worker's service time to::

    S_worker = S_reference x N / C(N) / speed,      C(N) = N / (1 + sigma (N - 1) + kappa N (N - 1))

``C(N)`` is the Universal Scalability Law's capacity of ``N`` cores in units of one core:
``sigma`` is contention (the serial share: locks, a single WAL writer), ``kappa`` coherency
(cores keeping shared data consistent, which makes throughput *fall* past
``N_max = sqrt((1 - sigma) / kappa)``). ``N`` workers each ``N / C(N)`` times slower complete
``C(N) / S_reference`` requests per second together, exactly the USL's throughput, so 64
cores are not 32 x 2 cores. A faster core (``speed`` 1.35) divides the time. Because the
reference is fixed, always apply options to the reference model, not to an already-scaled one.

The penalty is charged at every load: a worker of a 64-core box is always 64 / C(64) = 2.4
times slower, as if all 64 cores contended. That is the USL's reading at full concurrency,
pessimistic at light load (fewer requests in flight contend less), and it shows in latency as
well as capacity: each request on the big box takes longer, not only the queue.

**Default USL coefficients.** ``sigma = 0.01704689``, ``kappa = 7.892498e-05``: Gunther's fit of
SPEC SDM91 on a 16-CPU Sun (a multi-user, shared-memory server workload; *Guerrilla Capacity
Planning*, 2007, sec. 5.2.3; reproduced in ``tests/test_usl.py``). With them C(2) = 1.97,
C(8) = 7.1, C(32) = 19.9, C(64) = 26.8. They stand in for "a server process on a many-core box"
until you measure your own: run a load test at several core counts, fit the USL to it
(``capsim.calibrate.fit_usl``), and build options with ``Vertical.from_fit(instance, fit)``.

**Failures.** ``one_down`` builds the system with one box of the tier gone, for simulation:
an ``Outage`` of the only box (vertical: nothing serves the tier), or of instance 0 of a
horizontal tier (the balancer's health check sends its share to the others). A database with
replicas fails over: the shard that lost a box runs on one box fewer (a replica promoted or
lost; its reads go to the replicas left, or to its primary when none is). capsim's ``Outage``
takes a Database down as a whole, so this shard-level failure is simulated on an equivalent
model in which the database's boxes are plain services (same stations, same routing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from capsim.analytic import usl
from capsim.errors import ModelError, check_int, check_number, fail
from capsim.model import (
    Branch,
    Call,
    Database,
    Failover,
    Outage,
    Read,
    Service,
    System,
    Write,
)
from capsim.model.components import BALANCING
from capsim.scaling.catalogue import Instance

__all__ = ["SDM91_KAPPA", "SDM91_SIGMA", "DatabaseOptions", "Failure", "Horizontal", "Option",
           "Vertical", "after_failover", "apply", "capacity_per_s", "deploy",
           "effective_capacity", "one_down", "plot_effective_capacity", "usl_capacity"]

SDM91_SIGMA = 0.01704689  # GCaP (2007) sec. 5.2.3, SPEC SDM91, Gunther's normalised fit
SDM91_KAPPA = 7.892498e-05
ALWAYS_S = 1e12  # an outage that outlasts any run


def usl_capacity(n: float, sigma: float = SDM91_SIGMA, kappa: float = SDM91_KAPPA) -> float:
    """C(N) = N / (1 + sigma (N - 1) + kappa N (N - 1)): N cores' capacity in single cores
    (``capsim.analytic.usl.capacity`` with the SDM91 coefficients by default)."""
    return usl.capacity(n, sigma, kappa)


def effective_capacity(catalogue, sigma: float = SDM91_SIGMA,
                       kappa: float = SDM91_KAPPA) -> pd.DataFrame:
    """Per instance type: what its vCPUs are worth under the USL, and what that costs.

    ``effective_cores`` = C(N) x speed (reference cores of work per second of the box),
    ``efficiency`` = C(N) / N, and the price per effective core-hour.
    """
    rows = []
    for i in catalogue:
        c = usl_capacity(i.vcpus, sigma, kappa)
        rows.append({"name": i.name, "family": i.family, "vcpus": i.vcpus, "speed": i.speed,
                     "memory_gib": i.memory_gib, "price_per_hour_usd": i.price_per_hour_usd,
                     "effective_cores": c * i.speed, "efficiency": c / i.vcpus,
                     "usd_per_effective_core_hour": i.price_per_hour_usd / (c * i.speed)})
    return pd.DataFrame(rows)


def plot_effective_capacity(table: pd.DataFrame, fig=None):
    """Two panels from ``effective_capacity``: effective cores against vCPUs (log-log, with
    linear scaling dotted), and the price of an effective core-hour, one line per family."""
    from capsim.report.scaling import effective_capacity_figure

    return effective_capacity_figure(table, fig)


@dataclass(frozen=True)
class Option:
    """What every scaling option knows: its instance type, USL coefficients and boxes."""

    instance: Instance
    sigma: float = field(default=SDM91_SIGMA, kw_only=True)
    kappa: float = field(default=SDM91_KAPPA, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.instance, Instance):
            raise fail(type(self).__name__, "instance", "must be an Instance from a catalogue",
                       self.instance)
        check_number(self.label, "sigma", self.sigma, strict=False)
        check_number(self.label, "kappa", self.kappa, strict=False)

    @classmethod
    def from_fit(cls, instance: Instance, fit, **kwargs):
        """The option with USL coefficients from ``capsim.calibrate.fit_usl``."""
        return cls(instance, **kwargs, sigma=fit.sigma, kappa=fit.kappa)

    # -- per box ---------------------------------------------------------------------------
    @property
    def effective_cores(self) -> float:
        """C(N) x speed: one box's capacity in reference cores."""
        return usl_capacity(self.instance.vcpus, self.sigma, self.kappa) * self.instance.speed

    @property
    def service_factor(self) -> float:
        """What one worker's service time is multiplied by: N / C(N) / speed."""
        n = self.instance.vcpus
        return n / usl_capacity(n, self.sigma, self.kappa) / self.instance.speed

    # -- the tier --------------------------------------------------------------------------
    @property
    def boxes(self) -> int:
        """Instances paid for."""
        return 1

    @property
    def cost_per_hour_usd(self) -> float:
        return self.boxes * self.instance.price_per_hour_usd

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()

    @property
    def label(self) -> str:
        return self.instance.name if isinstance(self.instance, Instance) else "?"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Vertical(Option):
    """The tier on one box: ``instance.vcpus`` workers, each slowed by the USL and sped up by the
    instance's core speed. A single point of failure."""

    @property
    def label(self) -> str:
        return f"1 x {self.instance.name}"


@dataclass(frozen=True)
class Horizontal(Option):
    """``count`` boxes of ``instance`` behind a load balancer that sends each request to one of
    them by ``policy`` (round_robin, random, least_connections, power_of_two) and skips a box
    that is down. ``balancer_usd_per_hour`` is the balancer's own charge (illustrative, about a
    managed cloud load balancer's base fee)."""

    count: int
    policy: str = "least_connections"
    balancer_usd_per_hour: float = 0.025

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "count", self.count, minimum=1)
        if self.policy not in BALANCING:
            raise fail(self.label, "policy", f"must be one of {', '.join(BALANCING)}",
                       self.policy)
        check_number(self.label, "balancer_usd_per_hour", self.balancer_usd_per_hour,
                     strict=False)

    @property
    def boxes(self) -> int:
        return self.count

    @property
    def cost_per_hour_usd(self) -> float:
        return self.count * self.instance.price_per_hour_usd + self.balancer_usd_per_hour

    @property
    def label(self) -> str:
        return f"{self.count} x {self.instance.name}"


@dataclass(frozen=True)
class DatabaseOptions(Option):
    """A database on ``shards`` primaries (writes, split by ``shard_weights``) each with
    ``read_replicas`` replicas (reads, by ``read_policy``; the primary reads when there are
    none). Reads scale with replicas, writes only with shards. Every box is ``instance``.
    ``failover`` (a :class:`~capsim.model.Failover`) promotes a replica when a primary dies;
    it needs a replica."""

    read_replicas: int = 0
    shards: int = 1
    shard_weights: tuple[float, ...] | None = None
    read_policy: str = "least_connections"
    failover: Failover | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "read_replicas", self.read_replicas, minimum=0)
        check_int(self.label, "shards", self.shards, minimum=1)
        if self.read_policy not in BALANCING:
            raise fail(self.label, "read_policy", f"must be one of {', '.join(BALANCING)}",
                       self.read_policy)
        if self.shard_weights is not None:
            object.__setattr__(self, "shard_weights", tuple(self.shard_weights))
        if self.failover is not None and not self.read_replicas:
            raise fail(self.label, "failover", "needs a replica to promote: give "
                       "read_replicas >= 1", self.failover)

    @property
    def boxes(self) -> int:
        return self.shards * (1 + self.read_replicas)

    @property
    def kind(self) -> str:
        return "database"

    @property
    def label(self) -> str:
        name = self.instance.name if isinstance(self.instance, Instance) else "?"
        parts = [f"{name} primary"]
        if self.read_replicas:
            parts.append(f"+ {self.read_replicas} replica{'s' * (self.read_replicas > 1)}")
        if self.shards > 1:
            parts = [f"{self.shards} shards x ({' '.join(parts)})"]
        return " ".join(parts)


# ------------------------------------------------------------------------------- applying


def apply(system: System, component: str, option: Option) -> System:
    """``system`` with ``component`` deployed as ``option`` (see the module notes: the
    component's service time is the reference demand on one reference core).

    ``component`` may name a :class:`~capsim.model.Host`: a Vertical option is a bigger box,
    whose cores every component on it shares. A component placed on a host leaves it for
    boxes of its own (Horizontal: ``count`` of them behind a balancer), the others stay."""
    if not isinstance(option, Option):
        raise ModelError(f"apply.option: must be Vertical, Horizontal or DatabaseOptions, "
                         f"got {option!r}")
    host = next((h for h in system.hosts if h.name == component), None)
    if host is not None:  # a bigger box: every component on it gets its cores and speed
        if not isinstance(option, Vertical):
            raise ModelError(f"apply: {host.label} is one box; it scales up (Vertical). To "
                             "scale out, model the tier as a Service with instances")
        bigger = replace(host, cores=option.instance.vcpus, speed=1.0 / option.service_factor)
        return replace(system, hosts=tuple(bigger if h is host else h for h in system.hosts))
    comp = system.component(component)
    dist = comp.service_time if isinstance(comp, (Service, Database)) else None
    if dist is None:
        raise ModelError(f"apply: {comp.label} cannot be scaled here; Service and Database "
                         "tiers can")
    if getattr(comp, "host", None) is not None:  # off the shared box, onto boxes of its own
        system = _off_host(system, component)
        comp = system.component(component)
    # every demand on the tier, its own and the endpoints' (steps' service_time), scales
    system = system.scaled_demands(component, option.service_factor)
    common = {"servers": option.instance.vcpus}
    if isinstance(comp, Service):
        if isinstance(option, DatabaseOptions):
            raise ModelError(f"apply: {comp.label} is a Service; DatabaseOptions (replicas, "
                             "shards) need a Database")
        if isinstance(option, Horizontal):
            return system.evolve(component, instances=option.count, balancing=option.policy,
                                 **common)
        return system.evolve(component, instances=1, **common)
    if isinstance(option, Horizontal):
        raise ModelError(f"apply: {comp.label} is stateful: it scales out with "
                         "DatabaseOptions(instance, read_replicas=..., shards=...), reads with "
                         "replicas and writes only with shards")
    if isinstance(option, DatabaseOptions):
        failover = option.failover or (comp.failover if option.read_replicas else None)
        return system.evolve(component, read_replicas=option.read_replicas,
                             shards=option.shards, shard_weights=option.shard_weights,
                             read_policy=option.read_policy, failover=failover, **common)
    return system.evolve(component, read_replicas=0, shards=1, shard_weights=None,
                         failover=None, **common)


def _off_host(system: System, component: str) -> System:
    """``component`` taken off the Host it shares (which keeps the others; a host left
    empty goes): the first step of splitting a monolith, app and database on their own
    boxes."""
    host = system.component(component).host
    system = system.evolve(component, host=None)
    if not any(getattr(c, "host", None) == host for c in system.components):
        system = replace(system, hosts=tuple(h for h in system.hosts if h.name != host))
    return system


def deploy(system: System, plan: Mapping[str, Option]) -> System:
    """Apply one option per tier: ``deploy(system, {"app": Horizontal(...), "db": ...})``."""
    for component, option in plan.items():
        system = apply(system, component, option)
    return system


def capacity_per_s(system: System, component: str | None = None) -> float:
    """Requests per second at which ``component``'s busiest station (or the whole system's,
    when None; a host: its cores) reaches 100% busy. Synchronous holding is not counted."""
    loads = system.offered_load(1.0)
    names = [st.name for st in system.stations()
             if component is None or st.component == component]
    names += [h.name for h in system.hosts if component in (None, h.name)]  # a box's cores
    worst = max((loads[n] for n in names), default=0.0)
    return math.inf if worst <= 0 else 1.0 / worst


# ------------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class Failure:
    """One box of a tier down, from the start of a run to its end.

    ``system`` is what to simulate. ``degraded`` is an outage-free system with the same
    capacity (for the cheap bound and the twin), or None when some traffic has nothing left
    to serve it (a single box, a shard without replicas). ``description`` says which box.
    """

    system: System
    degraded: System | None
    description: str


def one_down(system: System, component: str, option: Option) -> Failure:
    """``system`` with ``component`` deployed as ``option`` and one of its boxes down."""
    deployed = apply(system, component, option)
    if any(h.name == component for h in system.hosts):  # the box and all that runs on it
        on = [c.name for c in deployed.components if getattr(c, "host", None) == component]
        out = replace(deployed, outages=(*deployed.outages,
                                         *(Outage(n, 0.0, ALWAYS_S) for n in on)))
        return Failure(out, None, f"outage: host {component} ({', '.join(on)})")
    if isinstance(option, Horizontal) and option.count > 1:
        out = replace(deployed, outages=(*deployed.outages,
                                         Outage(component, 0.0, ALWAYS_S, instance=0)))
        degraded = apply(system, component, replace(option, count=option.count - 1))
        return Failure(out, degraded, f"outage: 1 of {option.count} instances")
    if isinstance(option, DatabaseOptions) and (option.read_replicas or option.shards > 1):
        if option.read_replicas and option.shards == 1:  # the database itself, one fewer
            after = after_failover(deployed, component)
            return Failure(after, after, f"failover: the database on {option.read_replicas} "
                           f"of its {option.read_replicas + 1} boxes")
        if option.read_replicas:
            lowered = database_as_services(deployed, component,
                                           replicas={0: option.read_replicas - 1})
            where = "shard 0" if option.shards > 1 else "the database"
            return Failure(lowered, lowered,
                           f"failover: {where} on {option.read_replicas} of its "
                           f"{option.read_replicas + 1} boxes")
        lowered = database_as_services(deployed, component)
        primary = _primary_name(component, 0, option.shards)
        out = replace(lowered, outages=(*lowered.outages, Outage(primary, 0.0, ALWAYS_S)))
        return Failure(out, None, f"outage: shard 0 of {option.shards} (no replica)")
    out = replace(deployed, outages=(*deployed.outages, Outage(component, 0.0, ALWAYS_S)))
    return Failure(out, None, "outage: the only box")


def after_failover(system: System, database: str, shard: int = 0) -> System:
    """``system`` once ``database``'s shard ``shard`` has failed over: one replica fewer
    (promoted to primary; reads go to the others, or to it when none is left), the failed box
    not back yet. The same stations as before otherwise, for the twin's steady state."""
    db = system.component(database)
    if not isinstance(db, Database) or not db.read_replicas:
        raise ModelError(f"after_failover: {db.label} has no replica to promote")
    check_int("after_failover", "shard", shard, minimum=0)
    if shard >= db.shards:
        raise fail("after_failover", "shard", f"must be below {db.shards}", shard)
    left = db.read_replicas - 1
    if db.shards == 1:
        return system.evolve(database, read_replicas=left,
                             failover=db.failover if left else None)
    plain = system.evolve(database, failover=None)
    return database_as_services(plain, database, replicas={shard: left})


def _primary_name(db: str, shard: int, shards: int) -> str:
    return f"{db}/shard{shard}" if shards > 1 else db


def _readers_name(db: str, shard: int, shards: int) -> str:
    return f"{_primary_name(db, shard, shards)}/replicas"


def database_as_services(system: System, component: str,
                         replicas: Mapping[int, int] | None = None) -> System:
    """The Database ``component`` as plain Services, one per shard's primary and one
    (replicated, balanced by the read policy) per shard's replicas: the same stations and
    routing, except that ``replicas`` may give a shard fewer replicas than the others.

    Reads become a shard pick (``Branch`` by weight) then a call to the shard's replicas, or its
    primary when it has none; writes a call to the shard's primary. Full-scan reads
    (``index=False``) have no equivalent and are refused.
    """
    db = system.component(component)
    if not isinstance(db, Database):
        raise ModelError(f"database_as_services: {db.label} is not a Database")
    if any(o.component == component for o in system.outages):
        raise ModelError(f"database_as_services: {db.label} already has an outage")
    replicas = dict(replicas or {})
    per_shard = [replicas.get(s, db.read_replicas) for s in range(db.shards)]
    services, readers, writers = [], [], []
    for s, r in enumerate(per_shard):
        primary = _primary_name(component, s, db.shards)
        services.append(Service(primary, servers=db.servers, service_time=db.service_time,
                                queue_capacity=db.queue_capacity))
        writers.append(primary)
        if r:
            name = _readers_name(component, s, db.shards)
            services.append(Service(name, servers=db.servers, service_time=db.service_time,
                                    queue_capacity=db.queue_capacity, instances=r,
                                    balancing=db.read_policy))
            readers.append(name)
        else:
            readers.append(primary)

    def pick(targets: list[str]) -> tuple:
        if len(targets) == 1:
            return (Call(targets[0]),)
        return (Branch([(w, [Call(t)]) for w, t in zip(db.weights, targets, strict=True)]),)

    def steps(seq) -> tuple:
        out: list = []
        for step in seq:
            if isinstance(step, Branch):
                out.append(Branch([(p, steps(sub)) for p, sub in step.options]))
            elif step.component == component and isinstance(step, Read):
                if not step.index:
                    raise ModelError(f"database_as_services: a full-scan Read({component!r}) "
                                     "has no plain-service equivalent")
                out += pick(readers)
            elif step.component == component and isinstance(step, Write):
                out += pick(writers)
            elif isinstance(step, Call):
                out.append(replace(step, calls=steps(step.calls)))
            elif isinstance(step, Read):
                out.append(replace(step, on_miss=steps(step.on_miss)))
            else:
                out.append(step)
        return tuple(out)

    components = []
    for c in system.components:
        components += services if c.name == component else [c]
    flows = tuple(replace(f, steps=steps(f.steps)) for f in system.flows)
    return replace(system, components=tuple(components), flows=flows)

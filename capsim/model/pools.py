"""Connection pools and bulkheads: the limits that a load test finds as "pool exhausted".

A :class:`Pool` belongs to a :class:`~capsim.model.Database` (``Database(..., pool=Pool(10))``):
the connections its callers hold to it. A bulkhead belongs to a
:class:`~capsim.model.Service` (``Service(..., bulkheads={"payments": 4})``): how many of an
instance's workers may be in calls to one dependency at once. The engine enforces both
(``capsim.engine.pools``); this module holds the spec, its checks, and what the lowering (and
so the analytic twin) makes of a pool: a database behind a pool of ``N`` connections in all
can never serve more than ``N`` queries at once.

Who holds a pool: each *caller instance* of the database (``per="instance"``): a request's
query is made by the worker holding it, the innermost ``Call(service, calls=[...])`` around
the query (an instance of that service); a query made straight from a flow's steps, outside
any such call, is made by the flow's client, which counts as one more caller (the *entry*,
one pool for all such queries). With ``per="system"`` the whole system shares one pool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from capsim.errors import ModelError, check_int, check_name, check_number, did_you_mean, fail

POOL_PER = ("instance", "system")
ENTRY = "(entry)"  # the caller of queries made outside any Call(service, calls=[...])


@dataclass(frozen=True)
class Pool:
    """A database's connection pool (HikariCP, pgbouncer in session mode, a JDBC pool).

    Every caller (see ``per``) holds ``size`` connections. A query takes a connection before
    it queues at the database and gives it back when it is done: one per query (each
    ``Read`` or ``Write``, each of its ``visits``), as a pool used per statement; a
    transaction of several statements is one ``Write`` with its own ``service_time``. The
    worker that makes the query waits for a free connection in FIFO order, holding whatever
    it holds (its own worker, its callers'). With ``max_wait_s`` a query that has waited
    longer fails at that instant (an error of its flow, which a caller's retries may
    repeat), as HikariCP's ``connectionTimeout``; ``None`` waits as long as it takes.

    ``per="instance"``: every instance of every service that queries the database holds its
    own ``size`` connections (queries made straight from a flow share one more pool, the
    entry's); ``per="system"``: one pool of ``size`` for everyone (a proxy's pool).
    """

    size: int = 10
    per: str = "instance"
    max_wait_s: float | None = None

    def __post_init__(self) -> None:
        check_int("Pool", "size", self.size, minimum=1)
        if self.per not in POOL_PER:
            raise fail("Pool", "per", f"must be one of {', '.join(POOL_PER)}", self.per)
        if self.max_wait_s is not None:
            check_number("Pool", "max_wait_s", self.max_wait_s, strict=False)


def check_pool(owner: str, pool) -> None:
    if pool is not None and not isinstance(pool, Pool):
        raise fail(owner, "pool", "must be a Pool(size=10, per='instance', max_wait_s=None)",
                   pool)


def check_bulkheads(owner: str, value) -> tuple[tuple[str, int], ...]:
    """``{"payments": 4}`` (or pairs) as a tuple of (dependency, limit) pairs, checked."""
    if value is None:
        return ()
    try:
        pairs = list(value.items()) if isinstance(value, dict) else [tuple(p) for p in value]
    except TypeError as exc:
        raise fail(owner, "bulkheads", "must map dependencies to limits, such as "
                   "{'payments': 4}", value) from exc
    out: dict[str, int] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise fail(owner, "bulkheads", "must map dependencies to limits, such as "
                       "{'payments': 4}", value)
        name, limit = pair
        check_name(owner, "bulkheads", name)
        if name in out:
            raise fail(owner, "bulkheads", f"names {name!r} twice", value)
        out[name] = check_int(owner, f"bulkheads[{name!r}]", limit, minimum=1)
    return tuple(out.items())


def holders(system, component: str) -> tuple[str | None, ...]:
    """Who makes the steps that name ``component``: the component of the innermost
    ``Call(x, calls=[...])`` around each, or None for a step made straight from a flow; in
    first-seen order. At run time the caller is the instance of it holding the request."""
    from capsim.model.flows import Branch, Call, Read  # flows imports components, which us

    seen: dict[str | None, None] = {}

    def walk(steps, holder: str | None) -> None:
        for step in steps:
            if isinstance(step, Branch):
                for _, sub in step.options:
                    walk(sub, holder)
                continue
            if step.component == component:
                seen.setdefault(holder, None)
            if isinstance(step, Call) and step.calls:
                walk(step.calls, step.component)
            elif isinstance(step, Read):
                walk(step.on_miss, holder)  # a miss is handled by the reader itself

    for flow in system.flows:
        walk(flow.steps, None)
    return tuple(seen)


def instance_count(system, name: str | None) -> int:
    """How many callers ``name`` (a holder, see :func:`holders`) stands for."""
    if name is None:
        return 1
    comp = system.component(name)
    return getattr(comp, "instances", 1)


def pool_connections(system, db) -> int:
    """Connections to ``db`` in all its pools (size x the number of pools)."""
    pool = db.pool
    if pool.per == "system":
        return pool.size
    return pool.size * sum(instance_count(system, h) for h in holders(system, db.name))


def pooled_stations(system, db, specs: list) -> list:
    """The database's stations as its pool leaves them: when its ``N`` connections in all
    are no more than a box's ``c`` servers, a box never has more than ``N`` queries, so it
    is an ``N``-server station whose queue is the wait for a connection (and the pool's
    ``max_wait_s`` its patience). A larger pool leaves the boxes as they are."""
    n = pool_connections(system, db)
    out = []
    for spec in specs:
        if spec.servers is not None and n <= spec.servers:
            spec = replace(spec, servers=n, max_wait_s=db.pool.max_wait_s)
        out.append(spec)
    return out


def check_limits(system, by_name: dict) -> None:
    """A bulkhead names a component this service calls (inside ``Call(service, calls=[...])``):
    one that is never called from it would never bind, a typo most likely."""
    for comp in system.components:
        for name, _ in getattr(comp, "bulkheads", ()):
            if name not in by_name:
                raise ModelError(f"{comp.label}.bulkheads: unknown component {name!r}"
                                 f"{did_you_mean(name, by_name)}; known: "
                                 f"{', '.join(sorted(by_name))}")
            if comp.name not in holders(system, name):
                raise ModelError(f"{comp.label}.bulkheads[{name!r}]: no flow calls {name} "
                                 f"from {comp.name} (a bulkhead limits the calls its workers "
                                 f"make, in Call({comp.name!r}, calls=[...]))")


__all__ = ["ENTRY", "POOL_PER", "Pool", "check_bulkheads", "check_limits", "check_pool",
           "holders", "instance_count", "pool_connections", "pooled_stations"]

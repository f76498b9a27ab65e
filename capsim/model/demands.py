"""Per-endpoint demands versus one number per component.

A spreadsheet capacity model, and most one-line queueing models, give each component ONE
service time: "a query costs 14 ms". Real endpoints do not: a product page is a 3 ms
primary-key lookup, a search an 80 ms query and a checkout a 40 ms transaction, on the same
database. The mean load is the same either way (the average is weighted by how often requests
make each step), so utilization, the bottleneck and the wall agree; the latency of each
endpoint, the tails and the order in which endpoints break a budget do not.

``averaged(system)`` builds the one-number model from the per-endpoint one, so the two can be
compared on the same mix; ``demand_table(system)`` shows where each flow's demand goes (per
flow and component: visits per request and busy time per request), which is how an N+1 query
page shows up in a model.

Both read the weights from the model's own lowering (``System.routes()``: flow weights x
branch probabilities x visits x miss ratios), the same routes the simulation, the twin and
``System.offered_load`` use, so the averaged system offers exactly the same load.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from capsim.model import lowering
from capsim.model.components import CDN, Cache, Component, Database, Delay, Service
from capsim.model.flows import Branch, Call, Flow, Read, Step, Write

if TYPE_CHECKING:  # pandas loads when a table is asked for, not with the model
    import pandas as pd

    from capsim.model.system import System

__all__ = ["averaged", "demand_table"]

# the field that holds a component's own service time (what a step's service_time overrides)
SERVICE_FIELD: dict[type, str] = {Service: "service_time", Cache: "service_time",
                                  Database: "service_time", Delay: "latency",
                                  CDN: "edge_latency"}


def _hit_ratio(system: System, arrival_rate_per_s: float | None) -> lowering.HitRatio:
    """The hit ratios the weights use: fixed/Che's (no rate), or those of a request rate (a
    TTL or invalidating writes make a cache's misses, hence its origin's mix, rate-dependent)."""
    if arrival_rate_per_s is None:
        return lowering.default_hit_ratio
    hits = lowering.hit_ratios(system, arrival_rate_per_s)
    return lambda c: hits[c.name]


def _owners(system: System) -> dict[str, str]:
    """Station name -> the component it belongs to."""
    return {st.name: st.component for st in system.stations()}


def _has_override(steps: tuple[Step, ...]) -> bool:
    for step in steps:
        if isinstance(step, Branch):
            if any(_has_override(sub) for _, sub in step.options):
                return True
        elif isinstance(step, Call | Read | Write):
            if step.service_time is not None:
                return True
            if isinstance(step, Call) and _has_override(step.calls):
                return True
            if isinstance(step, Read) and _has_override(step.on_miss):
                return True
    return False


def _strip(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The same steps (visits, branches, nesting kept) without their own service times."""
    out: list[Step] = []
    for step in steps:
        if isinstance(step, Branch):
            step = Branch(tuple((p, _strip(sub)) for p, sub in step.options))
        elif isinstance(step, Call):
            step = replace(step, service_time=None, calls=_strip(step.calls))
        elif isinstance(step, Read):
            step = replace(step, service_time=None, on_miss=_strip(step.on_miss))
        elif isinstance(step, Write):
            step = replace(step, service_time=None)
        out.append(step)
    return tuple(out)


def averaged(system: System, arrival_rate_per_s: float | None = None) -> System:
    """The same system with ONE service time per component: the request-mix average of the
    steps' own demands on it; every step loses its ``service_time`` (visits, branches,
    misses and nesting are kept).

    This is the model a spreadsheet makes ("the database: 14 ms a query"). Each visit to a
    component is weighted by how often requests make it: flow weight x branch probability x
    mean visits x miss ratio, read from ``System.routes()``. So at any request rate each
    component is offered exactly the load of ``system`` (``offered_load`` summed over its
    stations), and the model has the same bottleneck and the same wall. What it loses is
    which request pays which demand, and the spread between them.

    What is kept: the component's own distribution *shape* (``service_time.scaled(mean)``:
    its family and cv), not the shape of the mixture of the steps' demands (a mix of 3 ms
    and 80 ms queries is far more variable than either): that is part of what the one-number
    model gets wrong. A Delay's ``latency`` and a CDN's ``edge_latency`` are averaged the
    same way.

    Full scans (``Read(..., index=False)``) are not part of the average: their demand is the
    table's (``table_rows / scan_rows_per_s``), whatever the lookup time, and stays so.
    Exact is each component's total own work. Two things may move: the split between the
    stations of a component whose stations see different mixes (writes on the primary,
    reads on the replicas); and the load of a worker held across synchronous calls
    (``Call(..., calls=[...])``), busy for its calls' service, which is now the callee's
    average (the callee's own load stays exact).

    ``arrival_rate_per_s``: weigh misses at the hit ratios of this rate (a cache with a TTL
    or invalidating writes; the default is the rate-free fixed / Che hit ratio). A system
    whose steps give no ``service_time`` is returned as it is.
    """
    if not any(_has_override(f.steps) for f in system.flows):
        return system
    owner = _owners(system)
    service = {st.name: st.service_time for st in system.stations()}
    by_name = {c.name: c for c in system.components}
    visits: dict[str, float] = {}  # per component: weighted lookups (full scans excluded)
    demand: dict[str, float] = {}  # ... and their own demand (s per request)
    overridden: set[str] = set()
    for route in system.routes(_hit_ratio(system, arrival_rate_per_s)):
        for v in route.calls:
            comp = owner[v.component]
            if isinstance(by_name[comp], Database) and v.scale != 1.0:
                continue  # a full scan: its demand is the table's, not a lookup's
            visits[comp] = visits.get(comp, 0.0) + route.probability
            demand[comp] = (demand.get(comp, 0.0)
                            + route.probability * v.service_of(service[v.component]).mean)
            if v.service is not None:
                overridden.add(comp)

    def one_number(c: Component) -> Component:
        field = SERVICE_FIELD.get(type(c))
        if field is None or c.name not in overridden or not visits.get(c.name, 0.0) > 0:
            return c
        mean = demand[c.name] / visits[c.name]
        return replace(c, **{field: getattr(c, field).scaled(mean)})

    return replace(system, components=tuple(one_number(c) for c in system.components),
                   flows=tuple(replace(f, steps=_strip(f.steps)) for f in system.flows))


def _flow_sums(system: System, flow: Flow, hit: lowering.HitRatio, owner: dict[str, str],
               service: dict) -> dict[str, np.ndarray]:
    """Per component, for one request of ``flow``: [visits, busy seconds (as
    ``System.demands()`` counts them: a worker held across synchronous calls is busy for
    their service too), own service seconds, own service squared seconds (its 2nd moment)]."""
    out: dict[str, np.ndarray] = {}

    def own(v: lowering.Visit) -> float:
        return v.scale * v.service_of(service[v.component]).mean

    for route in system.flow_routes(flow, hit):
        calls = route.calls
        for i, v in enumerate(calls):
            dist = v.service_of(service[v.component])
            held = sum(own(w) for w in calls[i + 1:i + 1 + v.holds])
            second = v.scale**2 * (dist.variance + dist.mean**2)
            row = out.setdefault(owner[v.component], np.zeros(4))
            row += route.probability * np.array([1.0, own(v) + held, own(v), second])
    return out


def demand_table(system: System, arrival_rate_per_s: float | None = None) -> pd.DataFrame:
    """Where each request's work goes: one row per (flow, component), then the mix (flow
    ``"all"``, each flow weighted by its share of requests).

    Columns: ``flow``, ``weight`` (its share of requests), ``component``, ``visits`` (mean
    visits per request of that flow), ``demand_ms`` (mean busy time per request, as
    ``System.demands()`` counts it), ``service_ms`` (per visit: ``demand_ms / visits``) and
    ``service_cv``: the coefficient of variation of one visit's own service time, drawn
    from the mix of the steps' demands (calls held during it not included). On the
    ``"all"`` rows that is the service time a queue at the component really sees: a mix of
    3 ms and 80 ms queries has a far larger cv than either, and a longer queue.
    A flow's ``demand_ms`` times its weight is its share of the component's load; the
    ``"all"`` rows are ``System.demands()`` summed over each component's stations (async
    consumers, which no request visits, are left out). Every component has a row in every
    flow (0 where it is not visited), so the table pivots without gaps.
    """
    import pandas as pd

    hit = _hit_ratio(system, arrival_rate_per_s)
    owner = _owners(system)
    service = {st.name: st.service_time for st in system.stations()}
    names = [c.name for c in system.components]
    rows = []
    total = {comp: np.zeros(4) for comp in names}
    for flow in system.flows:
        sums = _flow_sums(system, flow, hit, owner, service)
        for comp in names:
            row = sums.get(comp, np.zeros(4))
            total[comp] += flow.weight * row
            rows.append((flow.name, flow.weight, comp, *row))
    rows += [("all", 1.0, comp, *total[comp]) for comp in names]
    df = pd.DataFrame(rows, columns=["flow", "weight", "component", "visits", "demand_s",
                                     "own_s", "own2_s2"])
    visited = df["visits"] > 0
    df["demand_ms"] = df["demand_s"] * 1e3
    df["service_ms"] = (df["demand_ms"] / df["visits"]).where(visited)
    mean = df["own_s"] / df["visits"]
    scv = df["own2_s2"] / df["visits"] / mean**2 - 1.0
    df["service_cv"] = np.sqrt(scv.clip(lower=0.0)).where(visited & (mean > 0))
    return df[["flow", "weight", "component", "visits", "demand_ms", "service_ms",
               "service_cv"]]

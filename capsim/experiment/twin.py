"""The analytic twin's verdicts, and how far it and the simulation disagree.

``twin_breaks_on`` and ``twin_saturation`` judge a budget on the twin (instant: a first
guess for every search). ``twin_gap`` compares twin and simulation metric by metric.

Where the twin is exact (product-form networks) the gap is noise and the twin lies inside the
simulation's confidence interval; where it is an approximation (non-exponential service,
finite queues, percentiles of networks) the gap is the approximation's error, and a person
should see it before trusting either number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capsim.analytic import AnalyticResult, solve
from capsim.errors import ModelError
from capsim.experiment.replications import COMPONENT_METRICS, LATENCY_METRICS, Replications
from capsim.model import Budget, MessageQueue, System
from capsim.model.lowering import async_flow_name, consumer_names


def twin_gap(simulated: Replications, twin: AnalyticResult) -> pd.DataFrame:
    """One row per (flow or component, metric): simulated mean and CI, twin value, gap.

    ``gap`` is twin / simulated - 1; ``twin_in_ci`` says whether the twin lies within the
    simulation's confidence interval.
    """
    frames = []
    for kind, key, sim, ana, metrics in (
        ("flow", "flow", simulated.latency(), twin.latency(), LATENCY_METRICS),
        ("component", "component", simulated.components(), twin.components(),
         COMPONENT_METRICS),
    ):
        long = ana.melt(id_vars=[key], value_vars=metrics, var_name="metric", value_name="twin")
        merged = sim.merge(long, on=[key, "metric"]).rename(columns={key: "name",
                                                                     "mean": "simulated"})
        merged.insert(0, "kind", kind)
        frames.append(merged)
    out = pd.concat(frames, ignore_index=True)
    twin_v = out["twin"].astype(float)
    sim_v = out["simulated"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["gap"] = np.where(sim_v != 0, twin_v / sim_v - 1.0, np.nan)
    out["twin_in_ci"] = (twin_v >= out["ci_low"]) & (twin_v <= out["ci_high"])
    both_inf = np.isinf(twin_v) & np.isinf(sim_v)
    out.loc[both_inf, ["gap", "twin_in_ci"]] = [0.0, True]
    cols = ["kind", "name", "metric", "simulated", "half_width", "ci_low", "ci_high", "twin",
            "gap", "twin_in_ci"]
    return out[cols].dropna(subset=["twin"])


def twin_breaks_on(system: System, workload, budget: Budget) -> str | None:
    """What breaks ``budget`` in the analytic twin at this load (a check's label), or None.

    Raises ModelError when a value the budget needs is NaN: the twin cannot judge it (a
    closed workload's percentiles: MVA yields means only), and NaN never meets a limit."""
    twin = solve(system, workload)
    lat = twin.latency().set_index("flow")
    comp = twin.components().set_index("component")
    consumers = {n for c in system.components if isinstance(c, MessageQueue)
                 for n in consumer_names(c)}
    other = [n for n in twin.unstable_components if n not in consumers]
    if other:
        return f"no steady state at {', '.join(other)}"
    for check in budget.checks(system):
        if check.kind == "backlog":
            if budget.allow_backlog:
                continue
            queue = system.component(check.name)
            names = consumer_names(queue)
            load = comp.loc[names, "offered_load"].max()
            if not np.isfinite(load):
                load = comp.loc[names, "utilization"].max()
            if not lat["stable"].get(async_flow_name(queue), True) or not load < check.limit:
                return check.label
            continue
        if check.kind == "component":
            name, value = "every component", comp[check.metric].max()
        else:
            name = check.name if check.name in lat.index else lat.index[0]
            metric = "p99_s" if check.kind == "async" else check.metric
            value = np.inf if not lat.loc[name, "stable"] else lat.loc[name, metric]
        if np.isnan(value):
            raise ModelError(
                f"twin_saturation: the analytic twin gives no {check.metric} for {name!r} "
                f"under {workload} (a closed workload's twin has means only), so it "
                f"cannot judge {budget}; simulate instead (find_saturation does)")
        if not value <= check.limit:
            return check.label
    return None


def twin_saturation(system: System, workload, budget: Budget, *, tol: float = 1e-4,
                    whole_users: bool | None = None) -> float:
    """Users where the analytic twin breaks ``budget`` (bisection on the twin; free).

    The one twin bisection: the saturation search starts from it and the scaling comparison
    asks it of ``twin_view``. Async backlogs count as in a sweep (``twin_breaks_on``); a
    metric the twin cannot give raises ModelError instead of being taken for "meets". inf
    when no load up to 1e12 users breaks it; the lowest load when even that does (1 user with
    ``whole_users``, which defaults to whether ``workload.users`` is an int).
    """
    whole = isinstance(workload.users, int) if whole_users is None else whole_users

    def breaks(users: float) -> bool:
        return twin_breaks_on(system, workload.with_users(round_users(whole, users)),
                              budget) is not None

    floor = 1.0 if whole else 1e-9
    hi = float(workload.users)
    while not breaks(hi):
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    lo = max(hi / 2.0, floor)
    while breaks(lo):
        if lo <= floor:
            return floor
        hi, lo = lo, max(lo / 2.0, floor)
    while (hi - lo) > tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if breaks(mid) else (mid, hi)
    return hi


def round_users(whole: bool, users: float):
    return max(1, round(users)) if whole else users

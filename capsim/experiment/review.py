"""The capacity review, run: one sweep of user growth around the peak, and its verdict.

``capacity_review`` sweeps users from a quarter of the peak to past the headroom load (how far
past, the analytic twin's guess at the saturation point decides), reads the saturation point
off the sweep, checks the budget at the peak and at ``headroom`` x peak, and sizes the
bottleneck. It returns a ``capsim.report.review.Review``, which renders the finished review
(Markdown, HTML, figures, JSON); running and rendering are kept apart so that reporting never
runs experiments.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capsim.errors import ModelError
from capsim.experiment.growth import growth
from capsim.experiment.saturation import Saturation
from capsim.experiment.sweep import SweepResult, sweep
from capsim.experiment.twin import twin_saturation
from capsim.model import Budget
from capsim.report.review import Review

__all__ = ["TARGET_UTILIZATION", "capacity_review"]

TARGET_UTILIZATION = 0.7  # what the recommendation sizes the bottleneck for


def capacity_review(system, workload, budget: Budget, *, peak_users: float | None = None,
                    headroom: float = 2.0, points: int = 10, replications: int = 5,
                    duration_s: float = 300.0, warmup_s: float | None = None, seed: int = 0,
                    scenario: str = "system", progress: bool = True, store="results",
                    processes: int | None = None) -> Review:
    """Sweep users around the peak and judge the budget at peak and at ``headroom`` x peak."""
    peak = float(peak_users if peak_users is not None else workload.users)
    target = peak * headroom
    peak_load = workload.with_users(round(peak) if isinstance(workload.users, int) else peak)
    try:
        guess = twin_saturation(system, peak_load, budget)
    except ModelError:  # the twin cannot judge this budget: the sweep alone decides
        guess = math.nan
    # far enough to see the break, not so far that a roomy system costs a huge sweep
    top = min(max(target * 1.25, guess * 1.15 if math.isfinite(guess) else 0.0), target * 3)
    grid = np.unique(np.round(np.r_[np.linspace(0.25 * peak, top, points), peak, target]))
    if isinstance(workload.users, int):
        grid = grid.astype(int)
    result = sweep(system, growth(workload, users=grid.tolist()), replications, seed,
                   duration_s=duration_s, warmup_s=warmup_s, progress=progress, store=store,
                   processes=processes)
    sat = result.saturation(budget)
    # judged at the grid's own points (rounded like the grid), never at a value it lacks
    at_peak, at_target = (float(grid[np.abs(grid - u).argmin()]) for u in (peak, target))
    checks = _checks(sat, at_peak, at_target, headroom)
    return Review(scenario, budget, peak, headroom, result, sat, checks,
                  _recommend(system, result, target, budget))


def _checks(sat: Saturation, peak: float, target: float, headroom: float) -> pd.DataFrame:
    """Each check at peak and at the headroom load, and "holds up to the headroom load":
    all read off ``sat`` (its ``meets`` and ``gate_users``), the same verdict the headline
    states. The last row passes exactly when every point up to ``target`` meets."""
    rows = []
    for label, users in (("peak", peak), (f"{headroom:g}x peak", target)):
        for _, row in sat.table[np.isclose(sat.table["users"], users)].iterrows():
            rows.append({"check": f"{row['label']} at {label} ({users:,.0f} users)",
                         "value": row["mean"],
                         "ci_high": row["ci_high"] if sat.has_ci else math.nan,
                         "limit": row["limit"], "judged on": sat.judged_on,
                         "passed": bool(row["meets"])})
    rows.append({"check": f"budget holds at every point up to {headroom:g}x peak "
                          f"({target:,.0f} users)", "value": sat.gate_users,
                 "ci_high": math.nan, "limit": target, "judged on": sat.judged_on,
                 "passed": bool(sat.gate_users >= target)})
    return pd.DataFrame(rows)


def _recommend(system, result: SweepResult, target: float, budget: Budget) -> str:
    """Size the bottleneck for the headroom load at TARGET_UTILIZATION, from the sweep."""
    comp = result.components()
    point = result.points.iloc[(result.points["users"] - target).abs().argmin()]
    at = comp[(comp["point"] == point["point"]) & (comp["metric"] == "offered_load")]
    load = at.set_index("component")["mean"].dropna()
    if load.empty:
        return "No component is loaded enough to size."
    station = load.idxmax()
    # a component's load is its busiest station's; its capacity scales with that
    factor = load[station] / TARGET_UTILIZATION
    host = next((h for h in system.hosts if h.name == station), None)
    if host is not None:  # the box's cores are what runs out
        if factor <= 1:
            return (f"At {point['users']:,.0f} users the busiest part, host {station}, is at "
                    f"{load[station]:.0%}: no change needed for the headroom.")
        return (f"At {point['users']:,.0f} users host {station} ({host.cores} cores) would be "
                f"offered {load[station]:.0%} of its cores. Give it {factor:.1f}x the core "
                f"capacity to keep it at {TARGET_UTILIZATION:.0%}: a bigger box (more or faster "
                "cores), or move a component off it.")
    owner = next(s.component for s in system.stations() if s.name == station)
    component = system.component(owner)
    kind = type(component).__name__
    if factor <= 1:
        return (f"At {point['users']:,.0f} users the busiest station, {station} ({kind} "
                f"{owner}), is at {load[station]:.0%}: no change needed for the headroom.")
    how = {"Service": f"instances (now {getattr(component, 'instances', 1)}) or workers",
           "Database": "read replicas for reads, shards for writes (replicas never add write "
                       "capacity)",
           "Cache": "cache servers", "MessageQueue": "consumers (and partitions)"}.get(kind,
                                                                                    "capacity")
    return (f"At {point['users']:,.0f} users {station} ({kind} {owner}) would be offered "
            f"{load[station]:.0%} of its capacity. Give {owner} {factor:.1f}x its capacity to "
            f"keep it at {TARGET_UTILIZATION:.0%}: add {how}.")

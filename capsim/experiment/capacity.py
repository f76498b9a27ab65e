"""A capacity table: the analytic twin and the replicated simulation side by side, per user count.

The short first look that ``make run`` prints; it is a view of a sweep, not a second engine.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from capsim.analytic import solve
from capsim.experiment.growth import growth
from capsim.experiment.sweep import SweepResult, sweep
from capsim.model import OpenWorkload, System
from capsim.schema import ALL_FLOWS


def capacity_table(system: System, workload: OpenWorkload, users: Iterable[float], *,
                   replications: int = 3, duration_s: float = 120.0, warmup_s: float = 20.0,
                   seed: int = 0, progress: bool = True, store=None,
                   processes: int | None = None) -> tuple[pd.DataFrame, SweepResult]:
    """One row per user count: offered load of every component, p99 from twin and simulation.

    Unstable points are not simulated (the twin already knows there is no steady state) and
    show ``inf`` latency with ``stable=False``. Returns the table and the sweep behind it.
    """
    loads = growth(workload, users=list(users))
    result = sweep(system, loads, replications, seed, duration_s=duration_s,
                   warmup_s=warmup_s, progress=progress, store=store, processes=processes)
    p99 = result.metric("p99_s").set_index("users")
    rows = []
    for load in loads:
        twin = solve(system, load)
        lat = twin.latency().set_index("flow")
        overall = ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0]
        row = {"users": load.users, "arrival_rate_per_s": load.arrival_rate_per_s,
               "stable": twin.stable, "bottleneck": twin.bottleneck}
        for _, c in twin.components().iterrows():
            row[f"utilization_{c['component']}"] = c["offered_load"]
        row["p99_twin_s"] = lat.loc[overall, "p99_s"]
        row["p99_sim_s"] = p99.loc[load.users, "mean"]
        row["p99_sim_ci_s"] = p99.loc[load.users, "half_width"]
        rows.append(row)
    return pd.DataFrame(rows), result

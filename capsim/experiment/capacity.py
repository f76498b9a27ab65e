"""A capacity table: the analytic twin and replicated simulation side by side, per user count.

A small grid for a first look; the growth sweeps with saturation search build on the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from tqdm.auto import tqdm

from capsim.analytic import solve
from capsim.experiment.replications import replicate
from capsim.model import OpenWorkload, System
from capsim.schema import ALL_FLOWS


def capacity_table(system: System, workload: OpenWorkload, users: Iterable[float], *,
                   replications: int = 3, duration_s: float = 120.0, warmup_s: float = 20.0,
                   seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """One row per user count: utilization of every component, p99 from twin and simulation.

    Unstable points are not simulated (the twin already knows the answer is "no steady
    state"), and show ``inf`` latency with ``stable=False``.
    """
    rows = []
    for n in tqdm(list(users), desc="capacity", disable=not progress, unit="point"):
        load = workload.with_users(n)
        twin = solve(system, load)
        lat = twin.latency().set_index("flow")
        overall = ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0]
        row = {"users": n, "arrival_rate_per_s": load.arrival_rate_per_s,
               "stable": twin.stable, "bottleneck": twin.bottleneck}
        for _, c in twin.components().iterrows():
            row[f"utilization_{c['component']}"] = c["offered_load"]
        row["p99_twin_s"] = lat.loc[overall, "p99_s"]
        row["p99_sim_s"] = row["p99_sim_ci_s"] = float("inf")
        if twin.stable:
            rep = replicate(system, load, replications, seed, duration_s=duration_s,
                            warmup_s=warmup_s).latency()
            p99 = rep[(rep["flow"] == overall) & (rep["metric"] == "p99_s")].iloc[0]
            row["p99_sim_s"], row["p99_sim_ci_s"] = p99["mean"], p99["half_width"]
        rows.append(row)
    return pd.DataFrame(rows)

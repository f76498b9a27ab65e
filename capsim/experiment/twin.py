"""How far the analytic twin and the simulation disagree, metric by metric.

Where the twin is exact (product-form networks) the gap is noise and the twin lies inside the
simulation's confidence interval; where it is an approximation (non-exponential service,
finite queues, percentiles of networks) the gap is the approximation's error, and a person
should see it before trusting either number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from capsim.analytic import AnalyticResult
from capsim.experiment.replications import COMPONENT_METRICS, LATENCY_METRICS, Replications


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

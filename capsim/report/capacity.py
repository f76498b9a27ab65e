"""The capacity picture: p99 latency and utilization against users, budget line included."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_capacity(table: pd.DataFrame, budget_p99_s: float | None = None) -> Figure:
    """Two panels from ``capacity_table``: p99 (twin line, simulated points with CI), and
    utilization per component with the 100% wall. Unstable points are marked, not drawn
    as finite latencies."""
    fig, (lat_ax, util_ax) = plt.subplots(1, 2, figsize=(11, 4))
    users = table["users"].to_numpy()
    finite = np.isfinite(table["p99_twin_s"].to_numpy())
    lat_ax.plot(users[finite], table["p99_twin_s"][finite] * 1e3, "-", label="analytic twin")
    sim = np.isfinite(table["p99_sim_s"].to_numpy())
    lat_ax.errorbar(users[sim], table["p99_sim_s"][sim] * 1e3,
                    yerr=table["p99_sim_ci_s"][sim].fillna(0) * 1e3, fmt="o", capsize=3,
                    label="simulation (95% CI)")
    if budget_p99_s is not None:
        lat_ax.axhline(budget_p99_s * 1e3, color="crimson", ls="--", label="p99 budget")
    if (~table["stable"]).any():
        lat_ax.axvspan(users[~table["stable"].to_numpy()].min(), users.max(), color="grey",
                       alpha=0.2, label="unstable (no steady state)")
    lat_ax.set(xlabel="users", ylabel="p99 latency (ms)", yscale="log",
               title="p99 latency vs users")
    lat_ax.legend()
    for col in [c for c in table.columns if c.startswith("utilization_")]:
        util_ax.plot(users, table[col] * 100, "o-", label=col.removeprefix("utilization_"))
    util_ax.axhline(100, color="black", lw=1)
    util_ax.axhline(80, color="orange", ls=":", label="80% alarm line")
    util_ax.set(xlabel="users", ylabel="offered load (%)", title="which component hits the wall")
    util_ax.legend()
    fig.tight_layout()
    return fig

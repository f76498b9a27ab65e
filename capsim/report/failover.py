"""The failover timeline: what users saw while a database's primary was replaced.

Three panels over the run, sharing the time axis: the p99 of the requests that arrived in each
window (and the budget, when given), the requests refused per second, and each box of the
database's work per second, so the switch of writes from the old primary to the promoted
replica is seen. The failure, its detection, the promotion and the old box's return are
marked; the span without a primary is shaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from capsim.report.timeseries import latency_timeseries, station_timeseries
from capsim.schema import ALL_FLOWS

if TYPE_CHECKING:
    from capsim.engine import RunResult

__all__ = ["failover_figure"]

MOMENTS = (("failed_at_s", "primary fails", "tab:red", "-"),
           ("detected_at_s", "detected", "tab:orange", "--"),
           ("promoted_at_s", "replica promoted", "tab:green", "-"),
           ("rejoined_at_s", "old primary back as a replica", "tab:gray", ":"))


def failover_figure(run: RunResult, database: str, window_s: float = 5.0, fig=None,
                    budget_s: float | None = None):
    """The timeline of ``run`` around the failovers of ``database`` (see the module notes)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig = fig or plt.figure(figsize=(10, 7.5))
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.3, 1, 1.2]})
    flow = ALL_FLOWS
    lat = latency_timeseries(run, window_s, [flow])
    mid = lat["time_s"].to_numpy() + window_s / 2
    ax = axes[0]
    ax.plot(mid, lat["p99_s"] * 1e3, color="tab:blue", label=f"p99 (all flows), {window_s:g} s "
            "windows of arrival")
    if budget_s is not None:
        ax.axhline(budget_s * 1e3, color="black", lw=0.8, ls="--", label="budget")
    ax.set_ylabel("p99 (ms, log scale)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else
                                               f"{v:g}"))
    ax = axes[1]
    ax.bar(mid, lat["errors"] / window_s, width=window_s * 0.9, color="tab:red", alpha=0.7,
           label="requests refused")
    ax.set_ylabel("errors per s")
    ax = axes[2]
    boxes = station_timeseries(run, [database])
    log = run.failover_log()
    role = {r["failed"]: f" (primary, failed at {r['failed_at_s']:g} s)" for _, r in
            log.iterrows()}
    role.update({r["promoted"]: f" (promoted at {r['promoted_at_s']:g} s)"
                 for _, r in log.iterrows() if r["promoted"]})
    for name, one in boxes.groupby("station", sort=False):
        ax.plot(one["time_s"], one["throughput_per_s"], label=name + role.get(name, ""),
                lw=1.2)
    ax.set_ylabel("done per s")
    ax.set_xlabel("time (s)")
    for _, row in log.iterrows():
        for ax in axes:
            if np.isfinite(row["promoted_at_s"]):
                ax.axvspan(row["failed_at_s"], row["promoted_at_s"], color="tab:red",
                           alpha=0.08, lw=0)
        for col, words, colour, style in MOMENTS:
            if np.isfinite(row[col]):
                for ax in axes:
                    ax.axvline(row[col], color=colour, ls=style, lw=1.0,
                               label=words if ax is axes[0] else None)
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
        ax.grid(alpha=0.3)
    summary = ", ".join(f"{int(r['write_errors'])} writes refused, {int(r['writes_waited'])}"
                        f" held, {int(r['lost_writes'])} lost; writes again after "
                        f"{r['promoted_at_s'] - r['failed_at_s']:.0f} s"
                        for _, r in log.iterrows()) or "no failover in this run"
    fig.suptitle(f"Failover of {database}: {summary}", fontsize=10)
    fig.tight_layout()
    return fig

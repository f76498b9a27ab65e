"""The saturation picture of a sweep: the hockey stick with its budget, and who hits the wall.

``hockey_stick`` draws p50 / p95 / p99 latency against users, each with its 95% confidence band,
the budget's latency limits, and the saturation point (where the budget breaks) with its CI as
a shaded span. ``utilization_vs_users`` draws each component's utilization against users with
the 80% alarm line and the 100% wall, and names the user count at which each one reaches it.

Points without a steady state (offered load >= 100% somewhere) have no finite latency: they
are marked along the top of the plot and shaded, never drawn as numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, PercentFormatter

if TYPE_CHECKING:  # read by duck typing: reporting imports nothing from capsim.experiment
    from capsim.experiment.saturation import Saturation
    from capsim.experiment.sweep import SweepResult
    from capsim.model import Budget

__all__ = ["hockey_stick", "utilization_vs_users"]

PERCENTILES = (("p50_s", "p50", "tab:blue"), ("p95_s", "p95", "tab:purple"),
               ("p99_s", "p99", "tab:red"))
BUDGET_COLORS = {"p50_s": "tab:blue", "p95_s": "tab:purple", "p99_s": "tab:red",
                 "mean_s": "0.3"}
BUDGET_NAMES = {"p95_s": "p95", "p99_s": "p99", "mean_s": "mean"}
UNSTABLE = "no steady state (queue grows without bound)"


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.6))
    return ax


def _users_axis(ax: Axes) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("users")
    ax.grid(alpha=0.3)


def _mark_unstable(ax: Axes, users: np.ndarray, stable: np.ndarray) -> None:
    """Grey from half-way past the last stable point, and an x on the top edge at each point."""
    if stable.all():
        return
    bad = users[~stable]
    good = users[stable & (users < bad.min())]
    start = 0.5 * (good.max() + bad.min()) if good.size else bad.min()
    ax.axvspan(start, max(users.max(), bad.max()), color="0.5", alpha=0.12, lw=0)
    ax.plot(bad, np.full(bad.size, 0.97), "x", ms=9, mew=2, color="0.25", ls="none",
            transform=ax.get_xaxis_transform(), clip_on=False, label=UNSTABLE, zorder=5)


def hockey_stick(result: SweepResult, budget: Budget | None = None,
                 saturation: Saturation | None = None, ax: Axes | None = None) -> Axes:
    """p50 / p95 / p99 latency (ms) against users, with 95% CI bands, budget and saturation.

    The latency is that of ``budget.flow`` (the pooled "all" flow by default). Each budget
    latency limit is a dashed line in its percentile's colour; ``saturation`` (from
    ``result.saturation(budget)``) is a vertical line at the users where the budget breaks,
    with its CI shaded. Points without a steady state are crossed along the top edge.
    """
    ax = _axes(ax)
    flow = budget.flow if budget is not None else "all"
    tops, stable = [], None
    for metric, name, color in PERCENTILES:
        curve = result.metric(metric, flow)
        ok = curve["stable"].to_numpy() & np.isfinite(curve["mean"].to_numpy(dtype=float))
        stable = curve["stable"].to_numpy() if stable is None else stable
        users = curve["users"].to_numpy(dtype=float)
        c = curve[ok]
        mean = c["mean"].to_numpy(dtype=float) * 1e3
        low = c["ci_low"].fillna(c["mean"]).to_numpy(dtype=float) * 1e3
        high = c["ci_high"].fillna(c["mean"]).to_numpy(dtype=float) * 1e3
        ax.fill_between(c["users"], low, high, color=color, alpha=0.18, lw=0)
        ax.plot(c["users"], mean, "o-", color=color, ms=4, lw=1.8, label=f"{name} (95% CI)")
        tops.append(high[np.isfinite(high)])
    limits = []
    if budget is not None:
        for kind, metric, limit in budget.limits():
            if kind == "flow" and metric in BUDGET_COLORS:
                limits.append(limit * 1e3)
                ax.axhline(limit * 1e3, color=BUDGET_COLORS[metric], ls="--", lw=1.5,
                           label=f"{BUDGET_NAMES[metric]} budget ({limit * 1e3:g} ms)")
    if saturation is not None and 0 < saturation.users < math.inf:
        ax.axvspan(saturation.users_low, saturation.users_high, color="tab:orange", alpha=0.25,
                   lw=0)
        ax.axvline(saturation.users, color="tab:orange", lw=2,
                   label=f"budget breaks: {saturation.users:,.0f} users "
                         f"({saturation.ci_text()})")
    users = result.metric("p99_s", flow)["users"].to_numpy(dtype=float)
    _mark_unstable(ax, users, stable)
    finite = np.concatenate(tops) if tops else np.array([])
    top = float(finite.max()) if finite.size else 1.0
    if limits:  # keep the budget in view, and do not let one exploding CI flatten the rest
        top = min(max(top, 1.3 * max(limits)), 4.0 * max(limits))
    ax.set_ylim(0, 1.08 * top)
    _users_axis(ax)
    ax.set_ylabel(f"latency of flow '{flow}' (ms)")
    ax.set_title("Latency vs users: the hockey stick")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    return ax


def _component_curve(comp: pd.DataFrame, name: str, metric: str) -> pd.DataFrame:
    c = comp[(comp["component"] == name) & (comp["metric"] == metric)]
    return c.sort_values("users")


def utilization_vs_users(result: SweepResult, ax: Axes | None = None) -> Axes:
    """Utilization of every component (%) against users: which one hits the 100% wall first.

    Solid lines with 95% CI bands are measured utilization at the simulated (stable) points;
    dotted lines are the offered load (demand / capacity from the model), which keeps growing
    past 100% where no steady state exists. Each legend entry names the users at which that
    component reaches 100% (offered load is proportional to users in an open workload).
    Components are listed busiest first.
    """
    ax = _axes(ax)
    comp = result.components()
    simulated = set(result.points.loc[result.points["simulated"], "point"])
    names = list(dict.fromkeys(comp["component"]))
    offered_all = comp[comp["metric"] == "offered_load"]
    peak = offered_all.groupby("component")["mean"].max()
    names.sort(key=lambda n: -peak.get(n, 0.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = 1.0
    for i, name in enumerate(names):
        color = colors[i % len(colors)]
        util = _component_curve(comp, name, "utilization")
        util = util[util["point"].isin(simulated)]
        offered = _component_curve(comp, name, "offered_load")
        per_user = (offered["mean"] / offered["users"]).to_numpy(dtype=float)
        per_user = per_user[np.isfinite(per_user) & (per_user > 0)]
        wall = 1.0 / float(np.median(per_user)) if per_user.size else math.nan
        label = name + (f" (100% at {wall:,.0f} users)" if np.isfinite(wall) else "")
        ax.fill_between(util["users"], util["ci_low"].fillna(util["mean"]) * 100,
                        util["ci_high"].fillna(util["mean"]) * 100, color=color, alpha=0.2,
                        lw=0)
        ax.plot(util["users"], util["mean"] * 100, "o-", color=color, ms=4, lw=1.8,
                label=label)
        if offered["mean"].notna().any():
            ax.plot(offered["users"], offered["mean"] * 100, ":", color=color, lw=1.5)
            top = max(top, float(offered["mean"].max()))
    ax.plot([], [], ":", color="0.4", label="offered load (demand / capacity)")
    ax.axhline(100, color="black", lw=1.5, label="100%: the wall")
    ax.axhline(80, color="0.45", ls="--", lw=1.2, label="80% alarm line")
    flow = result.metric("p99_s")
    _mark_unstable(ax, flow["users"].to_numpy(dtype=float), flow["stable"].to_numpy(dtype=bool))
    ax.set_ylim(0, 100 * min(max(top, 1.0), 1.6) + 12)
    ax.yaxis.set_major_formatter(PercentFormatter(100))
    _users_axis(ax)
    ax.set_ylabel("utilization (share of capacity busy)")
    ax.set_title("Utilization vs users: who hits the wall first")
    # lines fan out from the origin across the whole plot: the legend goes beside it
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return ax

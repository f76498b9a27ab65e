"""The scaling comparison figure: what each option buys, its p99, what one lost box leaves.

Drawn from a finished ``capsim.scaling.ComparisonResult`` (read by duck typing: ``rows``,
``workload``, ``budget``, ``component``), so reporting needs nothing from the code that ran it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from capsim.model import Budget
    from capsim.scaling.compare import ComparisonResult

__all__ = ["budget_text", "comparison_figure", "effective_capacity_figure"]

KIND_STYLE = {"vertical": ("o", "tab:blue", "vertical (one box)"),
              "horizontal": ("s", "tab:orange", "horizontal (N boxes)"),
              "database": ("D", "tab:green", "replicas / shards")}
SCENARIOS = (("p99_at_target_s", "at the target", "tab:blue"),
             ("p99_at_2x_peak_s", "at 2x peak", "tab:purple"),
             ("p99_one_down_s", "one box down", "tab:red"))


def _label_points(ax, xs, ys, labels) -> None:
    """Label each point beside it, trying a few places until the label overlaps neither
    another label nor a point."""
    fig = ax.figure
    fig.draw_without_rendering()  # settle the layout first: positions in pixels are final
    renderer = fig.canvas.get_renderer()
    placed = []
    points = [ax.transData.transform((x, y)) for x, y in zip(xs, ys, strict=True)]
    offsets = [(7, -3, "left"), (7, 7, "left"), (7, -13, "left"), (-7, -3, "right"),
               (-7, 7, "right"), (-7, -13, "right"), (7, 16, "left"), (7, -22, "left")]
    for x, y, label in zip(xs, ys, labels, strict=True):
        for k, (dx, dy, ha) in enumerate(offsets):
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                               fontsize=8.5, color="0.2", ha=ha, va="center")
            box = text.get_window_extent(renderer).expanded(1.02, 1.1)
            clash = any(box.overlaps(b) for b in placed) or any(
                box.contains(qx, qy) for qx, qy in points)
            if not clash or k == len(offsets) - 1:
                placed.append(box)
                break
            text.remove()


def budget_text(budget: Budget) -> str:
    """``p99 <= 200 ms``-style words for a budget."""
    names = {"p99_s": "p99", "p95_s": "p95", "mean_s": "mean"}
    parts = []
    for _, metric, limit in budget.limits():
        if metric in names:
            parts.append(f"{names[metric]} \u2264 {limit * 1e3:.0f} ms")
        elif metric == "error_rate":
            parts.append(f"errors \u2264 {limit:.1%}")
        else:
            parts.append(f"utilization \u2264 {limit:.0%}")
    return ", ".join(parts)


def comparison_figure(result: ComparisonResult, fig=None):
    """Capacity against cost, p99 (target, 2x peak, one box down), capacity left with one box
    down and cost per 1,000 users, one bar per option; returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    t = result.rows
    n = len(t)
    if fig is None:
        fig = plt.figure(figsize=(14, 5.2 + 0.42 * n), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[5.0, 1.2 + 0.42 * n])
    ax_cap = fig.add_subplot(grid[0, :])
    ax_p99 = fig.add_subplot(grid[1, 0])
    ax_left = fig.add_subplot(grid[1, 1], sharey=ax_p99)
    ax_cost = fig.add_subplot(grid[1, 2], sharey=ax_p99)
    target = result.workload.users
    words = budget_text(result.budget)
    colors = [KIND_STYLE[k][1] for k in t["kind"]]

    # capacity against cost
    for kind, (marker, color, name) in KIND_STYLE.items():
        sel = t[t["kind"] == kind].sort_values("cost_per_hour_usd")
        if sel.empty:
            continue
        ax_cap.plot(sel["cost_per_hour_usd"], sel["saturation_users"], marker=marker,
                    color=color, ms=8, lw=1.2, ls="-" if kind == "vertical" else "none",
                    mec="white", label=name)
    top_users = max(t["saturation_users"].max(), 2 * target) * 1.08
    for users, style, name in ((target, "--", "target"), (2 * target, ":", "2x peak")):
        ax_cap.axhline(users, color="0.35", ls=style, lw=1)
        ax_cap.annotate(f"{name}: {users:,.0f} users", (0, users),
                        xycoords=("axes fraction", "data"), xytext=(4, 3),
                        textcoords="offset points", fontsize=8.5, color="0.3")
    ax_cap.set_xlabel("cost of the tier (\\$ per hour)")
    ax_cap.set_ylabel(f"users within budget\n({words}, twin)")
    ax_cap.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax_cap.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"\\${x:.2f}"))
    ax_cap.set_ylim(0, top_users)
    ax_cap.set_xlim(0, t["cost_per_hour_usd"].max() * 1.3)
    ax_cap.grid(alpha=0.3)
    ax_cap.legend(loc="lower right", fontsize=9)
    ax_cap.set_title("What each option buys: users served within budget against its cost")
    _label_points(ax_cap, t["cost_per_hour_usd"], t["saturation_users"], t["option"])

    # p99 per scenario, log scale; no steady state drawn to the edge, hatched
    y = np.arange(n)
    h = 0.27
    values = np.concatenate([t[c].to_numpy(dtype=float) for c, _, _ in SCENARIOS]) * 1e3
    finite = values[np.isfinite(values)]
    limit_ms = (result.budget.p99_s or 0.2) * 1e3
    hi = max(finite.max() if finite.size else limit_ms, limit_ms) * 2.5
    lo = min(finite.min() if finite.size else limit_ms, limit_ms) / 2.5
    handles = []
    for k, (col, name, color) in enumerate(SCENARIOS):
        v = t[col].to_numpy(dtype=float) * 1e3
        inf = ~np.isfinite(v)
        ax_p99.barh(y[~inf] + (k - 1) * h, v[~inf], h, color=color)
        ax_p99.barh(y[inf] + (k - 1) * h, np.full(inf.sum(), hi), h, color="white",
                    edgecolor=color, hatch="////", lw=0.6)
        handles.append(Patch(color=color, label=name))
    handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="////",
                         label="no steady state"))
    if result.budget.p99_s is not None:
        handles.append(ax_p99.axvline(limit_ms, color="k", ls="--", lw=1.2,
                                      label=f"budget {limit_ms:.0f} ms"))
    ax_p99.set_xscale("log")
    ax_p99.set_xlim(lo, hi)
    ax_p99.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_p99.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax_p99.xaxis.set_minor_formatter(NullFormatter())
    ax_p99.set_yticks(y, t["option"])
    ax_p99.set_ylim(n - 0.5, -0.5)
    ax_p99.set_xlabel("p99 latency (ms, simulated)")
    ax_p99.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.2 / n),
                  ncol=3, fontsize=8, frameon=False)
    ax_p99.grid(axis="x", alpha=0.3)
    ax_p99.set_title("p99: target, 2x peak, one box down")

    # capacity left with one box down
    left = t["capacity_left_one_down"].to_numpy(dtype=float)
    ax_left.barh(y, left, 0.6, color=colors)
    for yi, v, users, served in zip(y, left, t["capacity_one_down_users"],
                                    t["pages_served_one_down"], strict=True):
        if v > 0:
            text = f"{v:.0%}: {users:,.0f} users"
        elif served > 0:
            text = f"0: {1 - served:.0%} of pages wait for the lost box"
        else:
            text = "0: every page waits for the lost box"
        ax_left.annotate(text, (max(v, 0), yi), xytext=(4, 0), textcoords="offset points",
                         va="center", fontsize=8.5)
    ax_left.set_xlim(0, 1.6)
    ax_left.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax_left.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax_left.tick_params(labelleft=False)
    ax_left.set_xlabel("capacity left with one box down (simulated)")
    ax_left.grid(axis="x", alpha=0.3)
    ax_left.set_title("Failure: what one lost box leaves")

    # cost per 1,000 users within budget
    per_k = t["usd_per_hour_per_1k_users"].to_numpy(dtype=float)
    ax_cost.barh(y, np.where(np.isfinite(per_k), per_k, 0.0), 0.6, color=colors)
    for yi, v, c in zip(y, per_k, t["cost_per_hour_usd"], strict=True):
        text = (f"\\${v:.3f}  (\\${c:.2f}/h)" if np.isfinite(v) else "never within budget")
        ax_cost.annotate(text, (v if np.isfinite(v) else 0, yi), xytext=(4, 0),
                         textcoords="offset points", va="center", fontsize=8.5)
    finite_k = per_k[np.isfinite(per_k)]
    ax_cost.set_xlim(0, (finite_k.max() if finite_k.size else 1.0) * 1.7)
    ax_cost.tick_params(labelleft=False)
    ax_cost.set_xlabel("\\$ per hour per 1,000 users within budget")
    ax_cost.grid(axis="x", alpha=0.3)
    ax_cost.set_title("Cost of capacity")
    fig.suptitle(f"Scaling {result.component!r} at {target:,.0f} users ({words})", fontsize=13)
    return fig


def effective_capacity_figure(table: pd.DataFrame, fig=None):
    """Two panels from ``capsim.scaling.effective_capacity``: effective cores against vCPUs
    (log-log, with linear scaling dotted), and the price of an effective core-hour, one line
    per family."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if fig is None:
        fig = plt.figure(figsize=(12, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    styles = ["-", "--", "-.", ":"]
    for k, (family, rows) in enumerate(table.groupby("family", sort=False)):
        style = {"marker": "o", "ls": styles[k % len(styles)], "label": family}
        ax1.plot(rows["vcpus"], rows["effective_cores"], **style)
        ax2.plot(rows["vcpus"], rows["usd_per_effective_core_hour"], **style)
    top = float(table["vcpus"].max())
    ax1.plot([1, top], [1, top], color="0.6", lw=1, label="linear (no contention)")
    ax1.set(xscale="log", yscale="log", ylabel="effective cores  C(N) x speed",
            title="What N vCPUs are worth under the USL")
    ax2.set(xscale="log", ylabel="\\$ per effective core-hour",
            title="The price of a unit of work, by box size")
    ticks = sorted(table["vcpus"].unique())
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax in (ax1, ax2):
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("vCPUs per box")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.yaxis.set_major_formatter(plain)
    ax1.yaxis.set_minor_formatter(NullFormatter())
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"\\${v:.2f}"))
    return fig

"""The scaling comparison figures: what each option buys, its p99, what one lost box leaves;
and the budget frontier, cost per month against users at budget.

Drawn from a finished ``capsim.scaling.ComparisonResult`` (read by duck typing: ``rows``,
``workload``, ``budget``, ``component``, ``peak_factor``, ``catalogue_label``,
``simulated_saturation``), so reporting needs nothing from the code that ran it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from capsim.model import Budget
    from capsim.scaling.compare import ComparisonResult

__all__ = ["budget_text", "comparison_figure", "effective_capacity_figure",
           "frontier_figure", "frontier_steps", "pareto_front"]

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

    # capacity against cost (options with no users estimate are left out)
    pf = getattr(result, "peak_factor", 2.0)
    shown = t[np.isfinite(t["users_at_budget"].astype(float))]
    for kind, (marker, color, name) in KIND_STYLE.items():
        sel = shown[shown["kind"] == kind].sort_values("cost_per_month_usd")
        if sel.empty:
            continue
        ax_cap.plot(sel["cost_per_month_usd"], sel["users_at_budget"], marker=marker,
                    color=color, ms=8, lw=1.2, ls="-" if kind == "vertical" else "none",
                    mec="white", label=name)
    top_users = max(float(shown["users_at_budget"].max()) if len(shown) else 0.0,
                    pf * target) * 1.08
    for users, style, name in ((target, "--", "target"), (pf * target, ":", f"{pf:g}x peak")):
        ax_cap.axhline(users, color="0.35", ls=style, lw=1)
        ax_cap.annotate(f"{name}: {users:,.0f} users", (0, users),
                        xycoords=("axes fraction", "data"), xytext=(4, 3),
                        textcoords="offset points", fontsize=8.5, color="0.3")
    source = "simulated" if getattr(result, "simulated_saturation", True) else "twin"
    ax_cap.set_xlabel("cost of the tier (\\$ per month)")
    ax_cap.set_ylabel(f"users within budget\n({words}, {source})")
    ax_cap.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax_cap.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"\\${x:,.0f}"))
    ax_cap.set_ylim(0, top_users)
    ax_cap.set_xlim(0, t["cost_per_month_usd"].max() * 1.3)
    ax_cap.grid(alpha=0.3)
    ax_cap.legend(loc="lower right", fontsize=9)
    ax_cap.set_title("What each option buys: users served within budget against its cost")
    _label_points(ax_cap, shown["cost_per_month_usd"], shown["users_at_budget"],
                  shown["option"])

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
    ax_p99.set_title(f"p99: target, {pf:g}x peak, one box down")

    # capacity left with one box down
    left = t["capacity_left_one_down"].to_numpy(dtype=float)
    ax_left.barh(y, np.nan_to_num(left), 0.6, color=colors)
    for yi, v, users, served in zip(y, left, t["capacity_one_down_users"],
                                    t["pages_served_one_down"], strict=True):
        if np.isnan(v):
            text = "not modelled (see the failure column)"
        elif v > 0:
            text = f"{v:.0%}: {users:,.0f} users"
        elif served > 0:
            text = f"0: {1 - served:.0%} of pages wait for the lost box"
        else:
            text = "0: every page waits for the lost box"
        ax_left.annotate(text, (v if v > 0 else 0, yi), xytext=(4, 0), textcoords="offset points",
                         va="center", fontsize=8.5)
    ax_left.set_xlim(0, 1.6)
    ax_left.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax_left.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax_left.tick_params(labelleft=False)
    ax_left.set_xlabel("capacity left with one box down (simulated)")
    ax_left.grid(axis="x", alpha=0.3)
    ax_left.set_title("Failure: what one lost box leaves")

    # cost per 1,000 users within budget
    per_k = t["usd_per_month_per_1k_users"].to_numpy(dtype=float)
    ax_cost.barh(y, np.where(np.isfinite(per_k), per_k, 0.0), 0.6, color=colors)
    for yi, v, c in zip(y, per_k, t["cost_per_month_usd"], strict=True):
        text = (f"\\${v:,.2f}  (\\${c:,.0f}/month)" if np.isfinite(v)
                else "never within budget" if v == np.inf else "users at budget unknown")
        ax_cost.annotate(text, (v if np.isfinite(v) else 0, yi), xytext=(4, 0),
                         textcoords="offset points", va="center", fontsize=8.5)
    finite_k = per_k[np.isfinite(per_k)]
    ax_cost.set_xlim(0, (finite_k.max() if finite_k.size else 1.0) * 1.7)
    ax_cost.tick_params(labelleft=False)
    ax_cost.set_xlabel("\\$ per month per 1,000 users within budget")
    ax_cost.grid(axis="x", alpha=0.3)
    ax_cost.set_title("Cost of capacity")
    label = getattr(result, "catalogue_label", "")
    fig.suptitle(f"Scaling {result.component!r} at {target:,.0f} users ({words})"
                 + (f"; prices: {label}" if label else ""), fontsize=13)
    return fig


def pareto_front(users, costs) -> list[int]:
    """Positions of the options on the budget frontier, fewest users (and cheapest) first.

    An option is on it when no other serves at least as many users for no more money and is
    better in one of the two; options whose users or cost is unknown (NaN) are left out, and of
    two identical ones the first is kept. Read along the front, the cheapest option that
    serves x users is the first whose users reach x (``frontier_steps``)."""
    users = np.asarray(users, dtype=float)
    costs = np.asarray(costs, dtype=float)
    known = [i for i in range(users.size) if not (np.isnan(users[i]) or np.isnan(costs[i]))]
    known.sort(key=lambda i: (costs[i], -users[i], i))  # cheapest first, most users first
    front, most = [], -np.inf
    for i in known:
        if users[i] > most:  # more users than every option as cheap or cheaper
            front.append(i)
            most = users[i]
    return front


def frontier_steps(users, costs) -> tuple[np.ndarray, np.ndarray]:
    """The staircase through the frontier's points (``users``, ``costs``, fewest users first,
    as ``pareto_front`` orders them) for ``step(..., where="pre")``: from 0 users to the first
    point at its cost, then up at each point's users to the next one's cost. Its height at x
    users is the cheapest cost of serving x users within budget."""
    users = np.asarray(users, dtype=float)
    costs = np.asarray(costs, dtype=float)
    if users.size == 0:
        return np.array([]), np.array([])
    return np.concatenate([[0.0], users]), np.concatenate([[costs[0]], costs])


def frontier_figure(result: ComparisonResult, ax=None):
    """Cost per month (y) against users at budget (x, with the search's bracket as error
    bars), one labelled point per option: filled green when it meets every check (the budget
    at the target, at the peak and with one box down), hollow red when it fails one, its
    marker by kind. The budget frontier (``pareto_front``) is drawn as a staircase, the target
    x peak factor as a vertical line; the catalogue's label is in the title. Options with no
    users estimate (a search that did not bracket) are named in a note. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    t = result.rows
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 6), layout="constrained")
    fig = ax.figure
    users = t["users_at_budget"].to_numpy(dtype=float)
    cost = t["cost_per_month_usd"].to_numpy(dtype=float)
    low = t["users_at_budget_low"].to_numpy(dtype=float)
    high = t["users_at_budget_high"].to_numpy(dtype=float)
    ok = t["meets_every_check"].fillna(False).astype(bool).to_numpy()
    shown = np.isfinite(users) & np.isfinite(cost)
    pf = float(getattr(result, "peak_factor", 2.0))
    need = pf * result.workload.users

    err = np.vstack([np.where(np.isfinite(low), users - low, 0.0),
                     np.where(np.isfinite(high), high - users, 0.0)])
    if shown.any():
        ax.errorbar(users[shown], cost[shown], xerr=err[:, shown], fmt="none", ecolor="0.55",
                    elinewidth=1.1, capsize=3, zorder=2)
    for k in np.flatnonzero(shown):
        marker = KIND_STYLE.get(t["kind"].iloc[k], ("o",))[0]
        style = ({"color": "tab:green", "mec": "white"} if ok[k]
                 else {"color": "tab:red", "mfc": "white", "mew": 1.6})
        ax.plot(users[k], cost[k], marker=marker, ms=9, ls="none", zorder=3, **style)
    front = pareto_front(users, cost)
    xs, ys = frontier_steps(users[front], cost[front])
    if xs.size:
        ax.step(xs, ys, where="pre", color="0.25", lw=1.4, zorder=1, gid="frontier")
    ax.axvline(need, color="k", ls="--", lw=1.1, zorder=1)
    ax.annotate(f"target x {pf:g}: {need:,.0f} users", (need, 0.0),
                xycoords=("data", "axes fraction"), xytext=(4, 6),
                textcoords="offset points", fontsize=8.5, color="0.25")

    finite_high = high[shown & np.isfinite(high)]
    right = max([need, *users[shown], *finite_high]) * 1.18
    top = (np.nanmax(cost) if np.isfinite(cost).any() else 1.0) * 1.18
    ax.set_xlim(0, right)
    ax.set_ylim(0, top)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"\\${x:,.0f}"))
    source = ("simulated; bars: the saturation search's bracket"
              if getattr(result, "simulated_saturation", True) else "the analytic twin's")
    ax.set_xlabel(f"users at budget ({source})")
    ax.set_ylabel("cost of the tier (\\$ per month)")
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="none", color="tab:green", mec="white", ms=8,
                      label=f"meets every check (target, {pf:g}x peak, one box down)"),
               Line2D([], [], marker="o", ls="none", color="tab:red", mfc="white", mew=1.6,
                      ms=8, label="fails at least one"),
               Line2D([], [], color="0.25", lw=1.4, drawstyle="steps-pre",
                      label="budget frontier (cheapest for each capacity)")]
    kinds = [k for k in KIND_STYLE if (t["kind"] == k).any()]
    handles += [Line2D([], [], marker=KIND_STYLE[k][0], ls="none", color="0.45", ms=7,
                       label=KIND_STYLE[k][2]) for k in kinds]
    ax.legend(handles=handles, loc="upper left", fontsize=8.5)
    label = getattr(result, "catalogue_label", "") or "catalogue not named"
    ax.set_title(f"Scaling {result.component!r}: cost against users within "
                 f"{budget_text(result.budget)}\nat {result.workload.users:,.0f} users; "
                 f"prices: {label}", fontsize=11)
    missing = []
    for k in np.flatnonzero(~shown):
        status = t["users_at_budget_status"].iloc[k]
        why = (f"above {low[k]:,.0f} users" if status == "holds_at_highest"
               else f"below {high[k]:,.0f} users" if status == "broken_at_lowest"
               else "no users estimate")
        missing.append(f"{t['option'].iloc[k]} ({why})")
    if missing:
        ax.annotate("not on the chart: " + "; ".join(missing), (1.0, 0.0),
                    xycoords="axes fraction", xytext=(-4, 4), textcoords="offset points",
                    ha="right", va="bottom", fontsize=8, color="0.3")
    _label_points(ax, users[shown], cost[shown], t["option"].to_numpy()[shown])
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

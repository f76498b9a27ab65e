"""The autoscaling figure: instances against offered load, p99 per window, cost over time.

Drawn from a finished ``capsim.scaling.AutoscaleResult`` (its ``timeline()``, ``summary()``,
``history()`` and ``boot_periods()``), boot periods shaded on every panel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

if TYPE_CHECKING:
    from capsim.scaling.autoscale import AutoscaleResult

__all__ = ["autoscale_figure"]


def autoscale_figure(result: AutoscaleResult, fig=None, *, start_hour: float = 0.0):
    """Offered load and instances; p99 per window; cost (autoscaled vs fixed fleet).
    ``start_hour`` labels the time axis as a clock (simulated t = 0 at that hour)."""
    t = result.timeline()
    s = result.summary()
    if fig is None:
        fig = plt.figure(figsize=(12, 8.5), layout="constrained")
    ax_n, ax_p, ax_c = fig.subplots(3, 1, sharex=True,
                                    gridspec_kw={"height_ratios": [1.3, 1.0, 0.9]})
    hours = lambda x: start_hour + np.asarray(x) / 3600.0  # noqa: E731
    h = result.history()
    steps_t = np.append(h["time_s"].to_numpy(float), result.run.duration_s)
    for ax in (ax_n, ax_p, ax_c):
        if result.warmup_s > 0:
            ax.axvspan(hours(0), hours(result.warmup_s), color="0.5", alpha=0.15, lw=0,
                       label="warm-up (not counted)" if ax is ax_n else None)
        for k, (a, b) in enumerate(result.boot_periods()):
            ax.axvspan(hours(a), hours(b), color="tab:orange", alpha=0.18, lw=0,
                       label="scale-out lag (detect + boot)" if k == 0 and ax is ax_n else None)
        ax.grid(alpha=0.3)
    ax_n.step(hours(steps_t), np.append(h["instances"], h["instances"].iloc[-1]),
              where="post", color="tab:red", lw=1.6, label="instances paid for")
    ax_n.step(hours(steps_t), np.append(h["serving"], h["serving"].iloc[-1]), where="post",
              color="tab:green", lw=1.6, ls="--", label="instances serving")
    ax_n.set_ylabel("instances")
    ax_n.set_ylim(0, h["instances"].max() + 2)
    twin = ax_n.twinx()
    grid = np.linspace(0.0, result.run.duration_s, 2_000)
    rate = np.full(grid.shape, result.workload.arrival_rate_per_s)
    if result.workload.profile is not None:
        rate = rate * result.workload.profile.multiplier(grid)
    twin.plot(hours(grid), rate, color="0.45", lw=1.2, label="offered load")
    twin.set_ylabel("requests per second")
    twin.set_ylim(0, None)
    lines = ax_n.get_legend_handles_labels()
    other = twin.get_legend_handles_labels()
    ax_n.legend(lines[0] + other[0], lines[1] + other[1], loc="upper left", fontsize=9)
    a = result.autoscaler
    ax_n.set_title(f"Target tracking at {a.target_utilization:.0%} busy on "
                   f"{result.option.instance.name} boxes ({a.min_instances}-"
                   f"{a.max_instances}; check every {a.interval_s:g} s, boot "
                   f"{a.provision_s:g} s, cooldown {a.cooldown_s:g} s)")
    mid = hours(t["time_s"] - result.window_s / 2)
    ax_p.plot(mid, t["p99_s"] * 1e3, "o-", color="tab:blue", ms=3.5, lw=1.2,
              label=f"p99 per {result.window_s / 60:g} min (by arrival)")
    if result.budget is not None and result.budget.p99_s is not None:
        ax_p.axhline(result.budget.p99_s * 1e3, color="k", ls="--", lw=1,
                     label=f"budget {result.budget.p99_s * 1e3:.0f} ms")
    ax_p.set_yscale("log")
    ax_p.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_p.set_ylabel("p99 (ms)")
    ax_p.legend(loc="upper left", fontsize=9)
    ax_p.set_title(f"p99 of requests arriving during a scale-out lag: "
                   f"{s['p99_booting_s'] * 1e3:,.0f} ms; the rest: "
                   f"{s['p99_steady_s'] * 1e3:,.0f} ms")
    fixed_rate = (s["fixed_fleet_cost_usd"] / s["duration_h"])
    t = t[t["time_s"] > result.warmup_s]
    ends = np.append(result.warmup_s, t["time_s"].to_numpy(float))
    spent = np.append(0.0, t["cost_usd"].cumsum().to_numpy())
    ax_c.plot(hours(ends), spent, color="tab:red", lw=1.6,
              label=f"autoscaled: \\${s['cost_usd']:.2f}")
    ax_c.plot(hours(ends), fixed_rate * (ends - result.warmup_s) / 3600.0,
              color="0.4", ls=":",
              lw=1.6, label=f"fixed fleet of {s['max_instances']:.0f}: "
              f"\\${s['fixed_fleet_cost_usd']:.2f}")
    ax_c.set_ylabel("cost since warm-up (\\$)" if result.warmup_s else "cost so far (\\$)")
    if start_hour:
        ax_c.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _: f"{int(v) % 24:02d}:{round(v % 1 * 60) % 60:02d}"))
        ax_c.set_xlabel("time of day")
    else:
        ax_c.set_xlabel("time (h)")
    ax_c.legend(loc="upper left", fontsize=9)
    ax_c.set_title(f"Cost: {s['saving_vs_fixed']:.0%} less than a fleet sized for the "
                   "busiest moment")
    return fig

"""Reusable matplotlib figures for queueing answers: analytic lines, simulated points, alarms.

Every function draws on ``ax`` (a new figure if None) and returns the Axes, so a notebook can
lay several side by side. Latencies are stored in seconds and shown in ``unit`` (ms by
default), utilization is shown in percent. Analytic results are lines; simulated ones are
points with their confidence-interval error bars, in the same colour as the line they check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

__all__ = ["burst_headroom_plot", "compare_curves", "latency_vs_utilization",
           "littles_law_plot", "shade_alarm"]

UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}
METRIC_LABELS = {"mean_s": "mean", "p50_s": "p50", "p95_s": "p95", "p99_s": "p99",
                 "mean_wait_s": "mean wait", "mean_response_s": "mean response"}


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    return ax


def _scale(unit: str) -> float:
    try:
        return UNITS[unit]
    except KeyError:
        raise ValueError(f"unit: one of {sorted(UNITS)}, got {unit!r}") from None


def _finite(df: pd.DataFrame, y: str) -> pd.DataFrame:
    return df[np.isfinite(df[y].to_numpy(dtype=float))]


def _points(ax: Axes, points: pd.DataFrame, metric: str, x: str, k: float, color,
            label: str | None) -> None:
    p = _finite(points[points["metric"] == metric], "mean")
    if p.empty:
        return
    err = np.nan_to_num(p["half_width"].to_numpy(dtype=float) * k)
    ax.errorbar(p[x], p["mean"] * k, yerr=err, fmt="o", ms=5, capsize=3, color=color,
                mec="white", mew=0.6, label=label, zorder=3)


def _utilization_axis(ax: Axes, x: str, unit: str, ylabel: str) -> None:
    if x == "utilization":
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("utilization (share of capacity busy)")
    else:
        ax.set_xlabel(x)
    ax.set_ylabel(f"{ylabel} ({unit})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def shade_alarm(ax: Axes, alarm: float, *, label: str | None = None) -> Axes:
    """A dashed line at ``alarm`` and a shaded zone past it: where latency climbs steeply."""
    ax.axvline(alarm, color="0.3", ls="--", lw=1)
    ax.axvspan(alarm, 1.0, color="tab:red", alpha=0.08,
               label=label if label is not None else f"past the {alarm:.0%} alarm line")
    return ax


def latency_vs_utilization(analytic: pd.DataFrame, simulated: pd.DataFrame | None = None, *,
                           metrics: Sequence[str] = ("mean_s", "p99_s"),
                           alarm: float | None = 0.8, ax: Axes | None = None,
                           unit: str = "ms", title: str | None = None) -> Axes:
    """The hockey stick: analytic latency lines over simulated points with 95% CIs.

    ``analytic`` is a :func:`~capsim.report.tables.station_curve` table; ``simulated`` a
    :func:`~capsim.report.tables.replication_points` table (utilization, metric, mean,
    half_width). One line (and one set of points) per metric; the region past ``alarm`` is
    shaded.
    """
    ax = _axes(ax)
    k = _scale(unit)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, metric in enumerate(metrics):
        color = colors[i % len(colors)]
        name = METRIC_LABELS.get(metric, metric)
        line = _finite(analytic, metric)
        ax.plot(line["utilization"], line[metric] * k, color=color, lw=2,
                label=f"{name}, theory")
        if simulated is not None:
            _points(ax, simulated, metric, "utilization", k, color,
                    f"{name}, simulated (95% CI)")
    if alarm is not None:
        shade_alarm(ax, alarm)
    ax.set_xlim(0, 1)
    _utilization_axis(ax, "utilization", unit, "latency")
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return ax


def compare_curves(curves: Mapping[str, pd.DataFrame],
                   simulated: Mapping[str, pd.DataFrame] | None = None, *,
                   y: str = "mean_s", x: str = "utilization", alarm: float | None = None,
                   ax: Axes | None = None, unit: str = "ms", ylabel: str | None = None,
                   title: str | None = None) -> Axes:
    """Several analytic curves of one metric, labelled, each with its simulated points.

    For "what changes if...": service-time variability (cv 0 / 1 / 2), one pooled queue vs
    separate queues. ``curves`` maps a label to a curve table with columns ``x`` and ``y``;
    ``simulated`` maps the same labels to points tables (metric ``y``).
    """
    ax = _axes(ax)
    k = _scale(unit)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, curve) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        line = _finite(curve, y)
        ax.plot(line[x], line[y] * k, color=color, lw=2, label=label)
        if simulated is not None and label in simulated:
            _points(ax, simulated[label], y, x, k, color, None)
    if simulated:
        ax.errorbar([], [], yerr=[], fmt="o", color="0.4", capsize=3,
                    label="simulated (95% CI)")
    if alarm is not None:
        shade_alarm(ax, alarm)
    if x == "utilization":
        ax.set_xlim(0, 1)
    _utilization_axis(ax, x, unit, ylabel or METRIC_LABELS.get(y, y))
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return ax


def littles_law_plot(table: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Bars of L (time-average number present) next to lambda x W, per component and overall.

    ``table`` is :func:`~capsim.report.tables.littles_law_table`; equal bar pairs are Little's
    law holding on the run.
    """
    ax = _axes(ax)
    pos = np.arange(len(table))
    w = 0.38
    ax.bar(pos - w / 2, table["L"], w, label="L: time-average number present (measured)")
    ax.bar(pos + w / 2, table["lambda_w"], w,
           label="λ × W: throughput × mean time spent (measured)")
    for p, (lv, lw) in zip(pos, zip(table["L"], table["lambda_w"], strict=True), strict=True):
        ax.annotate(f"{lv:.2f} vs {lw:.2f}", (p, max(lv, lw)), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(pos, table["name"])
    ax.set_ylabel("requests")
    ax.set_ylim(0, 1.2 * float(np.nanmax(table[["L", "lambda_w"]].to_numpy())))
    ax.legend(loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def burst_headroom_plot(curve: pd.DataFrame, headroom: pd.DataFrame, *,
                        alarm: float | None = 0.8, ax: Axes | None = None,
                        unit: str = "ms") -> Axes:
    """The mean-latency curve with the stretch of it that a burst slides along, per start point.

    ``curve`` is a :func:`station_curve`, ``headroom`` a :func:`burst_headroom` table. Each
    starting utilization gets a coloured stretch from where it is to where the burst takes it,
    named in the legend with the latency before and after. A burst past 100% has no steady
    state: its stretch runs off the top of the plot (arrow) and the legend says "unstable".
    """
    ax = _axes(ax)
    k = _scale(unit)
    line = _finite(curve, "mean_s")
    x, y = line["utilization"].to_numpy(), line["mean_s"].to_numpy() * k
    ax.plot(x, y, color="0.55", lw=1.5, label="mean latency, theory")
    finite_after = headroom.loc[headroom["stable_after"], "mean_after_s"] * k
    top = 1.2 * float(finite_after.max()) if len(finite_after) else float(y.max())
    colors = ["tab:green", "tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown"]
    for i, r in enumerate(headroom.itertuples()):
        color = colors[i % len(colors)]
        y0 = r.mean_s * k
        inside = (x > r.utilization) & (x < r.after_burst)
        if r.stable_after:
            sx = np.r_[r.utilization, x[inside], r.after_burst]
            sy = np.r_[y0, y[inside], r.mean_after_s * k]
            label = (f"{r.utilization:.0%} → {r.after_burst:.0%}: {y0:.0f} → "
                     f"{r.mean_after_s * k:.0f} {unit} (×{r.slowdown:.1f})")
        else:
            sx = np.r_[r.utilization, x[inside]]
            sy = np.r_[y0, y[inside]]
            label = f"{r.utilization:.0%} → {r.after_burst:.0%}: past capacity, unstable"
        # stretches overlap (70 -> 84% covers 80%): later ones thinner and on top, so all show
        lw = 2.5 + 2.0 * (len(headroom) - 1 - i)
        ax.plot(sx, sy, color=color, lw=lw, solid_capstyle="butt", label=label, zorder=2 + i)
        ax.plot([sx[0]], [sy[0]], "o", color=color, ms=8, mec="white", zorder=10)
        if r.stable_after:
            ax.plot([sx[-1]], [sy[-1]], "D", color=color, ms=6, mec="white", zorder=10)
        else:
            ax.annotate("", (sx[-1], top), (sx[-1], min(sy[-1], top)), zorder=10,
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2})
    if alarm is not None:
        shade_alarm(ax, alarm)
    ax.set_xlim(0, 1)
    _utilization_axis(ax, "utilization", unit, "mean latency")
    ax.set_ylim(0, top)
    burst = float((headroom["after_burst"] / headroom["utilization"]).iloc[0] - 1.0)
    ax.legend(loc="upper left", frameon=False,
              title=f"+{burst:.0%} traffic: utilization, mean latency")
    return ax

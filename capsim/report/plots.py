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
    """The mean-latency curve with one arrow per starting utilization: where a burst lands.

    ``curve`` is a :func:`station_curve`, ``headroom`` a :func:`burst_headroom` table. A burst
    that pushes utilization past 100% has no steady state; its arrow leaves the plot, marked
    "unstable".
    """
    ax = _axes(ax)
    k = _scale(unit)
    line = _finite(curve, "mean_s")
    ax.plot(line["utilization"], line["mean_s"] * k, color="tab:blue", lw=2,
            label="mean latency, theory")
    top = float(line["mean_s"].max() * k)
    for r in headroom.itertuples():
        y0 = r.mean_s * k
        ax.plot([r.utilization], [y0], "o", color="tab:blue", ms=6)
        if r.stable_after:
            end, y1 = r.after_burst, r.mean_after_s * k
            text = f"×{r.slowdown:.1f}"
        else:
            end, y1 = min(r.after_burst, 0.995), top
            text = "unstable"
        ax.annotate("", (end, y1), (r.utilization, y0),
                    arrowprops={"arrowstyle": "->", "color": "tab:orange", "lw": 1.5})
        ax.annotate(f"{r.utilization:.0%}→{r.after_burst:.0%}: {text}", (end, y1),
                    xytext=(-6, 4), textcoords="offset points", ha="right", fontsize=8)
    if alarm is not None:
        shade_alarm(ax, alarm)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, top * 1.05)
    _utilization_axis(ax, "utilization", unit, "mean latency")
    ax.legend(loc="upper left", frameon=False)
    return ax

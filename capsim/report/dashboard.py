"""A Grafana-like dashboard of a run's time series: one panel per metric, alert spans shaded.

``dashboard(ts, panels=[("postgres", "utilization"), (["browse", "checkout"], "p99_s")],
alerts=[cpu_alert], thresholds={"p99_s": 0.2})`` stacks one panel per ``(names, metric)``
over a shared time axis, one line per name. Each alert's threshold is drawn (dashed, in the
alert's colour) on the panels that show its metric and component, and the times it was firing
are shaded on every panel, so a glance down the page shows which alarm went off first and
what the other metrics were doing then. ``thresholds`` adds plain reference lines.

Latencies are shown in ms, utilization in percent; the time axis is h:mm since the start of
the run (or whatever ``clock`` makes of the seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from capsim.errors import ModelError
from capsim.monitor.alerts import evaluate, rule_group
from capsim.report.timeaxis import clock_axis

__all__ = ["dashboard"]

TITLES = {"utilization": "utilization", "mean_in_system": "requests in the system",
          "mean_queue_length": "queue length", "throughput_per_s": "throughput (per s)",
          "drops": "drops per window", "count": "requests per window",
          "p50_s": "p50 latency", "p95_s": "p95 latency", "p99_s": "p99 latency",
          "errors": "errors per window"}
ALERT_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")


def _scale(metric: str) -> tuple[float, str]:
    """Display factor and unit: seconds -> ms, utilization -> %."""
    if metric.endswith("_s") and not metric.endswith("_per_s"):
        return 1e3, "ms"
    if metric == "utilization":
        return 1.0, "%"
    return 1.0, ""


def _panel(spec, ts: pd.DataFrame) -> tuple[list[str], str, str | None]:
    if not isinstance(spec, Sequence) or isinstance(spec, str) or len(spec) not in (2, 3):
        raise ModelError(f"dashboard.panels: each panel is (name or names, metric[, title]), "
                         f"got {spec!r}")
    names, metric = spec[0], spec[1]
    names = [names] if isinstance(names, str) else list(names)
    known = list(dict.fromkeys(ts["name"]))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ModelError(f"dashboard.panels: no station or flow {unknown or names} in the time "
                         f"series; it has: {', '.join(known)}")
    for n in names:
        has = set(ts.loc[ts["name"] == n, "metric"])
        if metric not in has:
            raise ModelError(f"dashboard.panels: {n!r} has no metric {metric!r}; it has: "
                             f"{', '.join(sorted(has))}")
    return names, metric, spec[2] if len(spec) == 3 else None


def _threshold_lines(thresholds, names: list[str], metric: str) -> list[float]:
    out = []
    for key, value in (thresholds or {}).items():
        applies = key == metric or (isinstance(key, tuple) and key[1] == metric
                                    and key[0] in names)
        if applies:
            out += list(value) if isinstance(value, Sequence) else [value]
    return [float(v) for v in out]


def dashboard(timeseries: pd.DataFrame, panels: Sequence, alerts: Sequence = (),
              thresholds: Mapping | None = None, *, title: str | None = None,
              clock: Callable[[float], str] | None = None, xlabel: str | None = None,
              width: float = 11.0, panel_height: float = 2.0) -> Figure:
    """Draw ``panels`` of ``timeseries`` (``RunResult.timeseries()``) and return the figure.

    ``panels``: ``(name, metric)``, ``([names], metric)`` or ``(names, metric, title)``.
    ``alerts``: :class:`~capsim.monitor.Alert` rules, or lists of them (one rule on several
    components, shaded as one); each gets a colour, its firing spans shaded on every panel
    and its threshold on the panels of its metric. ``thresholds``: ``{metric: value}`` or
    ``{(name, metric): value or [values]}``, drawn as grey dotted lines. ``clock`` turns
    seconds since the start into tick labels (default h:mm), ``xlabel`` names that axis.
    """
    if not isinstance(timeseries, pd.DataFrame) or not {"time_s", "name", "metric",
                                                        "value"} <= set(timeseries.columns):
        raise ModelError("dashboard.timeseries: must be RunResult.timeseries() (columns "
                         "time_s, name, metric, value)")
    specs = [_panel(p, timeseries) for p in panels]
    if not specs:
        raise ModelError("dashboard.panels: give at least one (name, metric) panel")
    groups = [(rule_group(a, "dashboard.alerts")[0], ALERT_COLORS[i % len(ALERT_COLORS)])
              for i, a in enumerate(alerts)]
    firings = [evaluate(rules, timeseries) for rules, _ in groups]
    times = np.unique(timeseries["time_s"].to_numpy(dtype=float))
    t_end = float(times[-1])
    # values are stamped at window ends: the axis starts where the first window starts
    t_start = float(times[0] - (np.diff(times).min() if times.size > 1 else 0.0))

    fig, axes = plt.subplots(len(specs), 1, sharex=True, squeeze=False,
                             figsize=(width, panel_height * len(specs) + 0.6),
                             layout="constrained")
    axes = axes[:, 0]
    for ax, (names, metric, panel_title) in zip(axes, specs, strict=True):
        k, unit = _scale(metric)
        for n in names:
            rows = timeseries[(timeseries["name"] == n) & (timeseries["metric"] == metric)]
            rows = rows.sort_values("time_s")
            ax.plot(rows["time_s"], rows["value"] * (100 * k if unit == "%" else k), lw=1.2,
                    label=n if len(names) > 1 else None)
        what = TITLES.get(metric, metric)
        ax.set_title(panel_title or f"{', '.join(names)} · {what}", loc="left",
                     fontsize="medium")
        if unit == "%":
            ax.yaxis.set_major_formatter(PercentFormatter(100))
        elif unit:
            ax.set_ylabel(unit)
        for value in _threshold_lines(thresholds, names, metric):
            ax.axhline(value * (100 * k if unit == "%" else k), color="0.35", ls=":", lw=1.2)
        for (rules, color), fired in zip(groups, firings, strict=True):
            for rule in rules:
                if rule.metric == metric and rule.component in names:
                    ax.axhline(rule.threshold * (100 * k if unit == "%" else k), color=color,
                               ls="--", lw=1.1)
            for row in fired.itertuples(index=False):
                end = t_end if np.isnan(row.resolved_at_s) else row.resolved_at_s
                ax.axvspan(row.fired_at_s, end, color=color, alpha=0.14, lw=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(4))
        if len(names) > 1:  # on the title line, right-aligned, clear of the data
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                      ncols=min(len(names), 6), frameon=False, borderaxespad=0.1,
                      handlelength=1.5)
    if groups:
        handles = [Patch(color=color, alpha=0.3, lw=0,
                         label=f"firing: {rule_group(rules, 'dashboard.alerts')[1]}")
                   for rules, color in groups]
        fig.legend(handles=handles, loc="outside lower center", fontsize="small",
                   frameon=False, ncols=min(len(handles), 3))
    clock_axis(axes[-1], t_start, t_end, clock)
    axes[-1].set_xlabel(xlabel or ("time since start (h:mm)" if clock is None else "time"))
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize="large")
    return fig

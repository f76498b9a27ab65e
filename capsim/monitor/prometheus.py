"""A run's time series in the Prometheus text exposition format (or OpenMetrics).

What a Prometheus scraping the simulated system would have stored, one gauge family per
metric of :meth:`capsim.RunResult.timeseries`, one series per station or flow, one sample per
window (stamped at the window's end)::

    # HELP capsim_utilization Busy servers / servers, time average over the window.
    # TYPE capsim_utilization gauge
    capsim_utilization{component="postgres"} 0.83 1732900060000

Stations are labelled ``component``, flows ``flow`` (a metric both have, throughput, goes
by the name: a name with latency metrics is a flow). Timestamps are milliseconds since the
Unix epoch: ``start_epoch_s`` (the wall-clock time of the run's t = 0) plus the window end.
``openmetrics=True`` writes OpenMetrics instead (timestamps in seconds, ``# EOF`` at the end),
the input of ``promtool tsdb create-blocks-from openmetrics``, which backfills a Prometheus
so that Grafana can draw the run.

Metric names keep ``[a-zA-Z0-9_:]`` (anything else becomes ``_``; a leading digit gets a
``_``); label values escape backslash, double quote and newline (``\\\\``, ``\\"``, ``\\n``),
as the format asks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.errors import ModelError, fail

__all__ = ["HELP", "escape_help", "escape_label", "metric_name", "to_prometheus",
           "write_prometheus"]

FLOW_METRICS = frozenset({"count", "p50_s", "p95_s", "p99_s", "errors"})
STATION_METRICS = frozenset({"utilization", "mean_in_system", "mean_queue_length", "drops"})
HELP = {
    "utilization": "Busy servers / servers, time average over the window.",
    "mean_in_system": "Requests at the station (waiting + in service), time average over "
                      "the window.",
    "mean_queue_length": "Requests waiting for a server, time average over the window.",
    "throughput_per_s": "Requests completed per second over the window.",
    "drops": "Requests the station dropped (queue full) in the window.",
    "count": "Requests of the flow finished in the window.",
    "p50_s": "Median latency (seconds) of the flow's requests finished in the window.",
    "p95_s": "95th percentile latency (seconds) of the flow's requests finished in the window.",
    "p99_s": "99th percentile latency (seconds) of the flow's requests finished in the window.",
    "errors": "Requests of the flow that failed in the window.",
}
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def metric_name(metric: str, prefix: str = "capsim_") -> str:
    """``prefix + metric`` made a valid Prometheus metric name."""
    name = _NAME_BAD.sub("_", f"{prefix}{metric}")
    return f"_{name}" if not name or name[0].isdigit() else name


def escape_label(value: str) -> str:
    """A label value as the format writes it: ``\\`` -> ``\\\\``, ``"`` -> ``\\"``,
    newline -> ``\\n``."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str, openmetrics: bool = False) -> str:
    """HELP text: backslash and newline escaped (and double quotes, in OpenMetrics)."""
    out = str(text).replace("\\", "\\\\").replace("\n", "\\n")
    return out.replace('"', '\\"') if openmetrics else out


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _epoch(start_epoch_s) -> float:
    if isinstance(start_epoch_s, datetime):
        if start_epoch_s.tzinfo is None:
            raise fail("to_prometheus", "start_epoch_s", "must be a timezone-aware datetime "
                       "(or Unix seconds)", start_epoch_s)
        return start_epoch_s.timestamp()
    if isinstance(start_epoch_s, bool) or not isinstance(start_epoch_s, (int, float)) or \
            not math.isfinite(start_epoch_s) or start_epoch_s < 0:
        raise fail("to_prometheus", "start_epoch_s", "must be Unix seconds >= 0 (or an aware "
                   "datetime)", start_epoch_s)
    return float(start_epoch_s)


def to_prometheus(timeseries: pd.DataFrame, start_epoch_s, *, prefix: str = "capsim_",
                  labels: Mapping[str, str] | None = None, openmetrics: bool = False,
                  help: Mapping[str, str] | None = None) -> str:
    """The time series (``RunResult.timeseries()``) as exposition-format text.

    ``start_epoch_s``: Unix seconds (or an aware datetime) of the run's t = 0. ``labels``
    are added to every series (``{"scenario": "launch"}``); ``help`` overrides the HELP text
    per metric. Families come in the order their metrics first appear, series in the order
    of their names, samples in time order.
    """
    missing = [c for c in ("time_s", "name", "metric", "value") if c not in timeseries.columns]
    if missing:
        raise ModelError(f"to_prometheus.timeseries: missing columns {missing}; expected "
                         "RunResult.timeseries()")
    t0 = _epoch(start_epoch_s)
    extra = dict(labels or {})
    for key in extra:
        if not isinstance(key, str) or not _LABEL_NAME.match(key) or key.startswith("__") \
                or key in ("component", "flow"):
            raise fail("to_prometheus", "labels", "must have label names matching "
                       "[a-zA-Z_][a-zA-Z0-9_]* (not __..., component or flow)", key)
    texts = {**HELP, **(help or {})}
    flows = set(timeseries.loc[timeseries["metric"].isin(FLOW_METRICS), "name"])
    metrics = list(dict.fromkeys(timeseries["metric"]))
    names = {m: metric_name(m, prefix) for m in metrics}
    clash = pd.Series(names).duplicated(keep=False)
    if clash.any():
        raise ModelError(f"to_prometheus: metrics {list(clash[clash].index)} have the same "
                         f"Prometheus name {names[clash[clash].index[0]]!r}")
    order = {n: i for i, n in enumerate(dict.fromkeys(timeseries["name"]))}
    lines = []
    for metric in metrics:
        name = names[metric]
        rows = timeseries[timeseries["metric"] == metric]
        rows = rows.assign(_order=rows["name"].map(order)).sort_values(
            ["_order", "time_s"], kind="stable")
        lines.append(f"# HELP {name} "
                     f"{escape_help(texts.get(metric, f'capsim metric {metric}'), openmetrics)}")
        lines.append(f"# TYPE {name} gauge")
        ms = np.rint((t0 + rows["time_s"].to_numpy(dtype=float)) * 1000).astype(np.int64)
        for series, value, stamp in zip(rows["name"], rows["value"], ms, strict=True):
            key = ("flow" if metric in FLOW_METRICS else "component" if metric in
                   STATION_METRICS else "flow" if series in flows else "component")
            pairs = [(key, series), *extra.items()]
            body = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
            when = f"{stamp // 1000}.{stamp % 1000:03d}" if openmetrics else str(stamp)
            lines.append(f"{name}{{{body}}} {_value(float(value))} {when}")
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def write_prometheus(timeseries: pd.DataFrame, path: str | Path, start_epoch_s,
                     **options) -> Path:
    """Write :func:`to_prometheus` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(to_prometheus(timeseries, start_epoch_s, **options), encoding="utf-8")
    return path

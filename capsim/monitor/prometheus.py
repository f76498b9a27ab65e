"""A run's time series in the Prometheus text exposition format (or OpenMetrics).

What a Prometheus scraping the simulated system would have stored: one family per metric of
:meth:`capsim.RunResult.timeseries`, one series per station or flow, one sample per window
(stamped at the window's end)::

    # HELP capsim_utilization_ratio Busy servers / servers (0 to 1), time average over ...
    # TYPE capsim_utilization_ratio gauge
    capsim_utilization_ratio{component="postgres"} 0.83 1732900060000

Names follow the Prometheus naming conventions, so ``promtool check metrics`` has nothing to
say (:data:`NAMES` is the mapping): base units (seconds), ``_seconds`` and ``_ratio`` (a
0-to-1 share) suffixes, and no reserved suffix (``_count``, ``_sum``, ``_bucket``, ``_total``)
on a value that is not one. Every value is *per window* (an average, a quantile, a count of
that window), so the families are gauges, not counters: a count per window goes up and down,
and a ``_total`` counter must only rise. The latency quantiles are one summary family with a
``quantile`` label, as a Prometheus summary's are (quantiles over a recent window); it has no
``_count``/``_sum`` (the series has no per-window latency sum, and a count per window is no
cumulative count). The throughput is a rate, named ``_per_second`` as OpenTelemetry's
Prometheus names write a ``1/s`` unit.

**Breaking change** (old -> new name): ``capsim_utilization`` -> ``capsim_utilization_ratio``;
``capsim_throughput_per_s`` -> ``capsim_throughput_per_second``; ``capsim_count`` ->
``capsim_finished_requests``; ``capsim_errors`` -> ``capsim_failed_requests``;
``capsim_drops`` -> ``capsim_dropped_requests``; ``capsim_p50_s``, ``capsim_p95_s``,
``capsim_p99_s`` -> ``capsim_latency_seconds{quantile="0.5"}`` (``"0.95"``, ``"0.99"``);
``capsim_mean_in_system`` and ``capsim_mean_queue_length`` are unchanged.

Stations are labelled ``component``, flows ``flow`` (a metric both have, throughput, goes
by the name: a name with latency metrics is a flow). Timestamps are milliseconds since the
Unix epoch: ``start_epoch_s`` (the wall-clock time of the run's t = 0) plus the window end.
``openmetrics=True`` writes OpenMetrics instead (timestamps in seconds, ``# UNIT`` lines,
``# EOF`` at the end), the input of ``promtool tsdb create-blocks-from openmetrics``, which
backfills a Prometheus so that Grafana can draw the run.

A metric outside :data:`NAMES` (a frame of your own) is exported as a gauge under its own
name, made valid: ``[a-zA-Z0-9_:]`` kept (anything else becomes ``_``; a leading digit gets a
``_``). Label values escape backslash, double quote and newline (``\\\\``, ``\\"``, ``\\n``),
as the format asks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.errors import ModelError, fail

__all__ = ["EXPORTS", "HELP", "NAMES", "RESERVED_LABELS", "Exported", "check_labels",
           "escape_help", "escape_label", "exported", "label_key", "metric_name", "selector",
           "to_prometheus", "write_prometheus"]


@dataclass(frozen=True)
class Exported:
    """How one capsim metric is exported: its family ``name`` (after the prefix), the
    family's ``type`` and OpenMetrics ``unit`` ("" for none), and for a latency quantile the
    ``quantile`` label its samples carry."""

    name: str
    type: str = "gauge"
    unit: str = ""
    quantile: str | None = None


EXPORTS: dict[str, Exported] = {
    "utilization": Exported("utilization_ratio", unit="ratio"),
    "mean_in_system": Exported("mean_in_system"),
    "mean_queue_length": Exported("mean_queue_length"),
    "throughput_per_s": Exported("throughput_per_second"),
    "drops": Exported("dropped_requests"),
    "count": Exported("finished_requests"),
    "errors": Exported("failed_requests"),
    "p50_s": Exported("latency_seconds", "summary", "seconds", "0.5"),
    "p95_s": Exported("latency_seconds", "summary", "seconds", "0.95"),
    "p99_s": Exported("latency_seconds", "summary", "seconds", "0.99"),
}
#: capsim metric -> exported series, with the default prefix (a quantile is a label).
NAMES: dict[str, str] = {
    m: f"capsim_{e.name}" + (f'{{quantile="{e.quantile}"}}' if e.quantile else "")
    for m, e in EXPORTS.items()}
FLOW_METRICS = frozenset({"count", "p50_s", "p95_s", "p99_s", "errors"})
STATION_METRICS = frozenset({"utilization", "mean_in_system", "mean_queue_length", "drops"})
#: HELP text per family (the name after the prefix).
HELP = {
    "utilization_ratio": "Busy servers / servers (0 to 1), time average over the window.",
    "mean_in_system": "Requests at the station (waiting + in service), time average over "
                      "the window.",
    "mean_queue_length": "Requests waiting for a server, time average over the window.",
    "throughput_per_second": "Requests completed per second over the window.",
    "dropped_requests": "Requests the station dropped (queue full) in the window.",
    "finished_requests": "Requests of the flow finished in the window.",
    "failed_requests": "Requests of the flow that failed in the window.",
    "latency_seconds": "Latency quantiles of the flow's requests finished in the window.",
}
RESERVED_LABELS = ("component", "flow", "quantile")
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _sanitized(name: str) -> str:
    name = _NAME_BAD.sub("_", name)
    return f"_{name}" if not name or name[0].isdigit() else name


def exported(metric: str) -> Exported:
    """How ``metric`` is exported: its entry of :data:`EXPORTS`, else a gauge of its own
    name (made valid)."""
    return EXPORTS.get(metric) or Exported(_sanitized(str(metric)))


def metric_name(metric: str, prefix: str = "capsim_") -> str:
    """The family name ``metric`` is exported under: ``metric_name("p99_s")`` is
    ``capsim_latency_seconds`` (its quantile is a label, see :func:`selector`)."""
    if metric in EXPORTS:
        return _sanitized(f"{prefix}{EXPORTS[metric].name}")
    return _sanitized(f"{prefix}{metric}")


def label_key(metric: str) -> str | None:
    """The label that names the series of ``metric``: ``flow``, ``component``, or None for a
    metric both have (throughput: the name decides)."""
    return "flow" if metric in FLOW_METRICS else "component" if metric in STATION_METRICS \
        else None


def escape_label(value: str) -> str:
    """A label value as the format writes it: ``\\`` -> ``\\\\``, ``"`` -> ``\\"``,
    newline -> ``\\n``."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str, openmetrics: bool = False) -> str:
    """HELP text: backslash and newline escaped (and double quotes, in OpenMetrics)."""
    out = str(text).replace("\\", "\\\\").replace("\n", "\\n")
    return out.replace('"', '\\"') if openmetrics else out


def selector(metric: str, name: str, key: str, *, prefix: str = "capsim_",
             match: Mapping[str, str] | None = None) -> str:
    """The PromQL selector of one exported series: ``selector("p99_s", "checkout", "flow")``
    is ``capsim_latency_seconds{flow="checkout",quantile="0.99"}``. ``key`` is the label
    naming it (``component`` or ``flow``); ``match`` adds equality matchers (the ``labels``
    given to :func:`to_prometheus`)."""
    pairs = [(key, name)]
    if exported(metric).quantile is not None:
        pairs.append(("quantile", exported(metric).quantile))
    pairs += list((match or {}).items())
    body = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
    return f"{metric_name(metric, prefix)}{{{body}}}"


def check_labels(owner: str, field: str, labels: Mapping[str, str] | None,
                 reserved: tuple[str, ...] = RESERVED_LABELS) -> dict[str, str]:
    """``labels`` as a dict of strings, every name a valid Prometheus label name and none
    reserved (``owner.field`` names them in the error)."""
    out = dict(labels or {})
    for key in out:
        if not isinstance(key, str) or not _LABEL_NAME.match(key) or key.startswith("__") \
                or key in reserved:
            raise fail(owner, field, "must have label names matching [a-zA-Z_][a-zA-Z0-9_]* "
                       f"(not __..., {', '.join(reserved)})", key)
    return {k: str(v) for k, v in out.items()}


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


def _families(metrics: list[str], prefix: str) -> dict[str, list[str]]:
    """Exported family name -> its capsim metrics, in the order they first appear; two
    metrics share a name only as quantiles of one summary."""
    out: dict[str, list[str]] = {}
    for m in metrics:
        out.setdefault(metric_name(m, prefix), []).append(m)
    for name, members in out.items():
        kinds = {exported(m) for m in members}
        if len(members) > 1 and (any(k.quantile is None for k in kinds)
                                 or len({(k.name, k.type) for k in kinds}) > 1):
            raise ModelError(f"to_prometheus: metrics {members} have the same Prometheus name "
                             f"{name!r}")
    return out


def to_prometheus(timeseries: pd.DataFrame, start_epoch_s, *, prefix: str = "capsim_",
                  labels: Mapping[str, str] | None = None, openmetrics: bool = False,
                  help: Mapping[str, str] | None = None) -> str:
    """The time series (``RunResult.timeseries()``) as exposition-format text.

    ``start_epoch_s``: Unix seconds (or an aware datetime) of the run's t = 0. ``labels``
    are added to every series (``{"scenario": "launch"}``); ``help`` overrides the HELP text,
    keyed by capsim metric (``"p99_s"``) or family (``"latency_seconds"``). Families come in
    the order their metrics first appear, series in the order of their names, samples in time
    order (a summary's quantiles together at each time).
    """
    missing = [c for c in ("time_s", "name", "metric", "value") if c not in timeseries.columns]
    if missing:
        raise ModelError(f"to_prometheus.timeseries: missing columns {missing}; expected "
                         "RunResult.timeseries()")
    t0 = _epoch(start_epoch_s)
    extra = check_labels("to_prometheus", "labels", labels)
    texts = {**HELP, **(help or {})}
    flows = set(timeseries.loc[timeseries["metric"].isin(FLOW_METRICS), "name"])
    families = _families(list(dict.fromkeys(timeseries["metric"])), prefix)
    order = {n: i for i, n in enumerate(dict.fromkeys(timeseries["name"]))}
    lines = []
    for name, members in families.items():
        kind = exported(members[0])
        rank = {m: float(exported(m).quantile or 0) for m in members}
        rows = timeseries[timeseries["metric"].isin(members)]
        rows = rows.assign(_order=rows["name"].map(order), _q=rows["metric"].map(rank))
        rows = rows.sort_values(["_order", "time_s", "_q"], kind="stable")
        text = next((texts[m] for m in members if m in (help or {})), None) or \
            texts.get(kind.name, f"capsim metric {members[0]}")
        lines.append(f"# HELP {name} {escape_help(text, openmetrics)}")
        lines.append(f"# TYPE {name} {kind.type}")
        if openmetrics and kind.unit:
            lines.append(f"# UNIT {name} {kind.unit}")
        ms = np.rint((t0 + rows["time_s"].to_numpy(dtype=float)) * 1000).astype(np.int64)
        for series, metric, value, stamp in zip(rows["name"], rows["metric"], rows["value"],
                                                ms, strict=True):
            key = label_key(metric) or ("flow" if series in flows else "component")
            pairs = [(key, series)]
            if exported(metric).quantile is not None:
                pairs.append(("quantile", exported(metric).quantile))
            body = ",".join(f'{k}="{escape_label(v)}"' for k, v in [*pairs, *extra.items()])
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

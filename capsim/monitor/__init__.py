"""Monitoring: alert rules evaluated on a run's time series, and its Prometheus export.

* :class:`Alert` is a threshold rule with Prometheus ``for:`` semantics; :func:`evaluate`
  gives its firing intervals, :func:`states` its state at every window, :func:`lead_time`
  how long before the SLO broke (users felt it) it fired.
* :func:`to_prometheus` writes a run's time series in the Prometheus text exposition format
  (or OpenMetrics, for ``promtool tsdb create-blocks-from openmetrics``).
"""

from capsim.monitor.alerts import (
    Alert,
    LeadTime,
    evaluate,
    group_label,
    lead_time,
    lead_times,
    slo_alerts,
    states,
)
from capsim.monitor.prometheus import metric_name, to_prometheus, write_prometheus

__all__ = [
    "Alert",
    "LeadTime",
    "evaluate",
    "group_label",
    "lead_time",
    "lead_times",
    "metric_name",
    "slo_alerts",
    "states",
    "to_prometheus",
    "write_prometheus",
]

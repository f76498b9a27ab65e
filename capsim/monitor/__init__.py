"""Monitoring: alert rules evaluated on a run's time series, and its Prometheus export.

* :class:`Alert` is a threshold rule with Prometheus ``for:`` semantics; :func:`evaluate`
  gives its firing intervals, :func:`states` its state at every window, :func:`lead_time`
  how long before the SLO broke (users felt it) it fired.
* :func:`to_prometheus` writes a run's time series in the Prometheus text exposition format
  (or OpenMetrics, for ``promtool tsdb create-blocks-from openmetrics``), under the names of
  :data:`NAMES`.
* :func:`prometheus_rules` writes the same Alerts as a Prometheus rule file (the simulated
  alert is the deployed one), :func:`grafana_dashboard` a dashboard of the exported series.
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
from capsim.monitor.grafana import grafana_dashboard, write_grafana_dashboard
from capsim.monitor.prometheus import NAMES, metric_name, to_prometheus, write_prometheus
from capsim.monitor.rules import alert_name, prometheus_rules, write_prometheus_rules

__all__ = [
    "NAMES",
    "Alert",
    "LeadTime",
    "alert_name",
    "evaluate",
    "grafana_dashboard",
    "group_label",
    "lead_time",
    "lead_times",
    "metric_name",
    "prometheus_rules",
    "slo_alerts",
    "states",
    "to_prometheus",
    "write_grafana_dashboard",
    "write_prometheus",
    "write_prometheus_rules",
]

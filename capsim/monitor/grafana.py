"""A Grafana dashboard (JSON model) for the series :func:`~capsim.monitor.to_prometheus`
exports: what to look at once a run is backfilled into Prometheus.

One row per station, utilization (the alert thresholds drawn as lines) beside queue length,
then one p99 latency panel per flow with the budget line. The thresholds are the very numbers
of the :class:`~capsim.monitor.Alert` rules and the :class:`~capsim.Budget`, so the lines on
the graphs are the ones the rules of :func:`~capsim.monitor.prometheus_rules` fire on.
The data source is a dashboard variable (``datasource``, a Prometheus), so the file imports
into any Grafana.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from capsim.errors import fail
from capsim.model import Budget
from capsim.monitor.alerts import Alert
from capsim.monitor.prometheus import check_labels, selector

__all__ = ["PANELS", "SCHEMA_VERSION", "grafana_dashboard", "write_grafana_dashboard"]

SCHEMA_VERSION = 39  # Grafana 10.4 / 11
#: metric -> (panel title, Grafana unit, max or None) of the panels drawn per station / flow
PANELS = {"utilization": ("utilization", "percentunit", 1.0),
          "mean_queue_length": ("queue length", "short", None),
          "p99_s": ("p99 latency", "s", None)}
_UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _names(owner: str, field: str, names) -> list[str]:
    out = [] if isinstance(names, str) or not hasattr(names, "__iter__") else list(names)
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in out):
        raise fail(owner, field, "must be a list of station or flow names", names)
    return list(dict.fromkeys(out))


def _flat(alerts, owner: str) -> list[Alert]:
    out = []
    items = [alerts] if isinstance(alerts, Alert) else list(alerts)
    for i, item in enumerate(items):
        group = [item] if isinstance(item, Alert) else list(item) \
            if isinstance(item, Sequence) and not isinstance(item, str) else [None]
        if not group or not all(isinstance(a, Alert) for a in group):
            raise fail(owner, f"alerts[{i}]", "must be an Alert or a list of Alerts", item)
        out += group
    return out


def _thresholds(values: list[float]) -> dict:
    """Green below the lowest line, orange between, red above the highest."""
    steps: list[dict] = [{"color": "green", "value": None}]
    lines = sorted(set(values))
    steps += [{"color": "red" if i == len(lines) - 1 else "orange", "value": v}
              for i, v in enumerate(lines)]
    return {"mode": "absolute", "steps": steps}


def _panel(pid: int, metric: str, name: str, key: str, lines: list[float], x: int, y: int,
           prefix: str, match: Mapping[str, str]) -> dict:
    title, unit, top = PANELS[metric]
    defaults: dict = {"unit": unit, "min": 0, "color": {"mode": "palette-classic"},
                      "thresholds": _thresholds(lines),
                      "custom": {"thresholdsStyle": {"mode": "line" if lines else "off"},
                                 "spanNulls": False}}
    if top is not None:
        defaults["max"] = top
    return {
        "id": pid, "type": "timeseries", "title": f"{name} {title}", "datasource": _DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "targets": [{"refId": "A", "datasource": _DATASOURCE, "range": True,
                     "expr": selector(metric, name, key, prefix=prefix, match=match),
                     "legendFormat": f"{{{{{key}}}}}"}],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom",
                               "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
    }


def _row(pid: int, title: str, y: int) -> dict:
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}


def _when(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail("grafana_dashboard", "time_range", "must hold Unix seconds or Grafana "
                   "times ('now-6h')", value)
    stamp = datetime.fromtimestamp(value, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def grafana_dashboard(components: Sequence[str] = (), flows: Sequence[str] = (), *,
                      alerts: Alert | Sequence[Alert | Sequence[Alert]] = (),
                      budget: Budget | None = None, datasource: str = "Prometheus",
                      title: str = "capsim", uid: str | None = None,
                      prefix: str = "capsim_", match: Mapping[str, str] | None = None,
                      timeseries: pd.DataFrame | None = None,
                      time_range: tuple = ("now-6h", "now")) -> dict:
    """The dashboard as Grafana's JSON model (a dict; ``json.dumps`` it, or see
    :func:`write_grafana_dashboard`).

    ``components`` (stations) get utilization and queue-length panels, ``flows`` a p99
    latency panel; with ``timeseries`` (``RunResult.timeseries()``) left empty, they are its
    stations and flows. Lines: the threshold of every ``alerts`` rule on that panel's metric
    and component, and the ``budget``'s utilization and p99 limits. ``datasource`` is the
    default of the data source variable; ``match`` adds label matchers to every query (the
    ``labels`` the series were exported with); ``time_range`` is (from, to) in Unix seconds
    or Grafana's words (``"now-6h"``); ``uid`` defaults to one derived from the title.
    """
    owner = "grafana_dashboard"
    if timeseries is not None and not components and not flows:
        has = timeseries.groupby("name", sort=False)["metric"].agg(set)
        components = [n for n, m in has.items() if "utilization" in m]
        flows = [n for n, m in has.items() if "p99_s" in m]
    stations, flows = _names(owner, "components", components), _names(owner, "flows", flows)
    if not stations and not flows:
        raise fail(owner, "components", "must name at least one station or flow (or pass "
                   "timeseries=)", components)
    if budget is not None and not isinstance(budget, Budget):
        raise fail(owner, "budget", "must be a Budget", budget)
    if not isinstance(datasource, str) or not datasource:
        raise fail(owner, "datasource", "must be the name of a Prometheus data source",
                   datasource)
    if not isinstance(title, str) or not title.strip():
        raise fail(owner, "title", "must be a non-empty string", title)
    uid = uid if uid is not None else \
        "capsim-" + hashlib.sha1(title.encode()).hexdigest()[:12]
    if not isinstance(uid, str) or not _UID.match(uid):
        raise fail(owner, "uid", "must be 1 to 40 characters of [a-zA-Z0-9_-]", uid)
    if not isinstance(time_range, tuple | list) or len(time_range) != 2:
        raise fail(owner, "time_range", "must be (from, to)", time_range)
    extra = check_labels(owner, "match", match)
    rules = _flat(alerts, owner)
    for i, a in enumerate(rules):
        if a.component not in stations and a.component not in flows:
            raise fail(owner, f"alerts[{i}].component", "must be a station or flow of the "
                       f"dashboard ({', '.join([*stations, *flows])})", a.component)
    limits = {m: v for _, m, v in budget.limits()} if budget is not None else {}

    def lines(metric: str, name: str) -> list[float]:
        drawn = [a.threshold for a in rules if a.metric == metric and a.component == name]
        applies = budget is not None and (metric == "utilization" or budget.flow in ("all",
                                                                                    name))
        return drawn + ([limits[metric]] if applies and metric in limits else [])

    panels, y = [], 0
    for name in stations:
        panels.append(_row(len(panels) + 1, name, y))
        for x, metric in ((0, "utilization"), (12, "mean_queue_length")):
            panels.append(_panel(len(panels) + 1, metric, name, "component",
                                 lines(metric, name), x, y + 1, prefix, extra))
        y += 9
    if flows:
        panels.append(_row(len(panels) + 1, "p99 latency per flow", y))
        y += 1
        for i, name in enumerate(flows):
            panels.append(_panel(len(panels) + 1, "p99_s", name, "flow", lines("p99_s", name),
                                 12 * (i % 2), y + 8 * (i // 2), prefix, extra))
    return {
        "uid": uid, "title": title, "tags": ["capsim"], "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": _when(time_range[0]), "to": _when(time_range[1])},
        "refresh": "", "annotations": {"list": []}, "links": [],
        "templating": {"list": [{
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "hide": 0, "refresh": 1, "regex": "", "options": [],
            "current": {"selected": False, "text": datasource, "value": datasource}}]},
        "panels": panels,
    }


def write_grafana_dashboard(path: str | Path, **options) -> Path:
    """Write :func:`grafana_dashboard` (``options``) to ``path`` as JSON, ready for Grafana's
    *Import dashboard*; returns the path."""
    path = Path(path)
    text = json.dumps(grafana_dashboard(**options), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path

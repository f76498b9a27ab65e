"""The simulated alerts as a Prometheus rule file: the alert that was simulated is deployed.

Each :class:`~capsim.monitor.Alert` becomes one alerting rule on the series
:func:`~capsim.monitor.to_prometheus` exports, with the same ``for``::

    groups:
    - name: capsim
      interval: 1m
      rules:
      - alert: PostgresUtilizationHigh
        expr: capsim_utilization_ratio{component="postgres"} > 0.8
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: postgres utilization > 0.8 for 5 min
          ...

A list of Alerts (one rule on several components, as :func:`~capsim.monitor.evaluate` reads
it) is one rule with a regex matcher; Prometheus keeps one alert per matching series, which
is how capsim evaluates the instances. Evaluated every window of the time series
(``interval_s``), Prometheus fires them exactly when :func:`~capsim.monitor.evaluate` does:
``promtool test rules`` agrees at every evaluation (tests/test_prometheus_rules.py).

The ``expr`` reads the exported names; on a production Prometheus, recording rules that
compute those names from its own metrics let the same file run there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from capsim.errors import ModelError, did_you_mean, fail
from capsim.model import Budget
from capsim.monitor.alerts import Alert
from capsim.monitor.prometheus import (
    EXPORTS,
    HELP,
    RESERVED_LABELS,
    check_labels,
    escape_label,
    exported,
    label_key,
    metric_name,
    selector,
)
from capsim.units import format_duration

__all__ = ["ALERT_NAME", "DEFAULT_LABELS", "alert_name", "prometheus_duration",
           "prometheus_rules", "rule_expr", "write_prometheus_rules"]

ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_LABELS = {"severity": "warning"}
_WORDS = {"utilization": "Utilization", "mean_in_system": "InSystem",
          "mean_queue_length": "QueueLength", "throughput_per_s": "Throughput",
          "drops": "DroppedRequests", "count": "FinishedRequests", "errors": "FailedRequests",
          "p50_s": "P50Latency", "p95_s": "P95Latency", "p99_s": "P99Latency"}
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def prometheus_duration(seconds: float, owner: str = "prometheus_duration",
                        field: str = "seconds") -> str:
    """Seconds in Prometheus duration syntax: 300 -> ``5m``, 5400 -> ``1h30m``, 0.25 ->
    ``250ms``; whole milliseconds only (the finest a duration can say)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            not math.isfinite(seconds) or seconds < 0:
        raise fail(owner, field, "must be a finite number of seconds >= 0", seconds)
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6 * max(1.0, seconds):
        raise fail(owner, field, "must be whole milliseconds (Prometheus durations)", seconds)
    out = ""
    for unit, size in _UNITS:
        n, ms = divmod(ms, size)
        out += f"{n}{unit}" if n else ""
    return out or "0s"


def _camel(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)
    return "".join(w[:1].upper() + w[1:] for w in words)


def _instances(item, where: str) -> list[Alert]:
    if isinstance(item, Alert):
        return [item]
    rules = list(item) if isinstance(item, Sequence) and not isinstance(item, str) else []
    if not rules or not all(isinstance(r, Alert) for r in rules):
        raise fail("prometheus_rules", where, "must be an Alert or a non-empty list of Alerts "
                   "(one rule on several components)", item)
    first = rules[0]
    for i, r in enumerate(rules[1:], 1):
        if (r.metric, r.op, r.threshold, r.for_s, r.name) != \
                (first.metric, first.op, first.threshold, first.for_s, first.name):
            raise fail("prometheus_rules", f"{where}[{i}]", "must be the same rule as "
                       f"{where}[0] ({first.metric} {first.op} {first.threshold:g}, for_s="
                       f"{first.for_s:g}, name={first.name!r}) on another component", r)
    return rules


def alert_name(alert: Alert | Sequence[Alert]) -> str:
    """The ``alert:`` name of a rule: the Alert's ``name`` if it is a valid one, else that
    name in CamelCase (``"slow checkout"`` -> ``SlowCheckout``), else the rule's
    (``PostgresUtilizationHigh``, ``CheckoutBrowseP99LatencyHigh``)."""
    rules = _instances(alert, "alert")
    first = rules[0]
    if first.name is not None:
        name = first.name if ALERT_NAME.match(first.name) else _camel(first.name)
    else:
        where = "".join(_camel(r.component) for r in rules)
        what = _WORDS.get(first.metric) or _camel(first.metric)
        name = f"{where}{what}{'High' if first.op.startswith('>') else 'Low'}"
    return f"_{name}" if not name or name[0].isdigit() else name


def _key(alert: Alert, timeseries: pd.DataFrame | None, where: str) -> str:
    """The label naming the alert's series (``component`` or ``flow``), checked against the
    time series when there is one."""
    if alert.metric not in EXPORTS:
        raise ModelError(str(fail("prometheus_rules", f"{where}.metric", "must be a metric "
                                  f"capsim exports ({', '.join(EXPORTS)})", alert.metric))
                         + did_you_mean(alert.metric, EXPORTS))
    key = label_key(alert.metric)
    if timeseries is None:
        if key is None:
            raise fail("prometheus_rules", f"{where}.metric", f"is exported for stations and "
                       f"flows alike: pass timeseries= to say which {alert.component!r} is",
                       alert.metric)
        return key
    mine = timeseries[timeseries["name"] == alert.component]
    if mine.empty:
        names = list(dict.fromkeys(timeseries["name"]))
        raise ModelError(str(fail("prometheus_rules", f"{where}.component", "must be a station "
                                  f"or flow of the time series ({', '.join(names)})",
                                  alert.component)) + did_you_mean(alert.component, names))
    if alert.metric not in set(mine["metric"]):
        raise fail("prometheus_rules", f"{where}.metric", f"must be a metric "
                   f"{alert.component!r} has ({', '.join(dict.fromkeys(mine['metric']))})",
                   alert.metric)
    if key is None:
        key = "flow" if "p99_s" in set(mine["metric"]) else "component"
    return key


def _regex(value: str) -> str:
    """``value`` matched literally by an RE2 regex (every non-word ASCII character
    escaped)."""
    return "".join(f"\\{c}" if c.isascii() and not (c.isalnum() or c == "_") else c
                   for c in value)


def rule_expr(alert: Alert | Sequence[Alert], *, prefix: str = "capsim_",
              match: Mapping[str, str] | None = None,
              timeseries: pd.DataFrame | None = None) -> str:
    """The PromQL condition of a rule on the exported series:
    ``capsim_utilization_ratio{component="postgres"} > 0.8`` (several components: a
    ``=~"a|b"`` matcher). The threshold is written exactly (``repr``)."""
    return _expr(_instances(alert, "alert"), prefix, match, timeseries, "alert")


def _expr(rules: list[Alert], prefix: str, match: Mapping[str, str] | None,
          timeseries: pd.DataFrame | None, where: str) -> str:
    at = [where] if len(rules) == 1 else [f"{where}[{i}]" for i in range(len(rules))]
    keys = {_key(r, timeseries, w) for r, w in zip(rules, at, strict=True)}
    if len(keys) > 1:
        raise fail("prometheus_rules", where, "must be on stations only or on flows only",
                   [r.component for r in rules])
    key, first = keys.pop(), rules[0]
    extra = check_labels("prometheus_rules", "match", match)
    if len(rules) == 1:
        series = selector(first.metric, first.component, key, prefix=prefix, match=extra)
    else:
        names = "|".join(_regex(r.component) for r in dict.fromkeys(rules))
        pairs = [f'{key}=~"{escape_label(names)}"']
        if exported(first.metric).quantile is not None:
            pairs.append(f'quantile="{exported(first.metric).quantile}"')
        pairs += [f'{k}="{escape_label(v)}"' for k, v in extra.items()]
        series = f"{metric_name(first.metric, prefix)}{{{','.join(pairs)}}}"
    return f"{series} {first.op} {first.threshold!r}"


def _annotations(rules: list[Alert], budget: Budget | None, prefix: str) -> dict[str, str]:
    first = rules[0]
    where = ", ".join(r.component for r in rules)
    held = f" for {format_duration(first.for_s)}" if first.for_s > 0 else ""
    rule = f"{where} {first.metric} {first.op} {first.threshold:g}{held}"
    family = EXPORTS[first.metric]
    series = metric_name(first.metric, prefix) + (f" (quantile {family.quantile})"
                                                  if family.quantile else "")
    out = {"summary": f"{first.name}: {rule}" if first.name else rule,
           "description": f"{series} {first.op} "
                          f"{first.threshold:g}{held} on {where}, as simulated with capsim "
                          f"({HELP.get(family.name, first.metric).rstrip('.')})"}
    if budget is not None:
        out["slo"] = str(budget)
        limit = {m: v for _, m, v in budget.limits()}.get(first.metric)
        if limit is not None:
            out["description"] += f"; the budget allows {first.metric} <= {limit:g}"
    out["description"] += "."
    return out


def prometheus_rules(alerts: Alert | Sequence[Alert | Sequence[Alert]], *,
                     group: str = "capsim", prefix: str = "capsim_",
                     labels: Mapping[str, str] | None = None,
                     annotations: Mapping[str, str] | None = None,
                     budget: Budget | None = None, interval_s: float | None = None,
                     match: Mapping[str, str] | None = None,
                     timeseries: pd.DataFrame | None = None) -> str:
    """The alerts as a Prometheus rule file (YAML text), one group named ``group``.

    ``alerts``: Alerts (:func:`~capsim.monitor.slo_alerts` gives a budget's), each one rule;
    a list inside the list is one rule on several components. Each rule gets ``labels``
    (over :data:`DEFAULT_LABELS`: ``severity: warning``) and ``annotations`` (over a
    ``summary``, a ``description`` and, given ``budget``, the ``slo`` it protects).
    ``interval_s``: the group's evaluation interval (the window of the time series, to
    evaluate as capsim did; None: Prometheus' global one). ``match``: label matchers added
    to every expr (the ``labels`` the series were exported with). ``timeseries``: the series
    the alerts were simulated on, to check their components and metrics (and needed for a
    throughput alert, a metric of stations and flows alike).
    """
    import yaml

    if isinstance(alerts, Alert):
        alerts = [alerts]
    if not isinstance(alerts, Sequence) or isinstance(alerts, str) or not alerts:
        raise fail("prometheus_rules", "alerts", "must be a non-empty list of Alerts", alerts)
    if not isinstance(group, str) or not group.strip():
        raise fail("prometheus_rules", "group", "must be a non-empty string", group)
    if budget is not None and not isinstance(budget, Budget):
        raise fail("prometheus_rules", "budget", "must be a Budget", budget)
    rule_labels = {**DEFAULT_LABELS,
                   **check_labels("prometheus_rules", "labels", labels,
                                   (*RESERVED_LABELS, "alertname"))}
    extra_notes = check_labels("prometheus_rules", "annotations", annotations, ())
    out, seen = [], {}
    for i, item in enumerate(alerts):
        rules = _instances(item, f"alerts[{i}]")
        name = alert_name(rules)
        if name in seen:
            raise fail("prometheus_rules", f"alerts[{i}]", f"must have a name of its own: "
                       f"alerts[{seen[name]}] is also {name!r} (give one of them name=...)",
                       item)
        seen[name] = i
        rule: dict = {"alert": name,
                      "expr": _expr(rules, prefix, match, timeseries, f"alerts[{i}]")}
        if rules[0].for_s > 0:
            rule["for"] = prometheus_duration(rules[0].for_s, "prometheus_rules",
                                              f"alerts[{i}].for_s")
        rule["labels"] = dict(rule_labels)
        rule["annotations"] = {**_annotations(rules, budget, prefix), **extra_notes}
        out.append(rule)
    body: dict = {"name": group}
    if interval_s is not None:
        if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) \
                or not interval_s > 0:
            raise fail("prometheus_rules", "interval_s", "must be a number of seconds > 0",
                       interval_s)
        body["interval"] = prometheus_duration(interval_s, "prometheus_rules", "interval_s")
    body["rules"] = out
    head = "# Alerting rules simulated with capsim (capsim.monitor.prometheus_rules).\n"
    return head + yaml.safe_dump({"groups": [body]}, sort_keys=False, allow_unicode=True,
                                 width=10_000)


def write_prometheus_rules(alerts: Alert | Sequence[Alert | Sequence[Alert]],
                           path: str | Path, **options) -> Path:
    """Write :func:`prometheus_rules` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(prometheus_rules(alerts, **options), encoding="utf-8")
    return path

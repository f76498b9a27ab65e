"""Alerting rules on a run's time series, with Prometheus ``for:`` semantics.

An :class:`Alert` is a threshold rule on one metric of one station or flow, the way a
Prometheus alerting rule is written::

    Alert("utilization", "postgres", ">", 0.8, for_s=300)   # CPU > 80% for 5 minutes
    Alert("p99_s", "checkout", ">", 0.200, for_s=60)         # p99 > 200 ms for 1 minute

It is evaluated at each window end of :meth:`capsim.RunResult.timeseries` (the evaluation
interval is the window), as Prometheus evaluates a rule at each evaluation tick:

* the condition holds and the alert was inactive: it becomes **pending**, active since now;
* it holds and has been pending for at least ``for_s`` (``>=``: a condition that has held
  exactly ``for_s`` fires): it **fires**; with ``for_s=0`` it fires at the first evaluation;
* it does not hold (a missing value, NaN, does not hold either): the alert is **inactive**
  again, pending or firing; a firing alert is *resolved* at that evaluation. One window
  below the threshold resets the pending timer (flapping never fires).

:func:`states` gives the state at every window, :func:`evaluate` the firing intervals, and
:func:`lead_time` how long before users felt it (the SLO breach) an alert fired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capsim.errors import ModelError, check_name, check_number, fail
from capsim.model import Budget
from capsim.schema import is_async_flow
from capsim.units import format_clock, format_duration

__all__ = ["INTERVAL_COLUMNS", "OPS", "Alert", "LeadTime", "evaluate", "group_label",
           "lead_time", "lead_times", "rule_group", "slo_alerts", "states"]

OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
TIMESERIES_COLUMNS = ("time_s", "name", "metric", "value")
INTERVAL_COLUMNS = ["alert", "active_at_s", "fired_at_s", "resolved_at_s"]
_EPS = 1e-9  # seconds of floating-point slack on "held for exactly for_s"


@dataclass(frozen=True)
class Alert:
    """``metric`` of ``component`` (a station or flow name of the run) ``op`` ``threshold``,
    held for ``for_s`` seconds. ``name`` labels it in tables and plots (default: the rule)."""

    metric: str
    component: str
    op: str
    threshold: float
    for_s: float = 0.0
    name: str | None = None

    def __post_init__(self) -> None:
        owner = "Alert"
        check_name(owner, "metric", self.metric)
        check_name(owner, "component", self.component)
        if not isinstance(self.op, str) or self.op not in OPS:
            raise fail(owner, "op", f"must be one of {', '.join(map(repr, OPS))}", self.op)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise fail(owner, "threshold", "must be a finite number", self.threshold)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "for_s",
                           check_number(owner, "for_s", self.for_s, strict=False))
        if self.name is not None:
            check_name(owner, "name", self.name)

    @property
    def label(self) -> str:
        """``name`` if given, else the rule: ``postgres utilization > 0.8 for 5 min``."""
        return self.name if self.name is not None else self.rule

    @property
    def rule(self) -> str:
        held = f" for {format_duration(self.for_s)}" if self.for_s > 0 else ""
        return f"{self.component} {self.metric} {self.op} {self.threshold:g}{held}"

    def holds(self, values) -> np.ndarray:
        """The condition on each value (NaN, a window without data, never holds)."""
        return OPS[self.op](np.asarray(values, dtype=float), self.threshold)

    def __str__(self) -> str:
        return self.label


# -- reading the time series --------------------------------------------------------------------
def _series(alert: Alert, timeseries: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Window ends and values of the alert's metric, in time order."""
    if not isinstance(alert, Alert):
        raise ModelError(f"alerts: expected an Alert, got {alert!r}")
    if not isinstance(timeseries, pd.DataFrame):
        raise ModelError("alerts.timeseries: must be the DataFrame of RunResult.timeseries(), "
                         f"got {type(timeseries).__name__}")
    missing = [c for c in TIMESERIES_COLUMNS if c not in timeseries.columns]
    if missing:
        raise ModelError(f"alerts.timeseries: missing columns {missing}; expected "
                         f"{list(TIMESERIES_COLUMNS)} (RunResult.timeseries())")
    mine = timeseries[timeseries["name"] == alert.component]
    if mine.empty:
        names = list(dict.fromkeys(timeseries["name"]))
        raise ModelError(f"Alert({alert.label!r}).component: no station or flow "
                         f"{alert.component!r} in the time series; it has: {', '.join(names)}")
    rows = mine[mine["metric"] == alert.metric]
    if rows.empty:
        metrics = list(dict.fromkeys(mine["metric"]))
        raise ModelError(f"Alert({alert.label!r}).metric: {alert.component!r} has no metric "
                         f"{alert.metric!r}; it has: {', '.join(metrics)}")
    rows = rows.sort_values("time_s", kind="stable")
    times = rows["time_s"].to_numpy(dtype=float)
    if np.any(np.diff(times) <= 0):
        raise ModelError(f"Alert({alert.label!r}): the time series has several values of "
                         f"{alert.component} {alert.metric} at the same time (one run's time "
                         "series, please)")
    return times, rows["value"].to_numpy(dtype=float)


def _machine(times: np.ndarray, cond: np.ndarray, for_s: float
             ) -> tuple[list[str], list[tuple[float, float, float]]]:
    """Prometheus' rule state machine: the state at each evaluation, and the firing
    intervals as (active_at, fired_at, resolved_at or NaN)."""
    state, active_at, fired_at = "inactive", math.nan, math.nan
    out: list[str] = []
    intervals: list[tuple[float, float, float]] = []
    for t, ok in zip(times, cond, strict=True):
        if not ok:
            if state == "firing":
                intervals.append((active_at, fired_at, float(t)))
            state = "inactive"
        else:
            if state == "inactive":
                state, active_at = "pending", float(t)
            if state == "pending" and t - active_at >= for_s - _EPS * max(1.0, for_s):
                state, fired_at = "firing", float(t)
        out.append(state)
    if state == "firing":
        intervals.append((active_at, fired_at, math.nan))
    return out, intervals


def states(alert: Alert, timeseries: pd.DataFrame) -> pd.DataFrame:
    """The alert at every window end: time_s, value, holds (the condition), state
    (``inactive`` / ``pending`` / ``firing``)."""
    times, values = _series(alert, timeseries)
    cond = alert.holds(values)
    state, _ = _machine(times, cond, alert.for_s)
    return pd.DataFrame({"time_s": times, "value": values, "holds": cond, "state": state})


def evaluate(alert: Alert | Sequence[Alert], timeseries: pd.DataFrame) -> pd.DataFrame:
    """Firing intervals of ``alert`` over ``timeseries`` (``RunResult.timeseries()``).

    One row per time it fired: ``active_at_s`` (when the condition started holding: pending
    from then), ``fired_at_s`` (at least ``for_s`` later), ``resolved_at_s`` (the first window
    end where the condition no longer held; NaN if it was still firing at the end).

    A list of alerts is one rule with several instances (a Prometheus rule ``by
    (endpoint)``): it is firing while any instance is, and overlapping firings are one row.
    """
    rules, label = rule_group(alert, "evaluate.alert")
    spans = []
    for rule in rules:
        times, values = _series(rule, timeseries)
        spans += _machine(times, rule.holds(values), rule.for_s)[1]
    if len(rules) > 1:
        spans = _merge([(f, r, a) for a, f, r in spans], 0.0)
        spans = [(a, f, r) for f, r, a in spans]
    return pd.DataFrame([(label, *iv) for iv in spans], columns=INTERVAL_COLUMNS)


def _merge(spans: list[tuple[float, float, float]], within_s: float
           ) -> list[tuple[float, float, float]]:
    """Union of (start, end or NaN, tag) spans, joining those less than ``within_s`` apart;
    a merged span keeps the smallest tag (an earliest active_at)."""
    key = sorted((a, math.inf if math.isnan(b) else b, tag) for a, b, tag in spans)
    out: list[list[float]] = []
    for a, b, tag in key:
        if out and a <= out[-1][1] + within_s:
            out[-1][1] = max(out[-1][1], b)
            out[-1][2] = min(out[-1][2], tag)
        else:
            out.append([a, b, tag])
    return [(a, math.nan if math.isinf(b) else b, tag) for a, b, tag in out]


def rule_group(alert, owner: str = "alerts") -> tuple[list[Alert], str]:
    """An alert or a list of them (one rule on several components) as a list, and the label
    the group goes by; ``owner`` names the argument in the error."""
    if isinstance(alert, Alert):
        return [alert], alert.label
    rules = list(alert) if isinstance(alert, Sequence) and not isinstance(alert, str) else []
    if not rules or not all(isinstance(r, Alert) for r in rules):
        raise ModelError(f"{owner}: must be an Alert or a non-empty list of Alerts, "
                         f"got {alert!r}")
    return rules, group_label(rules)


def group_label(rules: Sequence[Alert]) -> str:
    """The label of one rule on several components: their common ``name`` if they share
    one, else ``browse, checkout p99_s > 0.2 for 1 min``."""
    first = rules[0]
    if len(rules) == 1:
        return first.label
    if first.name is not None and all(r.name == first.name for r in rules):
        return first.name
    same = all((r.metric, r.op, r.threshold, r.for_s, r.name) ==
               (first.metric, first.op, first.threshold, first.for_s, None) for r in rules)
    if not same:
        return " or ".join(r.label for r in rules)
    return f"{', '.join(r.component for r in rules)} " + first.rule.split(" ", 1)[1]


# -- lead time ----------------------------------------------------------------------------------
def slo_alerts(budget, timeseries: pd.DataFrame, for_s: float = 60.0) -> list[Alert]:
    """A :class:`~capsim.Budget` as alert rules on a time series: one per limit and flow
    (``flow="all"``: every request flow of the series, message-queue consumers excluded, as
    "every endpoint p99 < 200 ms"), and a utilization ceiling on every station.

    Only limits the time series has per window can be checked (p99_s, p95_s, utilization).
    """
    if not isinstance(budget, Budget):
        raise ModelError(f"slo_alerts.budget: must be a Budget, got {budget!r}")
    names = list(dict.fromkeys(timeseries["name"]))
    has = {n: set(timeseries.loc[timeseries["name"] == n, "metric"]) for n in names}
    flows = [n for n in names if "p99_s" in has[n] and not is_async_flow(n)]
    stations = [n for n in names if "utilization" in has[n]]
    if budget.flow != "all":
        if budget.flow not in flows:
            raise fail("slo_alerts", "budget.flow", f"must be a flow of the time series "
                       f"({', '.join(flows)})", budget.flow)
        flows = [budget.flow]
    out = []
    for kind, metric, limit in budget.limits():
        if kind == "component":
            out += [Alert(metric, s, ">", limit, for_s) for s in stations]
        elif metric in ("p99_s", "p95_s"):
            out += [Alert(metric, f, ">", limit, for_s) for f in flows]
        else:
            raise ModelError(f"slo_alerts.budget.{metric}: the time series has no {metric} "
                             "per window; budget p99_s, p95_s or utilization instead")
    return out


@dataclass(frozen=True)
class LeadTime:
    """How long before users felt it an alert fired, for one breach of the SLO.

    ``breach_at_s`` is when users started feeling it: the first window end of an SLO breach
    (its condition held from then, long enough to count). ``lead_s = breach_at_s -
    fired_at_s``: positive, the alert fired that long before; negative, it was late. NaN when
    the alert did not fire for this breach (``status`` "missed") or the SLO never broke
    ("no breach").
    """

    alert: str
    slo: str
    fired_at_s: float
    breach_at_s: float
    breach_end_s: float  # when the breach resolved by itself; NaN: it lasted to the end
    lead_s: float
    status: str  # "early", "on time", "late", "missed", "no breach"
    firings: int = 0  # times the alert fired over the whole series

    @property
    def fired(self) -> bool:
        return bool(np.isfinite(self.fired_at_s))

    @property
    def breach_s(self) -> float:
        """How long the breach lasted by itself (inf if it outlasted the data)."""
        if math.isnan(self.breach_at_s):
            return 0.0
        return math.inf if math.isnan(self.breach_end_s) else self.breach_end_s - \
            self.breach_at_s

    @property
    def detection_delay_s(self) -> float:
        """Alert time minus breach start: ``-lead_s`` (negative: a warning ahead of time);
        inf when the alert missed the breach (users, not the alert, reported it)."""
        if self.status == "missed":
            return math.inf
        return -self.lead_s

    def time_in_breach_s(self, response_s: float) -> float:
        """Time users spend in breach when responders fix it ``response_s`` after the alert.

        MTTR = detection delay + response time, counted from the breach start: nothing if
        the fix lands before the breach would have started, never longer than the breach
        lasted by itself (traffic fell, or the data ended).
        """
        response_s = check_number("LeadTime.time_in_breach_s", "response_s", response_s,
                                  strict=False)
        if self.status == "no breach":
            return 0.0
        return float(min(max(self.detection_delay_s + response_s, 0.0), self.breach_s))

    def words(self) -> str:
        """One sentence a person can act on."""
        if self.status == "no breach":
            fired = (f"it fired {self.firings} time{'s' if self.firings != 1 else ''} "
                     "(warnings that did not come true)" if self.firings else "it never fired")
            return f"The SLO ({self.slo}) never broke, so {self.alert} had nothing to catch: " \
                   f"{fired}."
        since = f"the breach started at t={format_clock(self.breach_at_s)} and " + (
            f"lasted {format_duration(self.breach_s)}" if math.isfinite(self.breach_s)
            else "was still on at the end")
        if self.status == "missed":
            return f"{self.alert} never fired during the breach ({self.slo}): users " \
                   f"found out first; {since}."
        when = {"early": f"{format_duration(self.lead_s)} before users felt it",
                "late": f"{format_duration(-self.lead_s)} after users felt it (late)",
                "on time": "as users started to feel it"}[self.status]
        return f"{self.alert} fired at t={format_clock(self.fired_at_s)}, {when}: {since} " \
               f"({self.slo})."


def _breaches(slo: Sequence[Alert], timeseries: pd.DataFrame, within_s: float
              ) -> list[tuple[float, float]]:
    """Union of the SLO rules' breaches as (start, end or NaN): start is when the condition
    started holding in a breach that went on to fire."""
    spans = []
    for rule in slo:
        for _, active, _, resolved in evaluate(rule, timeseries).itertuples(index=False):
            spans.append((active, resolved, 0.0))
    return [(a, b) for a, b, _ in _merge(spans, within_s)]


def _slo(slo, timeseries: pd.DataFrame, for_s: float) -> tuple[list[Alert], str]:
    if isinstance(slo, Budget):
        rules = slo_alerts(slo, timeseries, for_s)
        held = f" for {format_duration(for_s)}" if for_s > 0 else ""
        return rules, f"{slo}{held}"
    try:
        return rule_group(slo, "lead_time.slo")
    except ModelError:
        raise ModelError(f"lead_time.slo: must be an Alert, a list of Alerts or a Budget, "
                         f"got {slo!r}") from None


def lead_times(alert: Alert | Sequence[Alert], slo, timeseries: pd.DataFrame, *,
               slo_for_s: float = 60.0, merge_within_s: float = 0.0) -> list[LeadTime]:
    """The alert's lead time on every breach of ``slo`` (one entry: "no breach" if none).

    ``slo`` says when users feel it: an :class:`Alert` (``p99_s > 0.2 for 60 s``), several
    (a breach while any fires), or a :class:`~capsim.Budget` (its limits held ``slo_for_s``
    seconds, every flow; see :func:`slo_alerts`). Breaches less than ``merge_within_s`` apart
    count as one (one incident, not a flapping series of them). ``alert`` may be a list (one
    rule, several instances: see :func:`evaluate`).

    The alert counts for a breach if it is firing when the breach starts (early: lead > 0,
    or on time) or fires during it (late: lead < 0); a warning that fired and resolved before
    the breach does not count.
    """
    slo_for_s = check_number("lead_time", "slo_for_s", slo_for_s, strict=False)
    within = check_number("lead_time", "merge_within_s", merge_within_s, strict=False)
    rules, slo_label = _slo(slo, timeseries, slo_for_s)
    fired = evaluate(alert, timeseries)
    label = rule_group(alert, "lead_time.alert")[1]
    starts = fired["fired_at_s"].to_numpy()
    ends = fired["resolved_at_s"].fillna(math.inf).to_numpy()
    breaches = _breaches(rules, timeseries, within)
    common = {"alert": label, "slo": slo_label, "firings": len(fired)}
    if not breaches:
        first = float(starts[0]) if starts.size else math.nan
        return [LeadTime(fired_at_s=first, breach_at_s=math.nan, breach_end_s=math.nan,
                         lead_s=math.nan, status="no breach", **common)]
    out = []
    for b0, b1 in breaches:
        end = math.inf if math.isnan(b1) else b1
        standing = np.flatnonzero((starts <= b0) & (ends > b0))
        during = np.flatnonzero((starts > b0) & (starts < end))
        if standing.size:
            at = float(starts[standing[-1]])
        elif during.size:
            at = float(starts[during[0]])
        else:
            out.append(LeadTime(fired_at_s=math.nan, breach_at_s=b0, breach_end_s=b1,
                                lead_s=math.nan, status="missed", **common))
            continue
        lead = b0 - at
        status = "early" if lead > 0 else "late" if lead < 0 else "on time"
        out.append(LeadTime(fired_at_s=at, breach_at_s=b0, breach_end_s=b1, lead_s=lead,
                            status=status, **common))
    return out


def lead_time(alert: Alert | Sequence[Alert], slo, timeseries: pd.DataFrame, *,
              slo_for_s: float = 60.0, merge_within_s: float = 0.0,
              breach: int = 0) -> LeadTime:
    """How long before users felt it (the ``breach``-th SLO breach, the first by default)
    ``alert`` fired; see :func:`lead_times`."""
    every = lead_times(alert, slo, timeseries, slo_for_s=slo_for_s,
                       merge_within_s=merge_within_s)
    if every[0].status == "no breach":
        return every[0]
    if not -len(every) <= breach < len(every):
        raise fail("lead_time", "breach", f"must index one of the {len(every)} breaches",
                   breach)
    return every[breach]

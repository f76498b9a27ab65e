"""The performance budget, and the one rule that says whether an estimate meets it.

It lives with the model because every layer asks it: a scenario file states one, the monitor
turns it into alert rules, experiments and scaling comparisons judge runs against it. The rule
is stated once here (``judged``, ``meets``): a verdict compares the upper confidence bound
with the limit when the budget judges on it and there is one, the mean otherwise; a value that
cannot be judged (NaN) never meets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from capsim.errors import ModelError, check_number, fail
from capsim.model.components import MessageQueue
from capsim.model.lowering import async_flow_name

LATENCY_LIMITS = ("p99_s", "p95_s", "mean_s", "error_rate")
BOUNDS = ("upper", "mean")
BACKLOG_LOAD = 1.0  # a consumer group offered this much of its capacity never catches up


@dataclass(frozen=True)
class Check:
    """One thing a load must satisfy: a budget limit on one curve of one system."""

    kind: str  # "flow", "component", "async" (a queue's async p99) or "backlog"
    metric: str  # p99_s ... utilization, async_p99_s, backlog
    name: str  # the flow ("<queue> (async)" for "async"), the queue of a backlog, "" else
    limit: float
    label: str  # what a report calls it (``breaks_on``)


def backlog_label(queue: MessageQueue) -> str:
    return f"backlog of {queue.name} (consumer: {queue.consumer.name})"


@dataclass(frozen=True)
class Budget:
    """Performance budget: each limit is optional; a point meets the budget when all hold.

    Latency limits apply to ``flow`` ("all" pools every flow); ``utilization`` is a ceiling
    for every component (0.8 = alarm at 80%). ``async_p99_s`` limits each MessageQueue's
    "<queue> (async)" p99, publish to processed. A consumer group offered 100% or more of its
    capacity (a backlog that grows for as long as the load lasts) breaks the budget unless
    ``allow_backlog``. ``bound`` is what a verdict judges on: the upper confidence bound
    ("upper", a gate that trusts its CIs) or the mean ("mean").
    """

    p99_s: float | None = None
    p95_s: float | None = None
    mean_s: float | None = None
    error_rate: float | None = None
    utilization: float | None = None
    flow: str = "all"
    async_p99_s: float | None = None
    allow_backlog: bool = False
    bound: str = "upper"

    def __post_init__(self) -> None:
        limits = self.limits()
        if not limits and self.async_p99_s is None:
            raise ModelError("Budget: give at least one limit, e.g. Budget(p99_s=0.200)")
        for _, metric, value in limits:
            check_number("Budget", metric, value, strict=metric != "error_rate")
        if self.async_p99_s is not None:
            check_number("Budget", "async_p99_s", self.async_p99_s)
        if not isinstance(self.allow_backlog, bool):
            raise fail("Budget", "allow_backlog", "must be true or false", self.allow_backlog)
        if self.bound not in BOUNDS:
            raise fail("Budget", "bound", "must be 'upper' or 'mean'", self.bound)

    def limits(self) -> list[tuple[str, str, float]]:
        """(kind, metric, limit) triples of the request flows and components: kind "flow" or
        "component" (the async limits are ``async_p99_s`` and ``allow_backlog``)."""
        out = [("flow", m, getattr(self, m)) for m in LATENCY_LIMITS
               if getattr(self, m) is not None]
        if self.utilization is not None:
            out.append(("component", "utilization", self.utilization))
        return out

    def checks(self, system) -> list[Check]:
        """The limits, then per MessageQueue of ``system`` its async p99 and its backlog: an
        async flow is part of every verdict, because the request latency never shows its
        backlog."""
        out = [Check(kind, metric, self.flow if kind == "flow" else "", limit, metric)
               for kind, metric, limit in self.limits()]
        for q in system.components:
            if not isinstance(q, MessageQueue):
                continue
            flow = async_flow_name(q)
            if self.async_p99_s is not None:
                out.append(Check("async", "async_p99_s", flow, self.async_p99_s,
                                 f"async_p99_s of {flow}"))
            out.append(Check("backlog", "backlog", q.name, BACKLOG_LOAD, backlog_label(q)))
        return out

    def judged(self, mean, ci_high=math.nan):
        """The value a verdict compares with a limit: ``ci_high`` when the budget judges on
        the upper bound and there is one (not NaN), else ``mean``. Elementwise on arrays."""
        mean_a, high_a = np.asarray(mean, dtype=float), np.asarray(ci_high, dtype=float)
        out = np.where((self.bound == "upper") & ~np.isnan(high_a), high_a, mean_a)
        return float(out) if out.ndim == 0 else out

    def meets(self, estimate: Callable[[str, str], tuple[float, float]],
              slack: float = 0.0) -> bool:
        """True when every flow and component limit holds.

        ``estimate(kind, metric)`` gives ``(mean, ci_high)`` of the budget's flow for kind
        "flow" and of the busiest component for "component" (``ci_high`` NaN: no interval).
        ``slack`` lets a value exceed its limit by that fraction (a screen that knows its
        estimate is approximate). Async limits depend on the system; experiments add them.
        """
        for kind, metric, limit in self.limits():
            mean, high = estimate(kind, metric)
            if not self.judged(mean, high) <= limit * (1.0 + slack):
                return False
        return True

    def __str__(self) -> str:
        parts = [f"{m}<={v:g}" for _, m, v in self.limits()]
        if self.async_p99_s is not None:
            parts.append(f"async_p99_s<={self.async_p99_s:g}")
        if self.flow != "all":
            parts.append(f"flow={self.flow}")
        if self.allow_backlog:
            parts.append("allow_backlog")
        if self.bound != "upper":
            parts.append(f"bound={self.bound}")
        return "Budget(" + ", ".join(parts) + ")"

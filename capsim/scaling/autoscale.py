"""Autoscaling a horizontal tier: instances, p99 and cost over time, and what booting costs.

``simulate_autoscaling(system, "app", Horizontal(instance, count), cs.Autoscaler("app", ...),
workload)`` deploys the tier with a pool of ``autoscaler.max_instances`` boxes (``count`` is
ignored: the autoscaler decides), runs the target-tracking policy under a time-varying workload
(``OpenWorkload(..., profile=Diurnal() * Spike(...))``) and returns an ``AutoscaleResult``:

* ``timeline()``: per window, the offered rate, instances paid for (booting ones included) and
  serving, their utilization, the p99 of the requests that arrived in the window and the cost;
* ``summary()``: cost, instance-hours, the cost of a fixed fleet sized for the busiest moment,
  and the **p99 damage while instances boot**: the p99 of requests that arrived during a
  scale-out's lag (the measurement interval that triggered it, then the boot, until the new
  boxes serve), against the p99 of the rest;
* ``plot()``: the three panels over time, boot periods shaded.

A box is paid for from the moment the autoscaler asks for it (cloud billing starts at launch)
until it is stopped; the balancer's hourly charge is added.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from capsim.engine import RunResult, simulate
from capsim.errors import ModelError, check_number
from capsim.model import Autoscaler, Budget, Call, Flow, OpenWorkload, Service, System
from capsim.scaling.options import Horizontal, apply

__all__ = ["AutoscaleResult", "simulate_autoscaling", "tier_alone"]


def tier_alone(system: System, component: str) -> System:
    """Just ``component``, visited once by every request: the tier an autoscaler manages, cut
    out of a bigger model when what lies behind it is sized apart (and simulating it all
    through a day would cost more than it tells)."""
    comp = system.component(component)
    if not isinstance(comp, Service):
        raise ModelError(f"tier_alone: {comp.label} is not a Service")
    return System([comp], [Flow("request", 1.0, [Call(component)])],
                  name=f"{system.name}/{component}")


def _step_integral(times: np.ndarray, values: np.ndarray, t0: float, t1: float) -> float:
    """Integral over [t0, t1] of the right-continuous step function (times, values)."""
    edges = np.clip(np.append(times, np.inf), t0, t1)
    return float(np.sum(values * np.diff(edges)))


@dataclass(frozen=True)
class AutoscaleResult:
    """One autoscaled run and its readings (see the module notes)."""

    run: RunResult
    component: str
    option: Horizontal
    autoscaler: Autoscaler
    workload: OpenWorkload
    window_s: float
    budget: Budget | None = None
    warmup_s: float = 0.0

    # -- instances over time ---------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        """Each change: time_s, instances (paid, booting included), serving."""
        h = self.run.instances()
        h = h[h["component"] == self.component].drop(columns="component")
        return h.groupby("time_s", as_index=False).last()

    def boot_periods(self) -> list[tuple[float, float]]:
        """(start, end) of each scale-out's lag: from the start of the measurement interval
        that triggered it (``interval_s`` before the decision) until every box asked for
        serves. Overlapping lags merge."""
        h = self.history()
        booting = (h["instances"] > h["serving"]).to_numpy()
        times = np.append(h["time_s"].to_numpy(dtype=float), self.run.duration_s)
        spans, start = [], None
        for k, b in enumerate(booting):
            if b and start is None:
                start = max(times[k] - self.autoscaler.interval_s, 0.0)
            if not b and start is not None:
                spans.append((start, times[k]))
                start = None
        if start is not None:
            spans.append((start, times[-1]))
        out: list[tuple[float, float]] = []
        for a, b in spans:
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(b, out[-1][1]))
            else:
                out.append((a, b))
        return out

    def _booting(self, t: np.ndarray) -> np.ndarray:
        inside = np.zeros(t.shape, dtype=bool)
        for a, b in self.boot_periods():
            inside |= (t >= a) & (t < b)
        return inside

    # -- tables ------------------------------------------------------------------------------
    def timeline(self) -> pd.DataFrame:
        """Per window (``time_s`` = its end): offered rate, instances paid and serving (time
        averages), utilization of the serving workers, p99 of the requests that arrived in it
        and finished by the end of the run (NaN if none did), cost of the window and
        cumulative cost."""
        run, w = self.run, self.window_s
        edges = np.arange(0.0, run.duration_s + w / 2, w)
        edges[-1] = run.duration_s
        h = self.history()
        times, paid = h["time_s"].to_numpy(float), h["instances"].to_numpy(float)
        serving = h["serving"].to_numpy(float)
        arrival = run.arrival_s
        latency = run.finish_s - run.arrival_s
        bins = np.searchsorted(edges, arrival, side="right") - 1
        ts = run.timeseries(w)
        busy = ts[(ts["metric"] == "utilization")
                  & ts["name"].str.startswith(f"{self.component}[")]
        servers = self.option.instance.vcpus
        busy_workers = busy.groupby("time_s")["value"].sum() * servers
        price = self.option.instance.price_per_hour_usd / 3600.0
        rows = []
        for k in range(len(edges) - 1):
            t0, t1 = edges[k], edges[k + 1]
            span = t1 - t0
            paid_avg = _step_integral(times, paid, t0, t1) / span
            serving_avg = _step_integral(times, serving, t0, t1) / span
            x = latency[bins == k]
            near = busy_workers.index[np.argmin(np.abs(busy_workers.index - t1))] \
                if len(busy_workers) else None
            util = (busy_workers.loc[near] / (serving_avg * servers)
                    if near is not None and serving_avg > 0 else np.nan)
            cost = (paid_avg * price + self.option.balancer_usd_per_hour / 3600.0) * span
            rows.append({"time_s": t1,
                         "offered_per_s": self.workload.mean_rate_per_s(t0, t1),
                         "instances": paid_avg, "serving": serving_avg, "utilization": util,
                         "p99_s": float(np.percentile(x, 99)) if x.size else np.nan,
                         "requests": int(x.size), "cost_usd": cost})
        out = pd.DataFrame(rows)
        out["cost_cumulative_usd"] = out["cost_usd"].cumsum()
        return out

    def summary(self) -> pd.Series:
        """Cost against a fixed fleet sized for the busiest moment, and latency while boxes
        boot against the rest (``p99_damage_s`` is the difference), after ``warmup_s``."""
        run, t0 = self.run, self.warmup_s
        hours = (run.duration_s - t0) / 3600.0
        h = self.history()
        times, paid = h["time_s"].to_numpy(float), h["instances"].to_numpy(float)
        instance_hours = _step_integral(times, paid, t0, run.duration_s) / 3600.0
        seen = paid[np.append(times[1:], np.inf) > t0]  # the levels in force after warm-up
        price = self.option.instance.price_per_hour_usd
        lb = self.option.balancer_usd_per_hour * hours
        cost = instance_hours * price + lb
        fixed = int(seen.max()) * price * hours + lb
        keep = run.arrival_s >= t0
        latency = (run.finish_s - run.arrival_s)[keep]
        booting = self._booting(run.arrival_s[keep])
        p99 = (lambda x: float(np.percentile(x, 99)) if x.size else np.nan)  # noqa: E731
        out = {"duration_h": hours, "cost_usd": cost, "instance_hours": instance_hours,
               "mean_instances": instance_hours / hours, "min_instances": int(seen.min()),
               "max_instances": int(seen.max()),
               "scale_events": int((np.diff(paid)[times[1:] >= t0] != 0).sum()),
               "fixed_fleet_cost_usd": fixed, "saving_vs_fixed": 1.0 - cost / fixed,
               "p99_s": p99(latency), "p99_booting_s": p99(latency[booting]),
               "p99_steady_s": p99(latency[~booting]),
               "share_requests_booting": float(booting.mean()) if booting.size else 0.0}
        out["p99_damage_s"] = out["p99_booting_s"] - out["p99_steady_s"]
        if self.budget is not None and self.budget.p99_s is not None:
            over = latency > self.budget.p99_s
            out["share_over_budget_booting"] = float(over[booting].mean()) if booting.any() \
                else 0.0
            out["share_over_budget_steady"] = float(over[~booting].mean())
        return pd.Series(out)

    # -- figure ------------------------------------------------------------------------------
    def plot(self, fig=None, *, start_hour: float = 0.0):
        """Offered load and instances; p99 per window; cost (autoscaled vs fixed fleet).
        ``start_hour`` labels the time axis as a clock (simulated t = 0 at that hour)."""
        from capsim.report.autoscaling import autoscale_figure

        return autoscale_figure(self, fig, start_hour=start_hour)

def simulate_autoscaling(system: System, component: str, option: Horizontal,
                         autoscaler: Autoscaler, workload: OpenWorkload, *, duration_s: float,
                         seed: int = 0, window_s: float = 300.0, warmup_s: float = 0.0,
                         budget: Budget | None = None) -> AutoscaleResult:
    """Run ``component`` of the reference model as an autoscaled pool of ``option.instance``
    boxes (``autoscaler.max_instances`` of them, ``min_instances`` started) under
    ``workload`` for ``duration_s``. The fleet starts at its minimum: ``warmup_s`` leaves
    that first scale-out out of the summary (the timeline keeps it, shaded)."""
    if not isinstance(option, Horizontal):
        raise ModelError(f"simulate_autoscaling.option: must be Horizontal, got {option!r}")
    if not isinstance(autoscaler, Autoscaler) or autoscaler.component != component:
        raise ModelError(f"simulate_autoscaling.autoscaler: must be an Autoscaler for "
                         f"{component!r}, got {autoscaler!r}")
    check_number("simulate_autoscaling", "window_s", window_s)
    check_number("simulate_autoscaling", "warmup_s", warmup_s, strict=False)
    pool = replace(option, count=autoscaler.max_instances)
    deployed = replace(apply(system, component, pool), autoscalers=(autoscaler,))
    run = simulate(deployed, workload, duration_s, 0.0, seed,
                   sample_interval_s=min(window_s, autoscaler.interval_s) / 2)
    return AutoscaleResult(run, component, pool, autoscaler, workload, window_s, budget,
                           warmup_s)

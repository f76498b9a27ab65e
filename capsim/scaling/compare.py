"""Compare scaling options for one tier: capacity, latency, cost, and what one failure leaves.

``compare(system, component, vertical=[...], horizontal=[...], workload=target)`` deploys each
option on the reference model (see ``capsim.scaling.options``) and fills one row per option:

* ``capacity_users``: users at which the busiest station reaches 100% (arithmetic, exact);
* ``saturation_users``: users at which the budget breaks, by the analytic twin (instant; see
  ``twin_view`` for how it sees load-balanced pools);
* ``p99_at_target_s``, ``p99_at_2x_peak_s``: simulated (mean over replications);
* ``cost_per_hour_usd`` and ``usd_per_hour_per_1k_users`` (cost over the thousands of users
  served within budget, ``saturation_users``);
* ``pages_served_one_down``, ``capacity_one_down_users`` and ``p99_one_down_s``: **simulated**
  with one box down for the whole run (``options.one_down``). A probe runs the failed system
  at 40% of its healthy capacity: the share of its pages that finish (of those finished,
  dropped or still inside at the end) is ``pages_served_one_down`` (0 when the only box is
  gone; below 1 when a shard without replicas is), and when they do, the capacity left is
  the utilization law on what it
  measured, ``probe rate / utilization of the busiest component`` (busy workers over the
  workers of its boxes still up; 0 otherwise: some traffic has nothing left to serve it).
  The p99 is simulated at the target load, or ``inf`` when the capacity left is below the
  target (no steady state);
* ``headroom_at_2x_peak``: ``saturation_users / (2 x target) - 1`` (negative: the budget
  breaks before twice the peak). The "2x" columns use ``peak_factor`` (2 by default).

Simulations use common random numbers (replication r has the same seed for every option), run
in parallel processes, and are sized by ``requests`` per run rather than by time.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from capsim.analytic import solve
from capsim.engine import simulate
from capsim.engine.station import COUNTERS
from capsim.errors import ModelError, check_int, check_number
from capsim.experiment import Budget
from capsim.model import Database, OpenWorkload, Service, System
from capsim.scaling.options import (
    Option,
    apply,
    capacity_per_s,
    database_as_services,
    one_down,
)
from capsim.schema import ALL_FLOWS

__all__ = ["ComparisonResult", "compare", "twin_saturation_users", "twin_view"]

POOLED = ("least_connections", "power_of_two")
PROBE_LOAD = 0.4  # the failure probe runs at this share of the healthy capacity
SERVED = 0.9  # a probe finishing fewer of its pages than this has traffic nothing serves
WARMUP_SHARE = 0.1


# ----------------------------------------------------------------------------- the twin


def twin_view(system: System) -> System:
    """The model the analytic twin is asked about: load-balanced pools seen as shared queues.

    A tier of N boxes behind a least-connections (or power-of-two) balancer behaves close to
    one queue in front of all N x c workers (join-the-shortest-queue); the twin's own reading
    of it is N even random splits, which is pessimistic and costs one route per combination of
    boxes (thousands, for a replicated app in front of replicated shards). So such a Service
    becomes one pool of N x c workers, and a Database's replicas (same read policies) one read
    pool per shard next to the shard's primary. Round-robin and random balancing, outages and
    autoscaled tiers are left as they are.
    """
    touched = {o.component for o in system.outages} | {a.component for a in system.autoscalers}
    for c in system.components:
        if (isinstance(c, Database) and c.read_replicas and c.read_policy in POOLED
                and c.name not in touched):
            try:
                system = database_as_services(system, c.name)
            except ModelError:  # full scans: keep the database as it is
                continue
    pooled = []
    for c in system.components:
        if (isinstance(c, Service) and c.instances > 1 and c.balancing in POOLED
                and c.name not in touched):
            qc = None if c.queue_capacity is None else c.queue_capacity * c.instances
            c = replace(c, servers=c.servers * c.instances, instances=1, queue_capacity=qc)
        pooled.append(c)
    return replace(system, components=tuple(pooled))


def _flow_value(latency: pd.DataFrame, budget: Budget, metric: str) -> float:
    lat = latency.set_index("flow")
    name = budget.flow if budget.flow in lat.index else (
        ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0])
    return float(lat.loc[name, metric])


def twin_meets(system: System, workload: OpenWorkload, budget: Budget,
               slack: float = 0.0) -> tuple[bool, float]:
    """(meets, p99 or first latency limit's value) by the twin of ``twin_view(system)``;
    ``slack`` lets a value exceed its limit by that fraction and still pass."""
    twin = solve(twin_view(system), workload)
    if not twin.stable:
        return False, math.inf
    ok, first = True, math.nan
    lat = twin.latency()
    for kind, metric, limit in budget.limits():
        if kind == "flow":
            value = _flow_value(lat, budget, metric)
        else:
            value = float(twin.components()["utilization"].max())
        if math.isnan(first):
            first = value
        if not value <= limit * (1.0 + slack):
            ok = False
    return ok, first


def twin_saturation_users(system: System, workload: OpenWorkload, budget: Budget, *,
                          rel_tol: float = 0.005) -> float:
    """Users at which the twin (of ``twin_view``) first breaks ``budget``: a bisection below
    the capacity bound, to ``rel_tol``. 0 when it breaks even at 1% of capacity."""
    view = twin_view(system)
    cap = capacity_per_s(view) / workload.requests_per_user_s
    if not math.isfinite(cap):
        raise ModelError("twin_saturation_users: the system has no finite capacity")

    def meets(users: float) -> bool:
        return twin_meets(view, workload.with_users(users), budget)[0]

    lo, hi = 0.01 * cap, cap
    if not meets(lo):
        return 0.0
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    return lo


# ----------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class _Job:
    key: tuple
    system: System
    workload: OpenWorkload
    duration_s: float
    warmup_s: float
    seed: np.random.SeedSequence


def _run_job(job: _Job) -> dict:
    """One run, summarised: the pooled flow's latency, throughput, errors, max utilization."""
    run = simulate(job.system, job.workload, job.duration_s, job.warmup_s, job.seed)
    lat = run.latency(observed=True).set_index("flow")
    row = lat.loc[ALL_FLOWS] if ALL_FLOWS in lat.index else lat.iloc[0]
    comp = run.components()
    finished, dropped = run.arrival_s.size, run.drop_arrival_s.size
    present = int(run.samples[-1, :, COUNTERS.index("present")].sum())  # still in at the end
    return {"key": job.key, "mean_s": row["mean_s"], "p95_s": row["p95_s"],
            "p99_s": row["p99_s"], "throughput_per_s": row["throughput_per_s"],
            "error_rate": row["error_rate"], "count": int(row["count"]),
            "served_share": finished / max(finished + dropped + present, 1),
            "max_utilization": float(comp["utilization"].max()),
            "bottleneck_utilization": _bottleneck_utilization(comp), "wall_s": run.wall_s}


def _bottleneck_utilization(comp: pd.DataFrame) -> float:
    """The busiest component's utilization over the stations that worked (a box that is down
    did nothing, and its workers are not capacity): busy workers / working workers."""
    worked = comp[(comp["utilization"] > 0) & np.isfinite(comp["servers"])]
    if worked.empty:
        return 0.0
    name = worked["component"].str.replace(r"\[\d+\]$", "", regex=True)
    busy = (worked["utilization"] * worked["servers"]).groupby(name).sum()
    return float((busy / worked["servers"].groupby(name).sum()).max())


def _seeds(seed: int, replications: int) -> list[np.random.SeedSequence]:
    root = np.random.SeedSequence(seed)
    return [np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, r))
            for r in range(replications)]


def _jobs(key: tuple, system: System, workload: OpenWorkload, requests: int,
          seeds: list) -> list[_Job]:
    duration = max(requests / workload.arrival_rate_per_s, 10.0)
    return [_Job((*key, r), system, workload, duration, WARMUP_SHARE * duration, s)
            for r, s in enumerate(seeds)]


def _run_all(jobs: list[_Job], executor: Executor | None) -> pd.DataFrame:
    if not jobs:
        return pd.DataFrame(columns=["key"])
    rows = list(executor.map(_run_job, jobs)) if executor else [_run_job(j) for j in jobs]
    return pd.DataFrame(rows)


def _executor(executor, processes, stack: ExitStack) -> Executor | None:
    if executor is not None:
        return executor
    workers = processes or os.cpu_count() or 1
    if workers <= 1:
        return None
    return stack.enter_context(ProcessPoolExecutor(workers))


def _sim_meets(row, budget: Budget) -> bool:
    ok = True
    for kind, metric, limit in budget.limits():
        value = row["max_utilization"] if kind == "component" else row[metric]
        ok &= bool(value <= limit)
    return ok


# ----------------------------------------------------------------------------- compare


def _as_target(workload) -> OpenWorkload:
    if isinstance(workload, OpenWorkload):
        return workload
    try:
        loads = list(workload)
    except TypeError:
        raise ModelError(f"compare.workload: must be an OpenWorkload or a list of them (a "
                         f"growth), got {workload!r}") from None
    if not loads or not all(isinstance(w, OpenWorkload) for w in loads):
        raise ModelError("compare.workload: a growth must be a non-empty list of "
                         "OpenWorkloads")
    return max(loads, key=lambda w: w.users)


@dataclass(frozen=True)
class ComparisonResult:
    """One row per option (``table()``), the simulated runs behind it (``runs``), a figure."""

    component: str
    budget: Budget
    workload: OpenWorkload
    options: tuple[Option, ...]
    rows: pd.DataFrame
    runs: pd.DataFrame
    wall_s: float

    def table(self) -> pd.DataFrame:
        return self.rows.copy()

    def plot(self, fig=None):
        """Capacity against cost, p99 (target, 2x peak, one box down), capacity left with one
        box down and cost per 1,000 users, one bar per option."""
        return _comparison_figure(self, fig)

    def __str__(self) -> str:
        t = self.rows
        return (f"{len(t)} options for {self.component!r} at {self.workload.users:,.0f} users, "
                f"{self.budget}; {len(self.runs)} simulated runs, {self.wall_s:.1f} s")


def compare(system: System, component: str, vertical: Sequence[Option] = (),
            horizontal: Sequence[Option] = (), *, workload, budget: Budget | None = None,
            options: Sequence[Option] = (), peak_factor: float = 2.0,
            replications: int = 2, requests: int = 20_000, seed: int = 0,
            processes: int | None = None, executor: Executor | None = None) -> ComparisonResult:
    """Deploy ``component`` of the reference model ``system`` as each option and compare.

    ``workload`` is the target (peak) load, or a growth (``cs.growth(...)``) whose largest
    point is the target. ``vertical``, ``horizontal`` and ``options`` are concatenated (the
    split is for reading). ``budget`` defaults to p99 <= 200 ms. Each simulated scenario runs
    ``replications`` times with about ``requests`` page requests each (the capacity probe half
    as many).
    """
    started = time.perf_counter()
    target = _as_target(workload)
    budget = budget or Budget(p99_s=0.200)
    check_int("compare", "replications", replications, minimum=1)
    check_int("compare", "requests", requests, minimum=100)
    check_number("compare", "peak_factor", peak_factor)
    opts = tuple(vertical) + tuple(horizontal) + tuple(options)
    if not opts:
        raise ModelError("compare: give at least one option (vertical=[...], horizontal=[...])")
    labels = [o.label for o in opts]
    if len(set(labels)) != len(labels):
        raise ModelError(f"compare: options must differ, got {labels}")
    rate_user = target.requests_per_user_s
    seeds = _seeds(seed, replications)
    rows, jobs = [], []
    for i, opt in enumerate(opts):
        deployed = apply(system, component, opt)
        failure = one_down(system, component, opt)
        cap = capacity_per_s(deployed)
        cap_down = 0.0 if failure.degraded is None else capacity_per_s(failure.degraded)
        sat = twin_saturation_users(deployed, target, budget)
        peak = target.with_users(peak_factor * target.users)
        rows.append({"option": opt.label, "kind": opt.kind, "instance": opt.instance.name,
                     "boxes": opt.boxes, "vcpus_per_box": opt.instance.vcpus,
                     "memory_gib_per_box": opt.instance.memory_gib,
                     "cost_per_hour_usd": opt.cost_per_hour_usd,
                     "capacity_users": cap / rate_user, "saturation_users": sat,
                     "failure": failure.description})
        if target.arrival_rate_per_s < cap:
            jobs += _jobs((i, "target"), deployed, target, requests, seeds)
        if peak.arrival_rate_per_s < cap:
            jobs += _jobs((i, "peak"), deployed, peak, requests, seeds)
        if target.arrival_rate_per_s < cap_down:
            jobs += _jobs((i, "one_down"), failure.system, target, requests, seeds)
        probe = target.with_users(PROBE_LOAD * cap / rate_user)
        jobs += _jobs((i, "probe"), failure.system, probe, requests // 2, seeds)
    with ExitStack() as stack:
        runs = _run_all(jobs, _executor(executor, processes, stack))
    runs[["option", "scenario", "replication"]] = pd.DataFrame(runs["key"].tolist(),
                                                              index=runs.index)
    runs = runs.drop(columns="key")
    runs["option"] = [labels[i] for i in runs["option"]]
    mean = runs.groupby(["option", "scenario"]).mean(numeric_only=True)

    def get(label: str, scenario: str, metric: str) -> float:
        return float(mean.loc[(label, scenario), metric]) if (label, scenario) in mean.index \
            else math.inf

    for row in rows:
        label = row["option"]
        row["usd_per_hour_per_1k_users"] = (row["cost_per_hour_usd"] / (row["saturation_users"]
                                            / 1e3) if row["saturation_users"] > 0 else math.inf)
        row["p99_at_target_s"] = get(label, "target", "p99_s")
        row["p99_at_2x_peak_s"] = get(label, "peak", "p99_s")
        row["headroom_at_2x_peak"] = row["saturation_users"] / (peak_factor * target.users) - 1
        probe_rate = PROBE_LOAD * row["capacity_users"] * rate_user
        served = get(label, "probe", "served_share")
        busiest = get(label, "probe", "bottleneck_utilization")
        down = probe_rate / busiest / rate_user if served >= SERVED and busiest > 0 else 0.0
        row["pages_served_one_down"] = served
        row["capacity_one_down_users"] = down
        row["capacity_left_one_down"] = down / row["capacity_users"]
        row["p99_one_down_s"] = get(label, "one_down", "p99_s")
        for scenario, col in (("target", "meets_budget"), ("peak", "meets_budget_at_2x_peak"),
                              ("one_down", "meets_budget_one_down")):
            if (label, scenario) in mean.index:
                row[col] = _sim_meets(mean.loc[(label, scenario)], budget)
            else:
                row[col] = False
    columns = ["option", "kind", "instance", "boxes", "vcpus_per_box", "memory_gib_per_box",
               "cost_per_hour_usd", "capacity_users", "saturation_users",
               "usd_per_hour_per_1k_users", "p99_at_target_s", "meets_budget",
               "p99_at_2x_peak_s", "meets_budget_at_2x_peak", "headroom_at_2x_peak", "failure",
               "pages_served_one_down", "capacity_one_down_users", "capacity_left_one_down",
               "p99_one_down_s", "meets_budget_one_down"]
    table = pd.DataFrame(rows)[columns]
    return ComparisonResult(component, budget, target, opts, table, runs,
                            time.perf_counter() - started)



# ----------------------------------------------------------------------------- the figure

KIND_STYLE = {"vertical": ("o", "tab:blue", "vertical (one box)"),
              "horizontal": ("s", "tab:orange", "horizontal (N boxes)"),
              "database": ("D", "tab:green", "replicas / shards")}
SCENARIOS = (("p99_at_target_s", "at the target", "tab:blue"),
             ("p99_at_2x_peak_s", "at 2x peak", "tab:purple"),
             ("p99_one_down_s", "one box down", "tab:red"))


def _label_points(ax, xs, ys, labels) -> None:
    """Label each point beside it, trying a few places until the label overlaps neither
    another label nor a point."""
    fig = ax.figure
    fig.draw_without_rendering()  # settle the layout first: positions in pixels are final
    renderer = fig.canvas.get_renderer()
    placed = []
    points = [ax.transData.transform((x, y)) for x, y in zip(xs, ys, strict=True)]
    offsets = [(7, -3, "left"), (7, 7, "left"), (7, -13, "left"), (-7, -3, "right"),
               (-7, 7, "right"), (-7, -13, "right"), (7, 16, "left"), (7, -22, "left")]
    for x, y, label in zip(xs, ys, labels, strict=True):
        for k, (dx, dy, ha) in enumerate(offsets):
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                               fontsize=8.5, color="0.2", ha=ha, va="center")
            box = text.get_window_extent(renderer).expanded(1.02, 1.1)
            clash = any(box.overlaps(b) for b in placed) or any(
                box.contains(qx, qy) for qx, qy in points)
            if not clash or k == len(offsets) - 1:
                placed.append(box)
                break
            text.remove()


def budget_text(budget: Budget) -> str:
    """``p99 <= 200 ms``-style words for a budget."""
    names = {"p99_s": "p99", "p95_s": "p95", "mean_s": "mean"}
    parts = []
    for _, metric, limit in budget.limits():
        if metric in names:
            parts.append(f"{names[metric]} \u2264 {limit * 1e3:.0f} ms")
        elif metric == "error_rate":
            parts.append(f"errors \u2264 {limit:.1%}")
        else:
            parts.append(f"utilization \u2264 {limit:.0%}")
    return ", ".join(parts)


def _comparison_figure(result: ComparisonResult, fig=None):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    t = result.rows
    n = len(t)
    if fig is None:
        fig = plt.figure(figsize=(14, 5.2 + 0.42 * n), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[5.0, 1.2 + 0.42 * n])
    ax_cap = fig.add_subplot(grid[0, :])
    ax_p99 = fig.add_subplot(grid[1, 0])
    ax_left = fig.add_subplot(grid[1, 1], sharey=ax_p99)
    ax_cost = fig.add_subplot(grid[1, 2], sharey=ax_p99)
    target = result.workload.users
    words = budget_text(result.budget)
    colors = [KIND_STYLE[k][1] for k in t["kind"]]

    # capacity against cost
    for kind, (marker, color, name) in KIND_STYLE.items():
        sel = t[t["kind"] == kind].sort_values("cost_per_hour_usd")
        if sel.empty:
            continue
        ax_cap.plot(sel["cost_per_hour_usd"], sel["saturation_users"], marker=marker,
                    color=color, ms=8, lw=1.2, ls="-" if kind == "vertical" else "none",
                    mec="white", label=name)
    top_users = max(t["saturation_users"].max(), 2 * target) * 1.08
    for users, style, name in ((target, "--", "target"), (2 * target, ":", "2x peak")):
        ax_cap.axhline(users, color="0.35", ls=style, lw=1)
        ax_cap.annotate(f"{name}: {users:,.0f} users", (0, users),
                        xycoords=("axes fraction", "data"), xytext=(4, 3),
                        textcoords="offset points", fontsize=8.5, color="0.3")
    ax_cap.set_xlabel("cost of the tier (\\$ per hour)")
    ax_cap.set_ylabel(f"users within budget\n({words}, twin)")
    ax_cap.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax_cap.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"\\${x:.2f}"))
    ax_cap.set_ylim(0, top_users)
    ax_cap.set_xlim(0, t["cost_per_hour_usd"].max() * 1.3)
    ax_cap.grid(alpha=0.3)
    ax_cap.legend(loc="lower right", fontsize=9)
    ax_cap.set_title("What each option buys: users served within budget against its cost")
    _label_points(ax_cap, t["cost_per_hour_usd"], t["saturation_users"], t["option"])

    # p99 per scenario, log scale; no steady state drawn to the edge, hatched
    y = np.arange(n)
    h = 0.27
    values = np.concatenate([t[c].to_numpy(dtype=float) for c, _, _ in SCENARIOS]) * 1e3
    finite = values[np.isfinite(values)]
    limit_ms = (result.budget.p99_s or 0.2) * 1e3
    hi = max(finite.max() if finite.size else limit_ms, limit_ms) * 2.5
    lo = min(finite.min() if finite.size else limit_ms, limit_ms) / 2.5
    handles = []
    for k, (col, name, color) in enumerate(SCENARIOS):
        v = t[col].to_numpy(dtype=float) * 1e3
        inf = ~np.isfinite(v)
        ax_p99.barh(y[~inf] + (k - 1) * h, v[~inf], h, color=color)
        ax_p99.barh(y[inf] + (k - 1) * h, np.full(inf.sum(), hi), h, color="white",
                    edgecolor=color, hatch="////", lw=0.6)
        handles.append(Patch(color=color, label=name))
    handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="////",
                         label="no steady state"))
    if result.budget.p99_s is not None:
        handles.append(ax_p99.axvline(limit_ms, color="k", ls="--", lw=1.2,
                                      label=f"budget {limit_ms:.0f} ms"))
    ax_p99.set_xscale("log")
    ax_p99.set_xlim(lo, hi)
    ax_p99.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_p99.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax_p99.xaxis.set_minor_formatter(NullFormatter())
    ax_p99.set_yticks(y, t["option"])
    ax_p99.set_ylim(n - 0.5, -0.5)
    ax_p99.set_xlabel("p99 latency (ms, simulated)")
    ax_p99.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.2 / n),
                  ncol=3, fontsize=8, frameon=False)
    ax_p99.grid(axis="x", alpha=0.3)
    ax_p99.set_title("p99: target, 2x peak, one box down")

    # capacity left with one box down
    left = t["capacity_left_one_down"].to_numpy(dtype=float)
    ax_left.barh(y, left, 0.6, color=colors)
    for yi, v, users, served in zip(y, left, t["capacity_one_down_users"],
                                    t["pages_served_one_down"], strict=True):
        if v > 0:
            text = f"{v:.0%}: {users:,.0f} users"
        elif served > 0:
            text = f"0: {1 - served:.0%} of pages wait for the lost box"
        else:
            text = "0: every page waits for the lost box"
        ax_left.annotate(text, (max(v, 0), yi), xytext=(4, 0), textcoords="offset points",
                         va="center", fontsize=8.5)
    ax_left.set_xlim(0, 1.6)
    ax_left.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax_left.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax_left.tick_params(labelleft=False)
    ax_left.set_xlabel("capacity left with one box down (simulated)")
    ax_left.grid(axis="x", alpha=0.3)
    ax_left.set_title("Failure: what one lost box leaves")

    # cost per 1,000 users within budget
    per_k = t["usd_per_hour_per_1k_users"].to_numpy(dtype=float)
    ax_cost.barh(y, np.where(np.isfinite(per_k), per_k, 0.0), 0.6, color=colors)
    for yi, v, c in zip(y, per_k, t["cost_per_hour_usd"], strict=True):
        text = (f"\\${v:.3f}  (\\${c:.2f}/h)" if np.isfinite(v) else "never within budget")
        ax_cost.annotate(text, (v if np.isfinite(v) else 0, yi), xytext=(4, 0),
                         textcoords="offset points", va="center", fontsize=8.5)
    finite_k = per_k[np.isfinite(per_k)]
    ax_cost.set_xlim(0, (finite_k.max() if finite_k.size else 1.0) * 1.7)
    ax_cost.tick_params(labelleft=False)
    ax_cost.set_xlabel("\\$ per hour per 1,000 users within budget")
    ax_cost.grid(axis="x", alpha=0.3)
    ax_cost.set_title("Cost of capacity")
    fig.suptitle(f"Scaling {result.component!r} at {target:,.0f} users ({words})", fontsize=13)
    return fig

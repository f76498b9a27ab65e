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
through the experiment runner (local processes, a dask cluster, a result store), and are sized
by ``requests`` per run rather than by time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from capsim.analytic import solve
from capsim.engine import simulate
from capsim.errors import ModelError, check_int, check_number
from capsim.experiment.runner import Job, Runner, replication_seeds
from capsim.experiment.stats import mean_ci
from capsim.experiment.store import ResultStore
from capsim.experiment.twin import twin_saturation
from capsim.model import Budget, Database, OpenWorkload, Service, System
from capsim.scaling.options import (
    Option,
    apply,
    capacity_per_s,
    database_as_services,
    one_down,
)
from capsim.schema import ALL_FLOWS

__all__ = ["ComparisonResult", "compare", "meets_budget", "run_scenarios", "scenario_jobs",
           "twin_meets", "twin_saturation_users", "twin_view"]

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


def twin_meets(system: System, workload: OpenWorkload, budget: Budget,
               slack: float = 0.0) -> tuple[bool, float]:
    """(meets, p99 or first latency limit's value) by the twin of ``twin_view(system)``;
    ``slack`` lets a value exceed its limit by that fraction and still pass."""
    twin = solve(twin_view(system), workload)
    if not twin.stable:
        return False, math.inf
    lat = twin.latency().set_index("flow")
    flow = budget.flow if budget.flow in lat.index else (
        ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0])

    def estimate(kind: str, metric: str) -> tuple[float, float]:
        if kind == "flow":
            return float(lat.loc[flow, metric]), math.nan
        return float(twin.components()["utilization"].max()), math.nan

    first = budget.limits()[:1] or [("flow", "p99_s", math.nan)]  # async-only: show the p99
    return budget.meets(estimate, slack), estimate(*first[0][:2])[0]


def twin_saturation_users(system: System, workload: OpenWorkload, budget: Budget, *,
                          rel_tol: float = 0.005) -> float:
    """Users at which the twin of ``twin_view(system)`` first breaks ``budget``, to
    ``rel_tol`` (``capsim.experiment.twin_saturation``, in fractional users); about 0 when
    it breaks at any load."""
    return twin_saturation(twin_view(system), workload, budget, tol=rel_tol,
                           whole_users=False)


# ----------------------------------------------------------------------------- simulation


def scenario_jobs(key: tuple, system: System, workload: OpenWorkload, requests: int,
                  seed: int, replications: int) -> list[Job]:
    """``replications`` runs of ``system`` at ``workload`` with about ``requests`` page
    requests each; replication r has the same seed for every option and scenario (common
    random numbers: the differences between options are not noise)."""
    duration = max(requests / workload.arrival_rate_per_s, 10.0)
    return [Job((*key, r), summarise_run, "scaling-run", system, workload, duration, s,
                WARMUP_SHARE * duration)
            for r, s in enumerate(replication_seeds(seed, replications))]


def summarise_run(job: Job) -> pd.DataFrame:
    """One run, one row: the pooled flow's latency, throughput, errors, max utilization."""
    run = simulate(job.system, job.workload, job.duration_s, job.warmup_s, job.seed)
    lat = run.latency(observed=True).set_index("flow")
    row = lat.loc[ALL_FLOWS] if ALL_FLOWS in lat.index else lat.iloc[0]
    comp = run.components()
    finished, dropped = run.arrival_s.size, run.drop_arrival_s.size
    present = int(run.counter("present")[-1].sum())  # still in at the end
    owner = dict(zip(run.station_names, run.station_components, strict=True))
    return pd.DataFrame([{
        "mean_s": row["mean_s"], "p95_s": row["p95_s"], "p99_s": row["p99_s"],
        "throughput_per_s": row["throughput_per_s"], "error_rate": row["error_rate"],
        "count": int(row["count"]), "served_share": finished / max(finished + dropped + present,
                                                                   1),
        "max_utilization": float(comp["utilization"].max()),
        "bottleneck_utilization": _bottleneck_utilization(comp, owner), "wall_s": run.wall_s}])


def _bottleneck_utilization(comp: pd.DataFrame, owner: dict[str, str]) -> float:
    """The busiest component's utilization over the stations that worked (a box that is down
    did nothing, and its workers are not capacity): busy workers / working workers."""
    worked = comp[(comp["utilization"] > 0) & np.isfinite(comp["servers"])]
    if worked.empty:
        return 0.0
    name = worked["component"].map(owner)
    busy = (worked["utilization"] * worked["servers"]).groupby(name).sum()
    return float((busy / worked["servers"].groupby(name).sum()).max())


def run_scenarios(jobs: list[Job], runner: Runner, names: Sequence[str]) -> pd.DataFrame:
    """One row per run, the parts of its job's key as columns ``names``."""
    if not jobs:
        return pd.DataFrame(columns=list(names))
    done = runner.run(jobs)
    rows = pd.concat(done.values(), ignore_index=True)
    keys = pd.DataFrame(list(done), columns=list(names))
    return pd.concat([keys, rows], axis=1)


def meets_budget(runs: pd.DataFrame, budget: Budget, confidence: float = 0.95) -> bool:
    """The budget's verdict on the replications of one scenario: each limit on the mean
    over them or on its upper confidence bound, as ``budget.bound`` says (one replication:
    the mean)."""
    def estimate(kind: str, metric: str) -> tuple[float, float]:
        values = runs["max_utilization" if kind == "component" else metric]
        mean, half = mean_ci(values.to_numpy(dtype=float), confidence)
        return mean, mean + half

    return budget.meets(estimate)


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
        from capsim.report.scaling import comparison_figure

        return comparison_figure(self, fig)

    def __str__(self) -> str:
        t = self.rows
        return (f"{len(t)} options for {self.component!r} at {self.workload.users:,.0f} users, "
                f"{self.budget}; {len(self.runs)} simulated runs, {self.wall_s:.1f} s")


def compare(system: System, component: str, vertical: Sequence[Option] = (),
            horizontal: Sequence[Option] = (), *, workload, budget: Budget | None = None,
            options: Sequence[Option] = (), peak_factor: float = 2.0,
            replications: int = 2, requests: int = 20_000, seed: int = 0,
            processes: int | None = None, executor: Executor | None = None,
            cluster: str | None = None, store: ResultStore | str | None = None,
            progress: bool = False) -> ComparisonResult:
    """Deploy ``component`` of the reference model ``system`` as each option and compare.

    ``workload`` is the target (peak) load, or a growth (``cs.growth(...)``) whose largest
    point is the target. ``vertical``, ``horizontal`` and ``options`` are concatenated (the
    split is for reading). ``budget`` defaults to p99 <= 200 ms. Each simulated scenario runs
    ``replications`` times with about ``requests`` page requests each (the capacity probe half
    as many). A verdict (``meets_budget...``) judges each limit as ``budget.bound`` says: the
    upper confidence bound over the replications by default, the mean with ``bound="mean"``.
    Runs go where ``capsim.experiment.runner.Runner`` sends them (``executor``, ``cluster``,
    ``processes``) and finished ones are kept in ``store``.
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
            jobs += scenario_jobs((i, "target"), deployed, target, requests, seed, replications)
        if peak.arrival_rate_per_s < cap:
            jobs += scenario_jobs((i, "peak"), deployed, peak, requests, seed, replications)
        if target.arrival_rate_per_s < cap_down:
            jobs += scenario_jobs((i, "one_down"), failure.system, target, requests, seed,
                                 replications)
        probe = target.with_users(PROBE_LOAD * cap / rate_user)
        jobs += scenario_jobs((i, "probe"), failure.system, probe, requests // 2, seed,
                             replications)
    with Runner(executor=executor, cluster=cluster, processes=processes, store=store,
                progress=progress, desc="compare") as runner:
        runs = run_scenarios(jobs, runner, ["option", "scenario", "replication"])
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
            mine = runs[(runs["option"] == label) & (runs["scenario"] == scenario)]
            row[col] = not mine.empty and meets_budget(mine, budget)
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
# drawn in capsim.report.scaling (figures live in report/, imported when one is drawn)


def budget_text(budget: Budget) -> str:
    """``p99 <= 200 ms``-style words for a budget (kept here for ``capsim.scaling``)."""
    from capsim.report.scaling import budget_text as words

    return words(budget)

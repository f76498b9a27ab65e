"""Compare scaling options for one tier: the table a capacity review needs.

``compare(system, component, vertical=[...], horizontal=[...], workload=target)`` deploys each
option on the reference model (see ``capsim.scaling.options``) and fills one row per option
(``table()``, every column below) and a short ranked view of it (``summary()``):

* ``cost_per_hour_usd`` and ``cost_per_month_usd`` (``HOURS_PER_MONTH`` = 730 h);
* ``capacity_users``: users at which the busiest station reaches 100% (arithmetic, exact);
* ``users_at_budget``: users at which the budget breaks, **simulated**
  (``capsim.experiment.saturation.find_saturation``, started from the twin's estimate), with
  ``users_at_budget_low`` / ``users_at_budget_high``, the search's bracket: the highest load
  simulated that met the budget and the lowest that broke it (each verdict on the mean over
  the replications of that load, which are added, up to a few, until their 95% CI no longer
  straddles the limit). The crossing lies between them as far as those verdicts are right:
  it is a bracket, not a confidence interval of the crossing itself. Its high end is never
  above ``capacity_users`` (past it no load has a steady state, so the budget breaks for
  sure); ``users_at_budget`` is its middle. ``users_at_budget_status`` says how the search
  ended: ``bracketed``; ``broken_at_lowest`` (even the lowest load tried breaks it:
  ``users_at_budget`` is NaN, ``users_at_budget_high`` that load); ``holds_at_highest`` (no
  load tried broke it: NaN, ``users_at_budget_low`` the highest tried); ``twin``
  (``simulate_saturation=False``: the column is the twin's estimate, no bracket);
  ``twin_never_breaks`` (the twin finds no load that breaks the budget: nothing to start a
  search from). The search's lowest load has ``SATURATION_MIN_REQUESTS`` pages per run.
  ``saturation_runs_adequate`` is False when some of the search's runs were too short for
  their tail estimates even at ``SATURATION_MAX_EXTENSION`` x their length (those p99s are
  biased low, so ``users_at_budget`` may be too high; ``result.saturation[option]`` has the
  search's evaluations);
* ``twin_users_at_budget``: the analytic twin's estimate of the same (instant; see
  ``twin_view`` for how it sees load-balanced pools);
* ``usd_per_month_per_1k_users``: cost per month over the thousands of ``users_at_budget``;
* ``p99_at_target_s``, ``p99_at_2x_peak_s``: simulated (mean over replications), with the
  verdicts ``meets_budget`` and ``meets_budget_at_2x_peak``;
* ``headroom_at_2x_peak``: ``users_at_budget / (peak_factor x target) - 1`` (negative: the
  budget breaks before the peak). The "2x" columns use ``peak_factor`` (2 by default);
* ``pages_served_one_down``, ``capacity_one_down_users``, ``p99_one_down_s`` and
  ``survives_one_failure``: **simulated** with one box down for the whole run
  (``options.one_down``). A probe runs the failed system at 40% of its healthy capacity: the
  share of its pages that finish (of those finished, dropped or still inside at the end) is
  ``pages_served_one_down`` (0 when the only box is gone; below 1 when a shard without
  replicas is), and when they do, the capacity left is the utilization law on what it
  measured, ``throughput / utilization of the busiest station`` (busy workers over the
  workers still up; the boxes of a balanced Service counted together, every other station on
  its own), never more than the healthy capacity nor the failed system's arithmetic one; 0
  when some traffic has nothing left to serve it. The p99 is simulated at the target load, or
  ``inf`` when the capacity left is below the target (no steady state);
  ``survives_one_failure`` is the budget's verdict on that run;
* ``meets_every_check``: the budget at the target, at the peak and with one box down.

Simulations use common random numbers (replication r has the same seed for every option), run
through the experiment runner (local processes, a dask cluster, a result store), and are sized
by ``requests`` per run rather than by time unless ``duration_s`` is given.
"""

from __future__ import annotations

import math
import textwrap
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from capsim.analytic import solve
from capsim.engine import simulate
from capsim.errors import ModelError, RunLengthWarning, check_int, check_number
from capsim.experiment.runner import Job, Runner, replication_seeds
from capsim.experiment.saturation import SaturationSearch, find_saturation
from capsim.experiment.stats import mean_ci
from capsim.experiment.store import ResultStore
from capsim.experiment.twin import twin_saturation
from capsim.model import Budget, Database, Failover, OpenWorkload, Outage, Service, System
from capsim.scaling.catalogue import HOURS_PER_MONTH
from capsim.scaling.options import (
    DatabaseOptions,
    Failure,
    Option,
    apply,
    capacity_per_s,
    database_as_services,
    one_down,
)
from capsim.schema import ALL_FLOWS

__all__ = ["HOURS_PER_MONTH", "ComparisonResult", "compare", "meets_budget", "run_scenarios",
           "scenario_jobs", "twin_meets", "twin_saturation_users", "twin_view"]

POOLED = ("least_connections", "power_of_two")
PROBE_LOAD = 0.4  # the failure probe runs at this share of the healthy capacity
SERVED = 0.9  # a probe finishing fewer of its pages than this has traffic nothing serves
WARMUP_SHARE = 0.1
# the saturation search's effort (compare keeps it modest: a review compares many options)
SATURATION_SHARE = 0.25  # a search run has this share of ``requests`` at the twin's estimate
SATURATION_MAX_REPLICATIONS = 4  # per load, while the CI straddles the limit
SATURATION_MAX_POINTS = 8  # loads simulated per search
SATURATION_MAX_EXTENSION = 4.0  # a load whose runs are too short for their tail: at most 4x
SATURATION_MIN_REQUESTS = 200  # the lowest load searched has this many pages per run
MIN_RUN_S = 10.0
SCALING_RUN = "scaling-run/2"  # the store key's kind: /2 since the bottleneck is per station

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
                  seed: int, replications: int, duration_s: float | None = None) -> list[Job]:
    """``replications`` runs of ``system`` at ``workload`` with about ``requests`` page
    requests each (or ``duration_s`` simulated seconds each, when given); replication r has
    the same seed for every option and scenario (common random numbers: the differences
    between options are not noise)."""
    duration = (max(requests / workload.arrival_rate_per_s, MIN_RUN_S) if duration_s is None
                else float(duration_s))
    return [Job((*key, r), summarise_run, SCALING_RUN, system, workload, duration, s,
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
    services = {c.name for c in job.system.components if isinstance(c, Service)}
    return pd.DataFrame([{
        "mean_s": row["mean_s"], "p95_s": row["p95_s"], "p99_s": row["p99_s"],
        "throughput_per_s": row["throughput_per_s"], "error_rate": row["error_rate"],
        "count": int(row["count"]), "served_share": finished / max(finished + dropped + present,
                                                                   1),
        "max_utilization": float(comp["utilization"].max()),
        "bottleneck_utilization": _bottleneck_utilization(comp, owner, services),
        "wall_s": run.wall_s}])


def _bottleneck_utilization(comp: pd.DataFrame, owner: dict[str, str],
                            services: set[str] = frozenset()) -> float:
    """The busiest station's utilization over the stations that worked (a box that is down
    did nothing, and its workers are not capacity): busy workers / working workers.

    The boxes of one Service (``web[0]``, ``web[1]``, ...) share its load through the
    balancer, so they are counted together; every other station on its own. (Counting every
    station of a component together averaged a Database's busy primary with its idle
    replicas, or its shards, and overstated the capacity left.)"""
    worked = comp[(comp["utilization"] > 0) & np.isfinite(comp["servers"])]
    if worked.empty:
        return 0.0
    name = worked["component"].map(lambda n: owner.get(n, n) if owner.get(n, n) in services
                                   else n)
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


STATUS_TWIN = "twin"  # simulate_saturation=False: users_at_budget is the twin's estimate
STATUS_TWIN_NEVER = "twin_never_breaks"  # nothing to start a search from


FAILOVER_MEASURES = {"failover_write_errors": "write_errors",
                     "failover_writes_waited": "writes_waited",
                     "failover_lost_writes": "lost_writes", "failover_recovery_s": "recovery_s",
                     "failover_p99_during_s": "p99_during_s",
                     "failover_error_rate": "error_rate"}


def _failover_columns(row: Mapping, option: Option, failure: Failure | None,
                      runs: pd.DataFrame) -> dict:
    """What the primary's failover cost, by simulation (mean over the ``failover`` runs: the
    primary fails mid-run at the target load and a replica is promoted): writes refused,
    held and lost, seconds without a primary, the p99 of the pages that arrived meanwhile and
    the run's error rate. NaN for an option without a failover."""
    mine = runs[runs["scenario"] == "failover"]
    if mine.empty:
        return dict.fromkeys(FAILOVER_MEASURES, math.nan)
    return {col: float(mine[measure].mean()) for col, measure in FAILOVER_MEASURES.items()}


def failover_jobs(key: tuple, deployed: System, component: str, target: OpenWorkload,
                  requests: int, seed: int, replications: int) -> list[Job]:
    """Runs with ``component``'s primary failing mid-run, when it is a database with a
    failover: about ``requests / 2`` pages before the failure (at least 20 s), then long
    enough for four times the detection and promotion (at least 60 s)."""
    from capsim.scaling.failover import failover_run

    db = next((c for c in deployed.components if c.name == component), None)  # or a host
    if not isinstance(db, Database) or db.failover is None:
        return []
    fail_at = max(0.5 * requests / target.arrival_rate_per_s, 20.0)
    duration = fail_at + max(4 * db.failover.recovery_s, 60.0)
    failing = replace(deployed, outages=(*deployed.outages,
                                         Outage(component, fail_at, duration)))
    return [Job((*key, r), failover_run, "failover-run", failing, target, duration, s,
                min(WARMUP_SHARE * duration, fail_at / 2),
                settings=(fail_at, db.failover.recovery_s))
            for r, s in enumerate(replication_seeds(seed, replications))]


@dataclass(frozen=True)
class ComparisonResult:
    """One row per option (``table()``), a ranked view (``summary()``), the simulated runs
    behind them (``runs``), each option's saturation search (``saturation``), figures."""

    component: str
    budget: Budget
    workload: OpenWorkload
    options: tuple[Option, ...]
    rows: pd.DataFrame
    runs: pd.DataFrame
    wall_s: float
    peak_factor: float = 2.0
    catalogue_label: str = ""
    replications: int = 0
    simulated_saturation: bool = True
    saturation: Mapping[str, SaturationSearch | None] = field(default_factory=dict, repr=False)

    def table(self) -> pd.DataFrame:
        """Every column, one row per option in the order given (see the module notes)."""
        return self.rows.copy()

    def caption(self) -> str:
        """What ``summary()`` shows: the load, the budget, the catalogue, and which numbers
        are simulated and which are the analytic twin's."""
        from capsim.report.scaling import budget_text

        users, pf = self.workload.users, self.peak_factor
        prices = self.catalogue_label or "catalogue not named"
        head = (f"{len(self.rows)} options for {self.component!r} at {users:,.0f} users "
                f"(peak {pf:g}x: {pf * users:,.0f}), budget {budget_text(self.budget)}; "
                f"prices: {prices}; a month is {HOURS_PER_MONTH} h.")
        reps = f"{self.replications} replication{'s' * (self.replications != 1)}"
        if self.simulated_saturation:
            users_text = ("users at budget: simulated (find_saturation, started from the "
                          "analytic twin's estimate); the interval is the search's bracket, "
                          "the highest load simulated that met the budget to the lowest that "
                          "broke it, not a confidence interval; the twin's own estimate is "
                          "table()'s twin_users_at_budget.")
        else:
            users_text = ("users at budget: the analytic twin's estimate (not simulated: "
                          "simulate_saturation=False), no interval.")
        bound = ("the upper 95% confidence bound" if self.budget.bound == "upper"
                 else "the mean")
        sims = (f"Simulated: p99 at target (mean of {reps}), the verdicts at the target and "
                f"at {pf:g}x peak, and survives one failure (one box down for the whole "
                f"run, at the target), each judged on {bound}.")
        order = (f"Ranked: options meeting the budget at the target and at {pf:g}x peak "
                 "first, cheapest first; then the rest, cheapest first.")
        lines = [head, users_text, sims, order]
        if "failover_recovery_s" in self.rows and self.rows["failover_recovery_s"].notna().any():
            lines.append(f"Failover (simulated, mean of {reps}): the primary fails mid-run at "
                         "the target; writes refused (or held) until a replica is promoted, "
                         "and those committed but not yet replicated, lost.")
        return "\n".join(lines)

    def summary(self) -> pd.DataFrame:
        """The short ranked table a capacity review reads, rounded, units in the headers.

        Columns: option, ``$/month``, ``users at budget`` (3 significant figures) and its
        ``users interval``, ``p99 at target (ms)``, ``meets target & Nx peak``, ``survives one
        failure``, ``$/month per 1k users``. Options that meet the budget at the target and at
        ``peak_factor`` x it come first, cheapest first; then the rest, cheapest first.
        ``users at budget`` is simulated (``find_saturation``) unless the comparison ran
        with ``simulate_saturation=False`` (then it is the twin's), p99 and the verdicts are
        simulated; ``caption()`` (also ``summary().attrs["caption"]``) says so, with the
        catalogue's label."""
        t = self.rows
        peak = f"{self.peak_factor:g}x"
        ok = (t["meets_budget"].astype(bool) & t["meets_budget_at_2x_peak"].astype(bool))
        order = sorted(range(len(t)), key=lambda i: (not ok.iloc[i],
                                                     float(t["cost_per_month_usd"].iloc[i])))
        rows = []
        for i in order:
            r = t.iloc[i]
            survives = r["survives_one_failure"]
            rows.append({
                "option": r["option"],
                "$/month": int(round(float(r["cost_per_month_usd"]))),
                "users at budget": _sig(r["users_at_budget"]),
                "users interval": _interval_text(r),
                "p99 at target (ms)": _round(r["p99_at_target_s"] * 1e3, 1),
                f"meets target & {peak} peak": bool(ok.iloc[i]),
                "survives one failure": (bool(survives) if isinstance(survives, (bool, np.bool_))
                                         else "unknown"),
                "$/month per 1k users": _round(r["usd_per_month_per_1k_users"], 2)})
            if "failover_write_errors" in t and t["failover_write_errors"].notna().any():
                rows[-1]["failover (primary dies)"] = _failover_text(r)
        out = pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="rank"))
        out.attrs["caption"] = self.caption()
        return out

    def summary_text(self) -> str:
        """``caption()`` and ``summary()`` as text to print: thousands separated, yes/no,
        "n/a" for a number the search could not give, "no steady state" for an infinite p99."""
        def users(v):
            return "n/a" if math.isnan(v) else _users_text(v)

        def p99(v):
            return "no steady state" if math.isinf(v) else "n/a" if math.isnan(v) \
                else f"{v:,.1f}"

        def per_k(v):
            return "n/a" if math.isnan(v) else "never" if math.isinf(v) else f"{v:,.2f}"

        def yes(v):
            return v if isinstance(v, str) else "yes" if v else "no"

        table = self.summary()
        formatters = {"$/month": lambda v: f"{v:,}", "users at budget": users,
                      "p99 at target (ms)": p99, "$/month per 1k users": per_k}
        formatters.update({c: yes for c in table.columns
                           if c.startswith("meets") or c.startswith("survives")})
        caption = "\n".join(textwrap.fill(line, 100) for line in self.caption().split("\n"))
        return caption + "\n\n" + table.to_string(formatters=formatters, na_rep="n/a")

    def frontier(self) -> pd.DataFrame:
        """The budget frontier: the options no other option beats on both users at budget
        and cost per month (the Pareto front; options with no users estimate left out),
        fewest users first. The cheapest option serving x users is the first of them whose
        ``users_at_budget`` reaches x."""
        from capsim.report.scaling import pareto_front

        t = self.rows
        keep = pareto_front(t["users_at_budget"].to_numpy(dtype=float),
                            t["cost_per_month_usd"].to_numpy(dtype=float))
        return t.iloc[keep][["option", "cost_per_month_usd", "users_at_budget",
                             "users_at_budget_low", "users_at_budget_high",
                             "meets_every_check"]].reset_index(drop=True)

    def plot(self, fig=None):
        """Capacity against cost, p99 (target, 2x peak, one box down), capacity left with one
        box down and cost per 1,000 users, one bar per option."""
        from capsim.report.scaling import comparison_figure

        return comparison_figure(self, fig)

    def frontier_plot(self, ax=None):
        """Cost per month against users at budget (its interval as error bars), one labelled
        point per option, those meeting every check marked apart from those failing one, the
        budget frontier as a staircase and the target x peak factor as a vertical line."""
        from capsim.report.scaling import frontier_figure

        return frontier_figure(self, ax)

    def __str__(self) -> str:
        t = self.rows
        where = f", prices: {self.catalogue_label}" if self.catalogue_label else ""
        return (f"{len(t)} options for {self.component!r} at {self.workload.users:,.0f} users, "
                f"{budget_text(self.budget)}{where}; {len(self.runs)} simulated runs"
                f"{' and a saturation search per option' * self.simulated_saturation}, "
                f"{self.wall_s:.1f} s")


def _round(x, digits: int):
    x = float(x)
    return round(x, digits) if math.isfinite(x) else x


def _sig(x, digits: int = 3) -> float:
    """``x`` to ``digits`` significant figures (NaN and inf as they are)."""
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def _users_text(x: float) -> str:
    x = _sig(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:g}"


def _failover_text(row) -> str:
    """``4,526 writes refused, 60 lost, 30 s to a new primary`` (simulated), or why not."""
    if not np.isfinite(row.get("failover_recovery_s", math.nan)):
        return "no failover modelled"
    held = row["failover_writes_waited"]
    refused = (f"{row['failover_write_errors']:,.0f} writes refused" if not held else
               f"{held:,.0f} writes held")
    return (f"{refused}, {row['failover_lost_writes']:,.0f} lost, "
            f"{row['failover_recovery_s']:.0f} s to a new primary")


def _interval_text(row) -> str:
    status = row["users_at_budget_status"]
    low, high = row["users_at_budget_low"], row["users_at_budget_high"]
    if status == "bracketed":
        return f"{_users_text(low)} to {_users_text(high)}"
    if status == "broken_at_lowest":
        return f"below {_users_text(high)} (broken at the lowest load tried)"
    if status == "holds_at_highest":
        return f"above {_users_text(low)} (held at the highest load tried)"
    if status == STATUS_TWIN:
        return "twin's estimate, no interval"
    return "the twin finds no load that breaks the budget"


def _users_at_budget(deployed: System, target: OpenWorkload, budget: Budget, twin: float,
                     *, simulate_it: bool, duration_s: float | None, requests: int,
                     replications: int, rel_tol: float, seed: int,
                     runner: dict) -> tuple[dict, SaturationSearch | None]:
    """The users_at_budget columns of one option, and the search behind them."""
    nan = math.nan
    if not simulate_it:
        return {"users_at_budget": twin, "users_at_budget_low": nan,
                "users_at_budget_high": nan, "users_at_budget_status": STATUS_TWIN,
                "saturation_runs_adequate": nan}, None
    if not math.isfinite(twin):
        return {"users_at_budget": nan, "users_at_budget_low": nan,
                "users_at_budget_high": nan, "users_at_budget_status": STATUS_TWIN_NEVER,
                "saturation_runs_adequate": nan}, None
    if duration_s is None:  # about SATURATION_SHARE x requests per run near the answer
        basis = max(twin, 0.1 * target.users) * target.requests_per_user_s
        duration_s = max(SATURATION_SHARE * requests / basis, MIN_RUN_S)
    # no load with fewer than SATURATION_MIN_REQUESTS pages per run: a p99 of nothing
    floor = SATURATION_MIN_REQUESTS / (target.requests_per_user_s * duration_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunLengthWarning)  # said by saturation_runs_adequate
        found = find_saturation(
            deployed, target, budget, duration_s=duration_s, replications=replications,
            max_replications=max(SATURATION_MAX_REPLICATIONS, replications), rel_tol=rel_tol,
            seed=seed, max_points=SATURATION_MAX_POINTS, max_extension=SATURATION_MAX_EXTENSION,
            min_users=floor, **runner)
    evals = found.evaluations
    adequate = bool(evals["adequate"].all()) if "adequate" in evals else True
    users, low, high = found.users, found.users_low, found.users_high
    if found.status == "broken_at_lowest":
        users, low = nan, 0.0
    elif found.status == "holds_at_highest":
        users, high = nan, math.inf
    return {"users_at_budget": users, "users_at_budget_low": low, "users_at_budget_high": high,
            "users_at_budget_status": found.status, "saturation_runs_adequate": adequate}, found


COLUMNS = ["option", "kind", "instance", "boxes", "vcpus_per_box", "memory_gib_per_box",
           "cost_per_hour_usd", "cost_per_month_usd", "capacity_users", "users_at_budget",
           "users_at_budget_low", "users_at_budget_high", "users_at_budget_status",
           "twin_users_at_budget", "saturation_runs_adequate", "usd_per_month_per_1k_users",
           "p99_at_target_s", "meets_budget", "p99_at_2x_peak_s", "meets_budget_at_2x_peak",
           "headroom_at_2x_peak", "failure", "pages_served_one_down", "capacity_one_down_users",
           "capacity_left_one_down", "p99_one_down_s", "survives_one_failure"]


def compare(system: System, component: str, vertical: Sequence[Option] = (),
            horizontal: Sequence[Option] = (), *, workload, budget: Budget | None = None,
            options: Sequence[Option] = (), peak_factor: float = 2.0,
            replications: int = 2, requests: int = 20_000, duration_s: float | None = None,
            seed: int = 0, simulate_saturation: bool = True,
            saturation_duration_s: float | None = None, saturation_replications: int = 2,
            saturation_rel_tol: float = 0.05, catalogue_label: str = "",
            failover: Failover | None = None,
            processes: int | None = None, executor: Executor | None = None,
            cluster: str | None = None, store: ResultStore | str | None = None,
            progress: bool = False) -> ComparisonResult:
    """Deploy ``component`` of the reference model ``system`` as each option and compare.

    ``workload`` is the target (peak) load, or a growth (``cs.growth(...)``) whose largest
    point is the target. ``vertical``, ``horizontal`` and ``options`` are concatenated (the
    split is for reading). ``budget`` defaults to p99 <= 200 ms. Each simulated scenario runs
    ``replications`` times with about ``requests`` page requests each (the capacity probe half
    as many), or ``duration_s`` simulated seconds each when given. A verdict
    (``meets_budget...``) judges each limit as ``budget.bound`` says: the upper confidence bound
    over the replications by default, the mean with ``bound="mean"``.

    ``users_at_budget`` is searched for by simulation per option (``simulate_saturation``;
    False: the twin's estimate instead, and its status says so): ``find_saturation`` from the
    twin's estimate, to ``saturation_rel_tol``, ``saturation_replications`` per load (up to
    ``SATURATION_MAX_REPLICATIONS`` while the CI straddles the limit), at most
    ``SATURATION_MAX_POINTS`` loads, each run ``saturation_duration_s`` long (default
    ``duration_s``, or long enough for about ``SATURATION_SHARE`` x ``requests`` pages at the
    twin's estimate, at least 10 s). This is most of compare's cost: about 5 loads x 2-4
    replications per option. ``catalogue_label`` names where the prices come from (the
    ``Catalogue.label``), for ``summary()`` and the figures.

    ``failover`` gives every replicated ``DatabaseOptions`` without one that failover; for
    each option whose database has one, the primary fails mid-run at the target load and the
    ``failover_*`` columns say what it cost (``_failover_columns``).

    Runs go where ``capsim.experiment.runner.Runner`` sends them (``executor``, ``cluster``,
    ``processes``) and finished ones are kept in ``store`` (the searches' in a temporary one
    when None).
    """
    started = time.perf_counter()
    target = _as_target(workload)
    budget = budget or Budget(p99_s=0.200)
    check_int("compare", "replications", replications, minimum=1)
    check_int("compare", "requests", requests, minimum=100)
    check_int("compare", "saturation_replications", saturation_replications, minimum=1)
    check_number("compare", "peak_factor", peak_factor)
    check_number("compare", "saturation_rel_tol", saturation_rel_tol)
    if duration_s is not None:
        duration_s = check_number("compare", "duration_s", duration_s)
    if saturation_duration_s is not None:
        saturation_duration_s = check_number("compare", "saturation_duration_s",
                                             saturation_duration_s)
    opts = tuple(vertical) + tuple(horizontal) + tuple(options)
    if failover is not None:  # every replicated database option fails over so
        opts = tuple(replace(o, failover=o.failover or failover)
                     if isinstance(o, DatabaseOptions) and o.read_replicas else o for o in opts)
    if not opts:
        raise ModelError("compare: give at least one option (vertical=[...], horizontal=[...])")
    labels = [o.label for o in opts]
    if len(set(labels)) != len(labels):
        raise ModelError(f"compare: options must differ, got {labels}")
    rate_user = target.requests_per_user_s
    peak = target.with_users(peak_factor * target.users)
    rows, jobs, failures, deployed_systems, twins = [], [], [], [], []
    for i, opt in enumerate(opts):
        deployed = apply(system, component, opt)
        try:
            failure = one_down(system, component, opt)
            description = failure.description
        except ModelError as exc:  # e.g. a database with full scans cannot fail over here
            failure, description = None, f"not modelled: {exc}"
        cap = capacity_per_s(deployed)
        cap_down = 0.0 if failure is None or failure.degraded is None \
            else capacity_per_s(failure.degraded)
        twin = twin_saturation_users(deployed, target, budget)
        deployed_systems.append(deployed)
        failures.append((failure, cap_down))
        twins.append(twin)
        rows.append({"option": opt.label, "kind": opt.kind, "instance": opt.instance.name,
                     "boxes": opt.boxes, "vcpus_per_box": opt.instance.vcpus,
                     "memory_gib_per_box": opt.instance.memory_gib,
                     "cost_per_hour_usd": opt.cost_per_hour_usd,
                     "cost_per_month_usd": opt.cost_per_hour_usd * HOURS_PER_MONTH,
                     "capacity_users": cap / rate_user, "twin_users_at_budget": twin,
                     "failure": description})
        if target.arrival_rate_per_s < cap:
            jobs += scenario_jobs((i, "target"), deployed, target, requests, seed,
                                  replications, duration_s)
        if peak.arrival_rate_per_s < cap:
            jobs += scenario_jobs((i, "peak"), deployed, peak, requests, seed, replications,
                                  duration_s)
        if target.arrival_rate_per_s < cap:
            jobs += failover_jobs((i, "failover"), deployed, component, target, requests,
                                  seed, replications)
        if failure is None:
            continue
        if target.arrival_rate_per_s < cap_down:
            jobs += scenario_jobs((i, "one_down"), failure.system, target, requests, seed,
                                  replications, duration_s)
        probe = target.with_users(PROBE_LOAD * cap / rate_user)
        jobs += scenario_jobs((i, "probe"), failure.system, probe, requests // 2, seed,
                              replications, duration_s)
    with Runner(executor=executor, cluster=cluster, processes=processes, store=store,
                progress=progress, desc="compare") as runner:
        runs = run_scenarios(jobs, runner, ["option", "scenario", "replication"])
    runs["option"] = [labels[i] for i in runs["option"]]
    mean = runs.groupby(["option", "scenario"]).mean(numeric_only=True)

    def get(label: str, scenario: str, metric: str) -> float:
        return float(mean.loc[(label, scenario), metric]) if (label, scenario) in mean.index \
            else math.inf

    searches: dict[str, SaturationSearch | None] = {}
    sweep_kwargs = {"executor": executor, "cluster": cluster, "processes": processes,
                    "store": store}
    extra_columns: list[str] = []
    for row, opt, deployed, twin, (failure, cap_down) in zip(
            rows, opts, deployed_systems, twins, failures, strict=True):
        label = row["option"]
        found, searches[label] = _users_at_budget(
            deployed, target, budget, twin, simulate_it=simulate_saturation,
            duration_s=saturation_duration_s or duration_s, requests=requests,
            replications=saturation_replications, rel_tol=saturation_rel_tol, seed=seed,
            runner=sweep_kwargs)
        row.update(found)
        if row["users_at_budget_high"] > row["capacity_users"] >= row["users_at_budget_low"]:
            # no load past the capacity has a steady state: the budget breaks there for sure
            row["users_at_budget_high"] = row["capacity_users"]
            if row["users_at_budget_status"] == "bracketed":  # the middle of what is left
                row["users_at_budget"] = 0.5 * (row["users_at_budget_low"]
                                                + row["capacity_users"])
        users = row["users_at_budget"]
        row["usd_per_month_per_1k_users"] = (row["cost_per_month_usd"] / (users / 1e3)
                                             if users > 0 else
                                             math.inf if users == 0 else math.nan)
        row["p99_at_target_s"] = get(label, "target", "p99_s")
        row["p99_at_2x_peak_s"] = get(label, "peak", "p99_s")
        row["headroom_at_2x_peak"] = users / (peak_factor * target.users) - 1
        for scenario, col in (("target", "meets_budget"), ("peak", "meets_budget_at_2x_peak"),
                              ("one_down", "survives_one_failure")):
            mine = runs[(runs["option"] == label) & (runs["scenario"] == scenario)]
            row[col] = bool(not mine.empty and meets_budget(mine, budget))
        if failure is None:  # not modelled: nothing simulated, no verdict made up
            row.update({"pages_served_one_down": math.nan, "capacity_one_down_users": math.nan,
                        "capacity_left_one_down": math.nan, "p99_one_down_s": math.nan,
                        "survives_one_failure": None})
        else:
            served = get(label, "probe", "served_share")
            busiest = get(label, "probe", "bottleneck_utilization")
            throughput = get(label, "probe", "throughput_per_s")
            down = throughput / busiest / rate_user if served >= SERVED and busiest > 0 \
                else 0.0
            # the utilization law on a finite run is an estimate: never above what the failed
            # system can do by arithmetic (its busiest station at 100%), nor the healthy one
            bound = row["capacity_users"]
            if failure.degraded is not None:
                bound = min(bound, cap_down / rate_user)
            row["pages_served_one_down"] = served
            row["capacity_one_down_users"] = min(down, bound)
            row["capacity_left_one_down"] = row["capacity_one_down_users"] / row["capacity_users"]
            row["p99_one_down_s"] = get(label, "one_down", "p99_s")
        extra = _failover_columns(row, opt, failure, runs[runs["option"] == label])
        row.update(extra)
        extra_columns += [c for c in extra if c not in extra_columns]
        row["meets_every_check"] = bool(row["meets_budget"] and row["meets_budget_at_2x_peak"]
                                        and row["survives_one_failure"] is True)
    inadequate = [r["option"] for r in rows if r["saturation_runs_adequate"] is False]
    if inadequate:
        warnings.warn(RunLengthWarning(
            f"compare: the saturation searches of {', '.join(inadequate)} had runs too short "
            f"for their tail estimates even at {SATURATION_MAX_EXTENSION:g}x their length; "
            "their users_at_budget may be too high (saturation_runs_adequate=False; "
            "result.saturation[option].evaluations)"), stacklevel=2)
    table = pd.DataFrame(rows)[[*COLUMNS, *extra_columns, "meets_every_check"]]
    return ComparisonResult(component, budget, target, opts, table, runs,
                            time.perf_counter() - started, peak_factor, catalogue_label,
                            replications, simulate_saturation, searches)


# ----------------------------------------------------------------------------- the figure
# drawn in capsim.report.scaling (figures live in report/, imported when one is drawn)


def budget_text(budget: Budget) -> str:
    """``p99 <= 200 ms``-style words for a budget (kept here for ``capsim.scaling``)."""
    from capsim.report.scaling import budget_text as words

    return words(budget)

"""What a database's failover costs, by simulation, beside the twin's steady states.

``simulate_failover(system, workload, "pg", fail_at_s=120)`` fails the primary of ``pg``
(every shard's) ``fail_at_s`` into each of ``replications`` runs and reports, with
confidence intervals over the runs: the writes refused while the shard had no primary, the
writes lost with it (asynchronous replication), the time until a replica took writes, the
p99 of the requests that arrived during the failover against those before it, and how long
the p99 took to come back. The twin gives the steady states the failover moves between:
before (every box up) and after (one replica fewer, promoted to primary).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import pandas as pd

from capsim.analytic import solve
from capsim.engine import simulate
from capsim.errors import ModelError, check_int, check_number
from capsim.experiment.runner import Job, Runner, replication_seeds
from capsim.experiment.stats import mean_ci
from capsim.model import Database, Failover, OpenWorkload, Outage, System
from capsim.scaling.options import after_failover
from capsim.schema import ALL_FLOWS

__all__ = ["FailoverResult", "failover_run", "simulate_failover", "twin_states"]

WINDOW_S = 5.0  # p99 per window of arrival time, for the timeline and the recovery


def twin_states(system: System, workload: OpenWorkload, database: str) -> pd.DataFrame:
    """The twin's steady state before the failure and after the promotion: per state, the
    p99 of all flows, the busiest station of ``database``, its offered load (busy servers
    over servers; 1 or more: no steady state) and utilization, stable."""
    from capsim.scaling.compare import twin_view

    rows = []
    for state, model in (("before", system), ("after", after_failover(system, database))):
        twin = solve(twin_view(model), workload)
        lat = twin.latency().set_index("flow")
        flow = ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0]
        comp = twin.components()
        names = comp["component"]
        mine = comp[(names == database) | names.str.startswith(f"{database}/")]
        busiest = mine.loc[mine["offered_load"].idxmax()] if len(mine) else None
        rows.append({"state": state, "stable": bool(twin.stable),
                     "p99_s": float(lat.loc[flow, "p99_s"]) if twin.stable else math.inf,
                     "busiest_station": "" if busiest is None else busiest["component"],
                     "offered_load": math.nan if busiest is None else
                     float(busiest["offered_load"]),
                     "utilization": math.nan if busiest is None else
                     float(busiest["utilization"])})
    return pd.DataFrame(rows)


def failover_run(job: Job) -> pd.DataFrame:
    """One run with the failure: its failover log (one row per failed shard primary) plus
    the run's latency before and during the failover and the p99's recovery."""
    from capsim.report.timeseries import latency_of_arrivals, latency_timeseries, recovery

    fail_at, recovery_bound = job.settings
    run = simulate(job.system, job.workload, job.duration_s, job.warmup_s, job.seed)
    log = run.failover_log()
    promoted = float(log["promoted_at_s"].max()) if len(log) else math.nan
    end = promoted if math.isfinite(promoted) else fail_at + recovery_bound
    before = latency_of_arrivals(run, job.warmup_s, fail_at)
    during = latency_of_arrivals(run, fail_at, end) if end > fail_at else before * math.nan
    series = latency_timeseries(run, WINDOW_S, [ALL_FLOWS])
    normal = 1.5 * before["p99_s"]  # "back to normal": within half as much again
    try:
        seen = recovery(series["time_s"] + WINDOW_S, series["p99_s"], after_s=fail_at,
                        level=normal)
        back = 0.0 if seen.peak <= normal else seen.back_s - fail_at  # 0: never left it
    except ValueError:  # no request finished after the failure
        back = math.inf
    lat = run.latency(observed=True).set_index("flow")
    flow = ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0]
    return pd.DataFrame([{
        "write_errors": int(log["write_errors"].sum()), "writes_waited":
        int(log["writes_waited"].sum()), "lost_writes": int(log["lost_writes"].sum()),
        "recovery_s": float((log["promoted_at_s"] - log["failed_at_s"]).max())
        if len(log) else math.nan,
        "p99_before_s": before["p99_s"], "p99_during_s": during["p99_s"],
        "p99_back_after_s": back, "error_rate": float(lat.loc[flow, "error_rate"]),
        "requests_during": int(during["count"]) if end > fail_at else 0}])


@dataclass(frozen=True)
class FailoverResult:
    """Per replication (``runs``), the summary with CIs (``summary()``), the twin's states
    (``twin``), and a timeline of one run (``plot()``)."""

    system: System
    workload: OpenWorkload
    database: str
    fail_at_s: float
    duration_s: float
    runs: pd.DataFrame
    twin: pd.DataFrame
    seed: int
    wall_s: float

    def summary(self, confidence: float = 0.95) -> pd.DataFrame:
        """Mean and CI half-width over the replications of each measure."""
        rows = []
        for col in self.runs.columns:
            values = self.runs[col].to_numpy(dtype=float)
            mean, half = mean_ci(values, confidence) if len(values) > 1 else (values[0],
                                                                              math.nan)
            rows.append({"measure": col, "mean": mean, "ci_half_width": half})
        return pd.DataFrame(rows)

    def timeline(self, replication: int = 0):
        """The run of one replication again (same seed: the same run), for a figure."""
        seed = replication_seeds(self.seed, replication + 1)[replication]
        return simulate(self.system, self.workload, self.duration_s, 0.0, seed)

    def plot(self, replication: int = 0, fig=None, budget_s: float | None = None):
        """Write errors, p99 (against ``budget_s``) and each box's work over time, the
        failover's moments marked."""
        from capsim.report.failover import failover_figure

        return failover_figure(self.timeline(replication), self.database, WINDOW_S, fig,
                               budget_s=budget_s)

    def __str__(self) -> str:
        s = self.summary().set_index("measure")["mean"]
        return (f"failover of {self.database!r} at {self.fail_at_s:g} s over "
                f"{len(self.runs)} runs: {s['write_errors']:.1f} writes refused, "
                f"{s['lost_writes']:.1f} lost, a primary again after {s['recovery_s']:.1f} s")


def simulate_failover(system: System, workload: OpenWorkload, database: str, *,
                      failover: Failover | None = None, fail_at_s: float = 120.0,
                      outage_s: float | None = None, duration_s: float | None = None,
                      warmup_s: float = 30.0, replications: int = 5, seed: int = 0,
                      processes: int | None = None, executor: Executor | None = None,
                      progress: bool = False) -> FailoverResult:
    """Fail ``database``'s primary ``fail_at_s`` into each run (it stays down ``outage_s``,
    default the rest of the run) and measure what the failover costs.

    ``failover`` sets (or replaces) the database's :class:`~capsim.model.Failover`; the
    database needs one and a replica. Runs last ``duration_s`` (default: the failure plus
    four times the detection and promotion, at least 120 s more) so the recovery is seen.
    """
    db = system.component(database)
    if not isinstance(db, Database):
        raise ModelError(f"simulate_failover.database: {db.label} is not a Database")
    if failover is not None:
        system = system.evolve(database, failover=failover)
        db = system.component(database)
    if db.failover is None:
        raise ModelError(f"simulate_failover.failover: {db.label} has no failover; give "
                         "failover=Failover(detect_s, promote_s)")
    check_number("simulate_failover", "fail_at_s", fail_at_s)
    check_int("simulate_failover", "replications", replications, minimum=2)
    bound = db.failover.recovery_s
    duration = duration_s or fail_at_s + max(4 * bound, 120.0)
    check_number("simulate_failover", "duration_s", duration)
    if not warmup_s < fail_at_s < duration:
        raise ModelError(f"simulate_failover.fail_at_s: must lie after the warm-up "
                         f"({warmup_s:g} s) and before the end ({duration:g} s), got "
                         f"{fail_at_s!r}")
    outage = Outage(database, fail_at_s, outage_s or duration - fail_at_s + 1.0)
    failing = replace(system, outages=(*system.outages, outage))
    started = time.perf_counter()
    jobs = [Job(r, failover_run, "failover-run", failing, workload, duration, s, warmup_s,
                settings=(fail_at_s, bound))
            for r, s in enumerate(replication_seeds(seed, replications))]
    with Runner(executor=executor, processes=processes, store=None, progress=progress,
                desc="failover") as runner:
        done = runner.run(jobs)
    runs = pd.concat([done[r] for r in range(replications)], ignore_index=True)
    return FailoverResult(failing, workload, database, fail_at_s, duration, runs,
                          twin_states(system, workload, database), seed,
                          time.perf_counter() - started)

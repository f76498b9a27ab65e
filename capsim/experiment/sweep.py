"""Sweeps: many workloads x independent replications, run anywhere, stored as they finish.

Every (point, replication) is one job with its own seed, ``SeedSequence(seed).spawn``'s
replication-th child: the same child at every point, so neighbouring points see common random
numbers and the curve is smooth, while replications stay independent. A job is a pure function
of its inputs, so the answer is the same whether it runs in this process, in local processes or
on a dask cluster, and a finished job stored on disk never needs to run again.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capsim.analytic import solve
from capsim.engine import RunResult, simulate
from capsim.errors import ModelError, RunLengthWarning, check_int, check_number
from capsim.experiment.growth import Workload
from capsim.experiment.replications import COMPONENT_METRICS, LATENCY_METRICS
from capsim.experiment.runner import Job, Runner, replication_seeds
from capsim.experiment.stats import mean_ci
from capsim.experiment.store import ResultStore
from capsim.experiment.warmup import mser
from capsim.model import ClosedWorkload, System
from capsim.model.workload import open_view

__all__ = ["SweepResult", "certainly_overloaded", "run_job", "sweep"]

# Candidate truncation points (fractions of the run) stored with every job when the warm-up is
# detected: MSER then picks among them using all replications of a point.
WARMUP_CANDIDATES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
SAMPLES_PER_RUN = 200
MAX_EXTENSION = 8.0  # replications="auto" runs a too-short point at most this much longer
KEYS = ["point", "replication"]  # what identifies a job's rows


def run_job(job: Job) -> pd.DataFrame:
    """Simulate one (point, replication); summary rows for each candidate warm-up
    (``job.settings[0]``), in long form (kind, name, metric, value, warmup_s), plus the sampled
    number present (kind="state")."""
    point, replication = job.key
    warmups, samples = job.settings
    run = simulate(job.system, job.workload, job.duration_s, 0.0, job.seed,
                   sample_interval_s=job.duration_s / samples)
    with warnings.catch_warnings():
        # recorded in the rows (adequate); the sweep warns once, for all its points
        warnings.simplefilter("ignore", RunLengthWarning)
        frames = [_long(run.with_warmup(w)) for w in warmups]
    frames.append(_state_rows(run))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "replication", replication)
    out.insert(0, "point", point)
    out["requests"] = int(run.arrival_s.size)
    out["wall_s"] = run.wall_s
    return out


def _long(run: RunResult) -> pd.DataFrame:
    out = _melt(run.latency(), run.components())
    out["warmup_s"] = run.warmup_s
    return out


def _melt(latency: pd.DataFrame, components: pd.DataFrame) -> pd.DataFrame:
    """Latency and component tables (simulated or analytic) as kind, name, metric, value."""
    lat = latency.melt(id_vars="flow", value_vars=LATENCY_METRICS + ["censored", "stable",
                                                                     "adequate"],
                       var_name="metric", value_name="value")
    comp = components.melt(id_vars="component",
                           value_vars=COMPONENT_METRICS + ["offered_load", "drops", "stable"],
                           var_name="metric", value_name="value")
    out = pd.concat([lat.rename(columns={"flow": "name"}).assign(kind="flow"),
                     comp.rename(columns={"component": "name"}).assign(kind="component")],
                    ignore_index=True)[["kind", "name", "metric", "value"]]
    out["value"] = out["value"].astype(float)
    return out


def _state_rows(run: RunResult) -> pd.DataFrame:
    area = run.counter("area_in_system").sum(axis=1)
    present = np.diff(area) / np.diff(run.sample_times_s)
    return pd.DataFrame({"kind": "state", "name": "present",
                         "metric": [f"{t:.9g}" for t in run.sample_times_s[:-1]],
                         "value": present, "warmup_s": np.nan})


def certainly_overloaded(system: System, workload: Workload,
                         duration_s: float | None = None) -> bool:
    """True when the model's offered load, a lower bound, is >= 1 at a station that cannot
    shed load: its queue grows without bound, and there is nothing to simulate. The twin is
    not asked: it is an approximation, and a point it wrongly calls unstable would read inf."""
    if isinstance(workload, ClosedWorkload):
        return False
    view, rate = open_view(system, workload, duration_s)  # closed populations add to it
    if rate <= 0:
        return False
    loads = view.offered_load(rate)
    return any(loads[st.name] >= 1.0 for st in system.stations()
               if st.queue_capacity is None and st.max_wait_s is None)


def _analytic_rows(system: System, workload: Workload, point: int) -> pd.DataFrame:
    """A certainly overloaded point is not simulated: its queues grow without bound, so there
    is nothing to estimate. The twin's rows (inf latency, stable=0) stand in for it."""
    twin = solve(system, workload)
    out = _melt(twin.latency(), twin.components())
    out.insert(0, "replication", 0)
    out.insert(0, "point", point)
    out["warmup_s"] = 0.0
    out["requests"] = 0
    out["wall_s"] = 0.0
    return out


@dataclass(frozen=True)
class SweepResult:
    """Every job's rows, and the per-point summaries with confidence intervals."""

    system: System
    points: pd.DataFrame  # point, users, arrival_rate_per_s, simulated, replications
    rows: pd.DataFrame  # long rows of every job (see run_job)
    confidence: float = 0.95
    warmup_given: bool = False

    def warmups(self) -> pd.Series:
        """Warm-up used per point: the one given, or MSER-5 on the replication-averaged state."""
        out = {}
        for point, group in self.rows.groupby("point"):
            candidates = np.sort(group["warmup_s"].dropna().unique())
            if self.warmup_given or candidates.size <= 1:
                out[point] = float(candidates[0]) if candidates.size else 0.0
                continue
            state = group[group["kind"] == "state"]
            series = state.groupby("metric", sort=False)["value"].mean()
            times = np.array([float(t) for t in series.index])
            order = np.argsort(times)
            cut = times[order][mser(series.to_numpy()[order])]
            out[point] = float(candidates[np.searchsorted(candidates, cut - 1e-9)]
                               if cut <= candidates[-1] else candidates[-1])
        return pd.Series(out, name="warmup_s")

    def measured(self) -> pd.DataFrame:
        """The job rows at each point's chosen warm-up (no state rows)."""
        w = self.warmups()
        rows = self.rows[self.rows["kind"] != "state"]
        chosen = rows["point"].map(w)
        return rows[np.isclose(rows["warmup_s"], chosen)]

    def _summary(self, kind: str) -> pd.DataFrame:
        rows = self.measured()
        rows = rows[rows["kind"] == kind]
        out = []
        for (point, name, metric), group in rows.groupby(["point", "name", "metric"],
                                                        sort=False):
            m, half = mean_ci(group["value"], self.confidence)
            out.append({"point": point, "name": name, "metric": metric, "mean": m,
                        "half_width": half, "ci_low": m - half, "ci_high": m + half,
                        "replications": len(group)})
        df = pd.DataFrame(out).merge(self.points[["point", "users"]], on="point")
        return df.rename(columns={"name": "flow" if kind == "flow" else "component"})

    def latency(self) -> pd.DataFrame:
        """Per point, flow and metric: mean over replications with its confidence interval."""
        return self._summary("flow")

    def components(self) -> pd.DataFrame:
        return self._summary("component")

    def metric(self, metric: str, name: str = "all", kind: str = "flow") -> pd.DataFrame:
        """One curve: users, mean, ci_low, ci_high, stable for ``metric`` of ``name``."""
        table = self.latency() if kind == "flow" else self.components()
        key = "flow" if kind == "flow" else "component"
        if kind == "flow" and name == "all" and "all" not in set(table[key]):
            name = table[key].iloc[0]
        curve = table[(table[key] == name) & (table["metric"] == metric)]
        stable = table[(table[key] == name) & (table["metric"] == "stable")]
        curve = curve.merge(stable[["point", "mean"]].rename(columns={"mean": "stable"}),
                            on="point")
        curve["stable"] = curve["stable"] >= 1.0
        adequate = table[(table[key] == name) & (table["metric"] == "adequate")]
        if kind == "flow" and not adequate.empty:
            # the twin's rows (never simulated) have no run to be too short
            curve = curve.merge(adequate[["point", "mean"]].rename(
                columns={"mean": "adequate"}), on="point", how="left")
            curve["adequate"] = ~(curve["adequate"] < 1.0)
        return curve.sort_values("users").reset_index(drop=True)

    def curve(self, metric: str, name: str = "all", kind: str = "flow") -> pd.DataFrame:
        """``metric`` of ``name`` as mean, ci_low, ci_high indexed by users, for reading a
        value off at a given load (``result.curve("p99_s", "get").loc[50]``)."""
        return self.metric(metric, name, kind).set_index("users")[["mean", "ci_low", "ci_high"]]

    @property
    def simulated_requests(self) -> int:
        jobs = self.rows.drop_duplicates(KEYS)
        return int(jobs["requests"].sum())

    def saturation(self, budget):
        """Where ``budget`` first breaks, with a CI and the bottleneck (see ``Budget``)."""
        from capsim.experiment.saturation import saturation_from_sweep

        return saturation_from_sweep(self, budget)


def sweep(system: System, workloads: Sequence[Workload], replications: int | str = 5,
          seed: int = 0, *, duration_s: float, warmup_s: float | None = None,
          executor: Executor | None = None, cluster: str | None = None,
          processes: int | None = None, store: ResultStore | str | None = "results",
          progress: bool = True, confidence: float = 0.95,
          target_half_width: float = 0.05, max_replications: int = 30,
          target_metric: str = "p99_s", max_extension: float = MAX_EXTENSION) -> SweepResult:
    """Simulate every workload ``replications`` times and summarise with confidence intervals.

    ``replications="auto"`` starts with 3 and adds more to each point until the CI half-width
    of ``target_metric`` (pooled flow) is below ``target_half_width`` of its mean, or
    ``max_replications`` is reached; a point whose runs are too short for their tail estimates
    (``adequate`` False) is first rerun with doubled ``duration_s``, up to ``max_extension``
    times as long (``points["duration_s"]`` says what each point got). A point is simulated
    unless the model's offered load (a lower bound) already says it is overloaded.
    ``warmup_s=None`` detects the warm-up (MSER-5).
    Jobs run on ``executor`` (any ``concurrent.futures.Executor``), on the dask cluster at
    ``cluster`` ("tcp://host:8786"), or on ``processes`` local processes (default: all cores;
    1 = in this process). Finished jobs are stored in ``store`` (a directory, or None) and an
    interrupted sweep picks up where it stopped.
    """
    workloads = list(workloads)
    if not workloads:
        raise ModelError("sweep.workloads: must hold at least one workload")
    duration_s = check_number("sweep", "duration_s", duration_s)
    auto = replications == "auto"
    if not auto:
        check_int("sweep", "replications", replications, minimum=1)
    if warmup_s is not None:
        check_number("sweep", "warmup_s", warmup_s, strict=False)
        if warmup_s >= duration_s:
            raise ModelError(f"sweep.warmup_s: must be < duration_s ({duration_s:g}), "
                             f"got {warmup_s!r}")
    points, simulated = [], {}
    durations = dict.fromkeys(range(len(workloads)), duration_s)
    for i, w in enumerate(workloads):
        simulated[i] = not certainly_overloaded(system, w, duration_s)
        points.append({"point": i, "users": w.users,
                       "arrival_rate_per_s": getattr(w, "arrival_rate_per_s", np.nan),
                       "simulated": simulated[i]})
    frames = [_analytic_rows(system, w, i) for i, w in enumerate(workloads) if not simulated[i]]

    def jobs_for(point: int, reps: range) -> list[Job]:
        length = durations[point]
        warmups = (tuple(f * length for f in WARMUP_CANDIDATES) if warmup_s is None
                   else (float(warmup_s),))
        return [Job((point, r), run_job, "sweep-job", system, workloads[point], length, s,
                    settings=(warmups, SAMPLES_PER_RUN))
                for r, s in zip(reps, replication_seeds(seed, len(reps), reps.start),
                                strict=True)]

    first = 3 if auto else replications
    todo = [j for i in range(len(workloads)) if simulated[i] for j in jobs_for(i, range(first))]
    done: dict[tuple[int, int], pd.DataFrame] = {}
    with Runner(executor=executor, cluster=cluster, processes=processes, store=store,
                progress=progress, desc="sweep") as runner:
        while todo:
            for (point, r), rows in runner.run(todo).items():
                # a stored run may sit at another position in this sweep than when it ran
                done[point, r] = rows.assign(point=point, replication=r)
            todo = []
            if auto:
                partial = _result(system, points, frames, done, confidence, warmup_s,
                                  durations).latency()  # once per round, not per point
                for i in range(len(workloads)):
                    have = sum(1 for (p, _) in done if p == i)
                    if not simulated[i]:
                        continue
                    if (_too_short(partial, i) and durations[i] < duration_s * max_extension):
                        # more replications of too short a run only tighten a biased
                        # interval: run every replication of this point longer instead
                        durations[i] *= 2.0
                        for r in range(have):
                            done.pop((i, r))
                        todo += jobs_for(i, range(have))
                    elif have < max_replications and _too_wide(
                            partial, i, target_metric, target_half_width):
                        more = min(max(2, have // 2), max_replications - have)
                        todo += jobs_for(i, range(have, have + more))
    result = _result(system, points, frames, done, confidence, warmup_s, durations)
    _warn_if_short(result)
    return result


def _warn_if_short(result: SweepResult) -> None:
    lat = result.latency()
    short = lat[(lat["metric"] == "adequate") & (lat["mean"] < 1.0)]
    if short.empty:
        return
    users = sorted(set(short["users"]))
    shown = ", ".join(f"{u:,.6g}" for u in users[:6]) + (", ..." if len(users) > 6 else "")
    warnings.warn(RunLengthWarning(
        f"sweep: at {len(users)} of {len(result.points)} points ({shown} users) some runs are "
        "too short for their tail estimates (adequate=False in latency()); run longer "
        "(duration_s) or use replications='auto', which does"), stacklevel=3)


def _result(system, points, frames, done, confidence, warmup_s, durations) -> SweepResult:
    rows = pd.concat(frames + [done[k] for k in sorted(done)], ignore_index=True)
    pts = pd.DataFrame(points)
    pts["duration_s"] = pts["point"].map(durations)
    reps = rows.drop_duplicates(KEYS).groupby("point").size()
    pts["replications"] = pts["point"].map(reps).fillna(0).astype(int)
    return SweepResult(system, pts, rows, confidence, warmup_given=warmup_s is not None)


def _too_short(lat: pd.DataFrame, point: int) -> bool:
    """Some replication of ``point`` reports a finite estimate from too short a run."""
    row = lat[(lat["point"] == point) & (lat["metric"] == "adequate")]
    return bool((row["mean"] < 1.0).any())


def _too_wide(lat: pd.DataFrame, point: int, metric: str, target: float) -> bool:
    names = set(lat["flow"])
    name = "all" if "all" in names else sorted(names)[0]
    row = lat[(lat["point"] == point) & (lat["flow"] == name) & (lat["metric"] == metric)]
    if row.empty:
        return False
    m, half = row["mean"].item(), row["half_width"].item()
    return bool(np.isfinite(m) and m > 0 and not half <= target * m)

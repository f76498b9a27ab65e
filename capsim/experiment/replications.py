"""Independent replications of one run, in parallel processes, with confidence intervals."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capsim.engine import RunResult, simulate
from capsim.errors import check_int
from capsim.experiment.runner import Job, replication_seeds, run_jobs
from capsim.experiment.stats import ci_table, log_ci
from capsim.model import ClosedWorkload, OpenWorkload, System
from capsim.schema import ALL_FLOWS

LATENCY_METRICS = ["mean_s", "p50_s", "p95_s", "p99_s", "throughput_per_s", "error_rate"]
PERCENTILES = {"p50_s": 50, "p95_s": 95, "p99_s": 99}
COMPONENT_METRICS = ["utilization", "mean_queue_length", "mean_in_system", "mean_wait_s",
                     "mean_response_s", "throughput_per_s"]


@dataclass(frozen=True)
class Replications:
    """The runs of a replicated experiment and their summaries with confidence intervals."""

    runs: tuple[RunResult, ...]
    seeds: tuple[str, ...]
    confidence: float = 0.95

    @property
    def stable(self) -> bool:
        return all(r.stable for r in self.runs)

    def latency_runs(self) -> pd.DataFrame:
        """Per replication and flow: the columns of ``RunResult.latency()``."""
        return self._stack(lambda r: r.latency())

    def components_runs(self) -> pd.DataFrame:
        return self._stack(lambda r: r.components())

    def latency(self) -> pd.DataFrame:
        """Per flow and metric: the estimate, its confidence interval, and whether every run
        was stable and long enough (``stable``, ``adequate``).

        Means, rates and throughputs are the mean over replications (t-interval). Percentiles
        are *sectioned* (Asmussen & Glynn): the estimate is the percentile of all
        replications' requests pooled, and the interval's width comes from the spread of
        the per-replication percentiles, on a log scale (they are skewed to the right: a
        rare run that saw a long excursion). A single run's percentile is biased low near
        saturation (it rarely sees the excursions the tail is made of), so the mean of
        per-run percentiles sits below the truth; the pooled one has the bias of one run as
        long as all of them together. ``half_width`` is then the larger of the two sides.
        """
        runs = self.latency_runs()
        table = ci_table(runs, "flow", LATENCY_METRICS, self.confidence)
        pooled = self._pooled_percentiles()
        for i, row in table.iterrows():
            q = pooled.get((row["flow"], row["metric"]))
            if q is None or not np.isfinite(row["mean"]) or q <= 0:
                continue
            per_run = runs.loc[runs["flow"] == row["flow"], row["metric"]].to_numpy(float)
            low, high = log_ci(q, per_run, self.confidence)
            table.loc[i, ["mean", "ci_low", "ci_high", "half_width"]] = \
                q, low, high, max(q - low, high - q)
        flags = runs.groupby("flow", sort=False, observed=True)[["stable", "adequate"]].all()
        return table.join(flags, on="flow")

    def _pooled_percentiles(self) -> dict[tuple[str, str], float]:
        frames = [r.requests() for r in self.runs]
        if not frames:
            return {}
        req = pd.concat(frames, ignore_index=True)
        run = self.runs[0]
        out = {}
        groups = [(f, req["flow"] == f) for f in run.flows]
        n_sync = len(run.flows) - run.async_flows
        if n_sync > 1:
            groups.append((ALL_FLOWS, req["flow"].isin(run.flows[:n_sync])))
        for name, sel in groups:
            x = req.loc[sel, "latency_s"].to_numpy()
            if x.size:
                for metric, q in PERCENTILES.items():
                    out[name, metric] = float(np.percentile(x, q))
        return out

    def components(self) -> pd.DataFrame:
        return ci_table(self.components_runs(), "component", COMPONENT_METRICS, self.confidence)

    def _stack(self, table) -> pd.DataFrame:
        frames = []
        for i, (run, seed) in enumerate(zip(self.runs, self.seeds, strict=True)):
            df = table(run)
            df.insert(0, "seed", seed)
            df.insert(0, "replication", i)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)


def replicate(
    system: System,
    workload: OpenWorkload | ClosedWorkload,
    replications: int = 10,
    seed: int = 0,
    *,
    duration_s: float,
    warmup_s: float = 0.0,
    confidence: float = 0.95,
    executor: Executor | None = None,
    processes: int | None = None,
    cluster: str | None = None,
) -> Replications:
    """Run ``replications`` independent runs; replication i uses ``SeedSequence(seed).spawn``'s
    i-th child (``replication_seeds``), so the answer does not depend on where it ran.

    Runs go to ``executor``, the dask cluster at ``cluster``, or the shared pool of
    ``processes`` local processes (default: one per core; ``processes=1`` runs in this
    process); see ``capsim.experiment.runner``.
    """
    check_int("replicate", "replications", replications, minimum=1)
    jobs = [Job(i, whole_run, "run", system, workload, duration_s, child, warmup_s)
            for i, child in enumerate(replication_seeds(seed, replications))]
    done = run_jobs(jobs, executor=executor, cluster=cluster, processes=processes)
    runs = [done[i] for i in range(replications)]
    return Replications(tuple(runs), tuple(r.seed for r in runs), confidence)


def whole_run(job: Job) -> RunResult:
    """The task of a replication: the whole RunResult (not stored: it is not a table)."""
    return simulate(job.system, job.workload, job.duration_s, job.warmup_s, job.seed)

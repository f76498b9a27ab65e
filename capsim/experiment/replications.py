"""Independent replications of one run, in parallel processes, with confidence intervals."""

from __future__ import annotations

import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capsim.engine import RunResult, simulate
from capsim.errors import check_int
from capsim.experiment.stats import ci_table
from capsim.model import ClosedWorkload, OpenWorkload, System

LATENCY_METRICS = ["mean_s", "p50_s", "p95_s", "p99_s", "throughput_per_s", "error_rate"]
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
        """Per flow and metric: mean over replications and its confidence interval."""
        return ci_table(self.latency_runs(), "flow", LATENCY_METRICS, self.confidence)

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
) -> Replications:
    """Run ``replications`` independent runs; replication i uses ``SeedSequence(seed).spawn``'s
    i-th child, so the answer does not depend on how many processes ran it.

    Runs go to ``executor`` if given, else to a pool of ``processes`` local processes
    (default: one per core; ``processes=1`` runs in this process).
    """
    check_int("replicate", "replications", replications, minimum=1)
    children = np.random.SeedSequence(seed).spawn(replications)
    jobs = [(system, workload, duration_s, warmup_s, child) for child in children]
    workers = min(replications, processes or os.cpu_count() or 1)
    if executor is not None:
        runs = list(executor.map(_run, jobs))
    elif workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            runs = list(pool.map(_run, jobs))
    else:
        runs = [_run(job) for job in jobs]
    return Replications(tuple(runs), tuple(r.seed for r in runs), confidence)


def _run(job) -> RunResult:
    system, workload, duration_s, warmup_s, seed = job
    return simulate(system, workload, duration_s, warmup_s, seed)

"""Retry storms: does a short overload leave a system down after it has passed?

A callee that callers retry on timeout has two regimes at the same offered load. Normally
attempts rarely time out, so it gets about one attempt per call; once a spike has built a
queue longer than the timeout, every attempt times out, is sent again while the abandoned one
still queues, and the callee gets ``1 + retries`` attempts per call: several times its
capacity, so it never catches up. That is a metastable failure: the spike that tipped it over
is gone and the overload stays. :func:`retry_storm` runs system variants (plain retries, a
retry budget, a circuit breaker, backoff) over the same seeds and measures, per variant, how
often a run collapses and what the protection costs.

A run **collapses** when the engine's divergence check (``capsim.engine.stability``: the
arrivals measured at a station exceed what it can do, or its backlog grows while it is never
idle) flags a station over the window after the spike ends (plus ``settle_s``). That is the
check ``RunResult.latency()`` and ``components()`` report as ``stable``, judged on the part
of the run where the offered load is back to normal; a system that has recovered passes it,
one in a storm fails it by a wide margin (its callee gets several times its capacity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np
import pandas as pd

from capsim.engine import simulate
from capsim.errors import ModelError, check_number, fail
from capsim.experiment.runner import Job, replication_seeds, run_jobs
from capsim.experiment.stats import log_ci, mean_ci
from capsim.model import OpenWorkload, System
from capsim.model.profiles import Product, Spike

__all__ = ["STORM_COLUMNS", "retry_storm"]

STORM_COLUMNS = ["variant", "runs", "collapses", "collapse_rate", "collapse_low",
                 "collapse_high", "error_rate_spike", "error_rate_spike_hw",
                 "error_rate_after", "error_rate_after_hw", "p99_after_s", "p99_after_low",
                 "p99_after_high", "recovery_s", "amplification_after", "fast_fails",
                 "retries_denied"]
RUN_COLUMNS = ["variant", "replication", "collapsed", "instability", "error_rate_spike",
               "error_rate_after", "p99_after_s", "recovery_s", "amplification_after",
               "fast_fails", "retries_denied", "backlog_end"]


def retry_storm(system_variants: dict[str, System], workload: OpenWorkload,
                duration_s: float, seeds: int | Sequence = 30, *, seed: int = 0,
                trigger_s: tuple[float, float] | None = None, settle_s: float = 0.0,
                confidence: float = 0.95, per_run: bool = False,
                executor: Executor | None = None, processes: int | None = None,
                cluster: str | None = None) -> pd.DataFrame:
    """Run each variant over the same seeds and summarise each: one row per variant.

    ``workload`` carries the trigger, a ``Spike`` in its profile (or give ``trigger_s=(start,
    end)``). ``seeds`` is a number of replications (replication r is child r of ``seed``, the
    same for every variant: common random numbers) or a list of seeds.

    Columns: ``collapses`` of ``runs`` and the ``collapse_rate`` with its Wilson interval
    (``collapse_low``, ``collapse_high``); the error rate of requests that arrived during the
    spike and after it (mean over runs, with the t half-width ``*_hw``); ``p99_after_s``, the
    99th percentile latency of the requests that arrived after the spike and succeeded,
    pooled over runs (with the log-scale interval of the per-run ones); ``recovery_s``, the
    median over runs of the time from the spike's end until the backlog (requests present in
    the system) is back to its mean before the spike (``inf`` for a run that never gets
    back: more than half collapsing makes it inf); ``amplification_after`` (attempts per call
    after the spike, over every call with a timeout or retries), and the calls failed fast by
    a breaker and the retries a budget denied, per run. ``per_run=True`` gives one row per
    run instead (``RUN_COLUMNS``).
    """
    if not isinstance(system_variants, dict) or not system_variants:
        raise fail("retry_storm", "system_variants", "must be a non-empty dict of name -> "
                   "System", system_variants)
    for name, system in system_variants.items():
        if not isinstance(system, System):
            raise fail("retry_storm", f"system_variants[{name!r}]", "must be a System", system)
    if not isinstance(workload, OpenWorkload):
        raise fail("retry_storm", "workload", "must be an OpenWorkload (its profile holds the "
                   "spike)", workload)
    duration_s = check_number("retry_storm", "duration_s", duration_s)
    settle_s = check_number("retry_storm", "settle_s", settle_s, strict=False)
    start, end = _trigger(workload, trigger_s)
    if not end + settle_s < duration_s:
        raise fail("retry_storm", "duration_s", f"must be longer than the spike's end plus "
                   f"settle_s ({end + settle_s:g} s): the collapse is judged after it",
                   duration_s)
    if isinstance(seeds, int):
        if seeds < 1:
            raise fail("retry_storm", "seeds", "must be >= 1 (or a list of seeds)", seeds)
        children = replication_seeds(seed, seeds)
    else:
        children = [s if isinstance(s, np.random.SeedSequence) else np.random.SeedSequence(s)
                    for s in seeds]
        if not children:
            raise fail("retry_storm", "seeds", "must hold at least one seed", seeds)
    settings = (("trigger_s", (start, end)), ("settle_s", settle_s))
    jobs = [Job((name, r), storm_run, "retry-storm", system, workload, duration_s, child,
                0.0, settings)
            for name, system in system_variants.items() for r, child in enumerate(children)]
    done = run_jobs(jobs, executor=executor, cluster=cluster, processes=processes)
    rows = [dict(done[(name, r)][0], variant=name, replication=r)
            for name in system_variants for r in range(len(children))]
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    if per_run:
        return runs
    out = []
    for name in system_variants:
        mine = runs[runs["variant"] == name]
        n, k = len(mine), int(mine["collapsed"].sum())
        low, high = _wilson(k, n, confidence)
        spike_m, spike_h = mean_ci(mine["error_rate_spike"], confidence)
        after_m, after_h = mean_ci(mine["error_rate_after"], confidence)
        pooled = np.concatenate([done[(name, r)][1] for r in range(n)])
        p99 = float(np.percentile(pooled, 99)) if pooled.size else math.nan
        p_low, p_high = log_ci(p99, mine["p99_after_s"], confidence) if pooled.size else \
            (math.nan, math.nan)
        out.append({"variant": name, "runs": n, "collapses": k, "collapse_rate": k / n,
                    "collapse_low": low, "collapse_high": high,
                    "error_rate_spike": spike_m, "error_rate_spike_hw": spike_h,
                    "error_rate_after": after_m, "error_rate_after_hw": after_h,
                    "p99_after_s": p99, "p99_after_low": p_low, "p99_after_high": p_high,
                    "recovery_s": float(np.median(mine["recovery_s"])),
                    "amplification_after": float(mine["amplification_after"].mean()),
                    "fast_fails": float(mine["fast_fails"].mean()),
                    "retries_denied": float(mine["retries_denied"].mean())})
    return pd.DataFrame(out, columns=STORM_COLUMNS)


def storm_run(job: Job) -> tuple[dict, np.ndarray]:
    """The task of one run: its summary row, and the latencies of the requests that arrived
    after the spike and succeeded (pooled for the p99 over runs)."""
    settings = dict(job.settings)
    start, end = settings["trigger_s"]
    settle = settings["settle_s"]
    run = simulate(job.system, job.workload, job.duration_s, seed=job.seed)
    judged = run.with_warmup(end + settle)
    model_bound = [s.name for s in judged.stations if s.offered_load >= 1.0 and s.instability]
    if model_bound:
        raise ModelError(f"retry_storm: the model already overloads {', '.join(model_bound)} "
                         "at the workload's busiest 5 minutes (offered load >= 1): that is "
                         "plain overload, not a storm the spike leaves behind; shorten the "
                         "spike or lower the base rate")
    bad = [f"{s.name}: {s.instability}" for s in judged.stations if not s.stable]
    lat = run.finish_s - run.arrival_s
    ok_during = _between(run.arrival_s, start, end)
    err_during = _between(run.drop_arrival_s, start, end)
    ok_after = run.arrival_s >= end
    err_after = run.drop_arrival_s >= end
    calls = judged.calls()
    attempts, made = calls["attempts"].sum(), calls["calls"].sum()
    row = {"collapsed": bool(bad), "instability": "; ".join(bad),
           "error_rate_spike": _share(err_during.sum(), ok_during.sum()),
           "error_rate_after": _share(err_after.sum(), ok_after.sum()),
           "p99_after_s": float(np.percentile(lat[ok_after], 99)) if ok_after.any()
           else math.nan,
           "recovery_s": _recovery_s(run, start, end),
           "amplification_after": attempts / made if made else math.nan,
           "fast_fails": int(run.calls()["fast_fails"].sum()),
           "retries_denied": int(run.calls()["retries_denied"].sum()),
           "backlog_end": int(run.counter("present")[-1].sum())}
    return row, lat[ok_after]


def _recovery_s(run, start: float, end: float) -> float:
    """Seconds from the spike's end until the requests present in the system are back to
    their time-average before the spike (inf if they never are)."""
    from capsim.report.timeseries import recovery

    times = run.sample_times_s
    present = run.counter("present").sum(axis=1)
    area = run.counter("area_in_system").sum(axis=1)
    i = int(np.searchsorted(times, start + 1e-12)) - 1
    level = area[i] / times[i] if i > 0 and times[i] > 0 else 0.0
    got = recovery(times, present, after_s=end, level=level)
    return max(0.0, got.back_s - end)


def _trigger(workload: OpenWorkload, given) -> tuple[float, float]:
    if given is not None:
        try:
            start, end = (float(x) for x in given)
        except (TypeError, ValueError) as exc:
            raise fail("retry_storm", "trigger_s", "must be a (start, end) pair of seconds",
                       given) from exc
        if not 0 <= start < end:
            raise fail("retry_storm", "trigger_s", "must have 0 <= start < end", given)
        return start, end
    profile = workload.profile
    parts = profile.parts if isinstance(profile, Product) else (profile,)
    spikes = [p for p in parts if isinstance(p, Spike)]
    if len(spikes) != 1:
        raise fail("retry_storm", "trigger_s", "must be given when the workload's profile "
                   "has no single Spike", given)
    return spikes[0].start_s, spikes[0].start_s + spikes[0].duration_s


def _between(times: np.ndarray, start: float, end: float) -> np.ndarray:
    return (times >= start) & (times < end)


def _share(errors: int, ok: int) -> float:
    total = errors + ok
    return errors / total if total else math.nan


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (sensible at 0 and at n), by scipy."""
    from scipy import stats

    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)

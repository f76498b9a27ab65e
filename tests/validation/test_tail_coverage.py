"""Does a p99 interval cover the true p99 near saturation? (issue 10, finding 3)

M/M/1 at rho 0.9, mean service 1 s: the sojourn time is exponential with rate mu - lambda,
so p99 = ln(100) / 0.1 = 46.1 s exactly, and the relaxation time is 1 / (1 - sqrt(.9))^2 =
389 s. Each experiment is ``replicate(...)``; over 40 independent experiments a 95%
interval should cover the truth in about 38. (The finding was made at rho 0.95; 0.9 is as
close to saturation in relaxation times, which is what the run length is measured in, and
costs a quarter of the simulated time.)

* Runs of 2.5 relaxation times (the 4,000 s of the original finding at rho 0.95): the per-run p99 is
  biased low by a third, no interval can be trusted, and every row must say so
  (``adequate=False``).
* Runs of ``ADEQUATE_RELAXATIONS`` relaxation times and 10 replications: the rows are
  adequate, and the sectioned interval (pooled estimate, log-scale width) covers the truth in
  90% or more. With 5 replications it covered 33-37 of 40 in the experiments behind this
  test: per-run p99s are skewed, and five of them understate their spread.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import capsim as cs
from capsim.engine.stability import ADEQUATE_RELAXATIONS

RHO = 0.9
EXACT_P99 = math.log(100) / (1 - RHO)
RELAXATION_S = 1 / (1 - math.sqrt(RHO)) ** 2
EXPERIMENTS = 40
SYSTEM = cs.System([cs.Service("db", servers=1, service_time=cs.Exponential(mean=1.0))],
                   flows=[cs.Flow("q", weight=1.0, steps=[cs.Call("db")])])
LOAD = cs.OpenWorkload(users=RHO, requests_per_user_s=1.0)


def _experiments(relaxations: float, first_seed: int, replications: int) -> list[dict]:
    out = []
    warmup = 5 * RELAXATION_S
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cs.RunLengthWarning)
        for e in range(EXPERIMENTS):
            rep = cs.replicate(SYSTEM, LOAD, replications, seed=first_seed + e, processes=1,
                               duration_s=warmup + relaxations * RELAXATION_S,
                               warmup_s=warmup)
            row = rep.latency().query("flow == 'q' and metric == 'p99_s'").iloc[0]
            out.append({"covers": row["ci_low"] <= EXACT_P99 <= row["ci_high"],
                        "adequate": bool(row["adequate"]), "p99": row["mean"]})
    return out


@pytest.mark.xdist_group("tail-coverage-short")
def test_short_runs_near_saturation_are_all_marked_inadequate():
    runs = _experiments(2.5, first_seed=7_000, replications=5)
    assert not any(r["adequate"] for r in runs)
    # and they are right to say so: the short-run estimate misses the truth
    assert np.mean([r["p99"] for r in runs]) < 0.85 * EXACT_P99


@pytest.mark.xdist_group("tail-coverage-long")
def test_adequate_runs_give_p99_intervals_that_cover_the_true_p99():
    runs = _experiments(1.02 * ADEQUATE_RELAXATIONS, first_seed=9_000, replications=10)
    adequate = [r for r in runs if r["adequate"]]
    assert len(adequate) >= 0.9 * EXPERIMENTS
    covered = sum(r["covers"] for r in adequate)
    assert covered >= 0.9 * len(adequate), f"covered {covered} of {len(adequate)}"
    assert np.mean([r["p99"] for r in adequate]) == pytest.approx(EXACT_P99, rel=0.05)

"""Saturation: budgets, and searches that must bracket an answer known in closed form."""

import math

import numpy as np
import pytest
from scipy import optimize

import capsim as cs
from capsim.analytic import mmc_response_quantile
from capsim.experiment import twin_saturation

S, C, BUDGET_S = 0.010, 2, 0.060  # M/M/2 with 10 ms service; p99 budget 60 ms
SYSTEM = cs.System([cs.Service("api", C, cs.Exponential(S))],
                   [cs.Flow("call", 1.0, [cs.Call("api")])])
LOAD = cs.OpenWorkload(users=1000, requests_per_user_s=0.1)  # 100 requests/s
BUDGET = cs.Budget(p99_s=BUDGET_S)


def exact_users() -> float:
    """Users at which the M/M/2 sojourn p99 equals the budget (closed form + root finding)."""
    lam = optimize.brentq(lambda x: mmc_response_quantile(0.99, x, S, C) - BUDGET_S,
                          1.0, C / S * (1 - 1e-9))
    return lam / LOAD.requests_per_user_s


def test_budget_validation_and_limits():
    assert BUDGET.limits() == [("flow", "p99_s", 0.06)]
    both = cs.Budget(p99_s=0.2, utilization=0.8)
    assert ("component", "utilization", 0.8) in both.limits()
    with pytest.raises(cs.ModelError, match="at least one limit"):
        cs.Budget()
    with pytest.raises(cs.ModelError, match=r"Budget.p99_s: must be > 0, got -1"):
        cs.Budget(p99_s=-1)


def test_twin_saturation_is_the_exact_answer_for_mmc():
    assert twin_saturation(SYSTEM, LOAD, BUDGET) == pytest.approx(exact_users(), rel=1e-3)


def test_adaptive_search_brackets_the_exact_answer():
    exact = exact_users()
    found = cs.find_saturation(SYSTEM, LOAD, BUDGET, duration_s=300, replications=5,
                               rel_tol=0.04, store=None, processes=2, seed=3)
    assert found.users_low <= exact <= found.users_high, str(found)
    assert (found.users_high - found.users_low) / exact < 0.1
    ev = found.evaluations
    assert ev.loc[ev["users"] == found.users_low, "breaks"].eq(False).all()
    assert ev.loc[ev["users"] == found.users_high, "breaks"].all()
    assert found.simulated_requests > 0 and found.bottleneck == "api"
    assert found.status == "bracketed" and len(ev) <= 20  # max_points


def test_grid_sweep_saturation_ci_covers_the_exact_answer():
    exact = exact_users()
    users = np.linspace(0.7 * exact, 1.2 * exact, 6)
    result = cs.sweep(SYSTEM, cs.growth(LOAD, users=users), 6, seed=2, duration_s=300,
                      warmup_s=10, store=None, progress=False)
    sat = result.saturation(BUDGET)
    assert sat.users_low <= exact <= sat.users_high, str(sat)
    assert sat.breaks_on == "p99_s" and sat.bottleneck == "api"
    assert "breaks at about" in str(sat)


def test_saturation_when_the_budget_always_holds_or_never_does():
    result = cs.sweep(SYSTEM, cs.growth(LOAD, users=[200, 400]), 2, duration_s=100,
                      store=None, processes=1, progress=False)
    holds = result.saturation(cs.Budget(p99_s=10.0))
    assert math.isinf(holds.users) and "holds at every point" in str(holds)
    never = result.saturation(cs.Budget(p99_s=0.001))
    assert never.users == 0.0 and never.gate_users == 0.0
    # the first grid point's users, not an end of the CI
    assert "already broken at the first point swept (200 users)" in str(never)


def test_utilization_budget_uses_the_busiest_component():
    result = cs.sweep(SYSTEM, cs.growth(LOAD, users=[500, 1000, 1500]), 2, duration_s=200,
                      store=None, processes=1, progress=False)
    sat = result.saturation(cs.Budget(utilization=0.6))  # 1200 users give 60% busy
    assert sat.breaks_on == "utilization"
    assert sat.users == pytest.approx(1200, rel=0.05)

"""The analytic twin against values checkable by hand or by an independent computation."""

from __future__ import annotations

import ast
import itertools
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

import capsim as cs
from capsim import analytic as an
from capsim.schema import ALL_FLOWS, COMPONENT_COLUMNS, LATENCY_COLUMNS

# ------------------------------------------------------------------------------- Erlang B / C


def test_erlang_c_known_values():
    assert an.erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    assert an.erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)  # 4 / (1 + 2 + 2 + 4)
    for rho in (0.1, 0.5, 0.93):
        assert an.erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)


def test_erlang_b_known_values_and_large_pools():
    assert an.erlang_b(1, 2.0) == pytest.approx(2 / 3)
    assert an.erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)
    c = an.erlang_c(2000, 1950.0)  # a^c / c! would overflow; the recursion does not
    assert 0.0 < c < 1.0
    assert an.erlang_c(4, 4.0) == 1.0
    assert an.erlang_c(4, 9.0) == 1.0


# ----------------------------------------------------------------------------------- M/M/c


def test_mm1_means():
    lam, mu = 0.8, 1.0
    r = an.mmc(lam, 1 / mu, 1)
    assert r.stable
    assert r.mean_response == pytest.approx(1 / (mu - lam))
    assert r.mean_wait == pytest.approx(lam / (mu * (mu - lam)))
    assert r.mean_in_system == pytest.approx((lam / mu) / (1 - lam / mu))
    assert r.utilization == pytest.approx(0.8)


def test_mm2_means():
    r = an.mmc(1.0, 1.0, 2)  # C = 1/3, Wq = C / (c mu - lambda) = 1/3
    assert r.p_wait == pytest.approx(1 / 3)
    assert r.mean_wait == pytest.approx(1 / 3)
    assert r.mean_response == pytest.approx(4 / 3)
    assert r.mean_queue_length == pytest.approx(1 / 3)


@pytest.mark.parametrize("lam", [1.0, 1.5])
def test_unstable_station_is_inf_never_negative(lam):
    r = an.mmc(lam, 1.0, 1)
    assert not r.stable
    assert math.isinf(r.mean_wait) and math.isinf(r.mean_response)
    assert math.isinf(r.mean_queue_length) and math.isinf(r.mean_in_system)
    assert math.isinf(an.mg1_wait(lam, 1.0, 0.0))
    assert math.isinf(an.ggc_wait(2 * lam, 1.0, 2, 1.0, 1.0))
    assert math.isinf(an.mmc_response_quantile(0.99, lam, 1.0, 1))


def test_mm1_p99_is_ln100_over_mu_minus_lambda():
    assert an.mmc_response_quantile(0.99, 0.8, 1.0, 1) == pytest.approx(math.log(100) / 0.2)
    assert an.mmc_response_quantile(0.5, 3.0, 0.25, 1) == pytest.approx(math.log(2) / 1.0)


@pytest.mark.parametrize(("lam", "servers"), [(1.5, 2), (2.7, 3), (0.3, 4)])
def test_mmc_quantile_against_numerical_convolution(lam, servers):
    mu = 1.0
    q = 0.99
    t = an.mmc_response_quantile(q, lam, 1 / mu, servers)
    c_wait = an.erlang_c(servers, lam / mu)
    theta = servers * mu - lam

    def tail(x):  # P(W + S > x): integrate the exponential wait density against S's tail
        waited = integrate.quad(lambda w: theta * math.exp(-theta * w) * math.exp(-mu * (x - w)),
                                0, x)[0] + math.exp(-theta * x)
        return (1 - c_wait) * math.exp(-mu * x) + c_wait * waited

    assert tail(t) == pytest.approx(1 - q, rel=1e-6)


# ----------------------------------------------------------------------- M/G/1, G/G/c, QNA


def test_md1_pollaczek_khinchine():
    lam, s = 0.5, 1.0
    rho = lam * s
    assert an.mg1_wait(lam, s, 0.0) == pytest.approx(rho * s / (2 * (1 - rho)))
    assert an.mg1_wait(lam, s, 1.0) == pytest.approx(an.mmc(lam, s, 1).mean_wait)


def test_allen_cunneen_reduces_to_exact_cases():
    assert an.ggc_wait(2.7, 1.0, 3, 1.0, 1.0) == pytest.approx(an.mmc(2.7, 1.0, 3).mean_wait)
    assert an.ggc_wait(0.7, 1.0, 1, 1.0, 0.0) == pytest.approx(an.mg1_wait(0.7, 1.0, 0.0))
    # Kingman: rho/(1-rho) * (ca2 + cs2)/2 * S
    assert an.ggc_wait(0.25, 2.0, 1, 0.5, 2.0) == pytest.approx(0.5 / 0.5 * 1.25 * 2.0)


def test_departure_scv_linking_equation():
    assert an.departure_scv(0.7, 2, 1.0, 1.0) == pytest.approx(1.0)  # Burke
    assert an.departure_scv(0.0, 1, 3.0, 0.0) == pytest.approx(3.0)  # idle: passes arrivals
    assert an.departure_scv(1.0, 1, 3.0, 0.25) == pytest.approx(0.25)  # saturated: service
    assert an.departure_scv(0.5, 4, 2.0, 0.0) == pytest.approx(1 + 0.75 - 0.25 / 2)


# ----------------------------------------------------------------------------------- M/M/c/K


def test_mm1k_blocking_closed_form():
    lam, s, k = 0.9, 1.0, 5
    rho = lam * s
    r = an.mmck(lam, s, 1, queue_capacity=k - 1)
    assert r.blocking == pytest.approx((1 - rho) * rho**k / (1 - rho ** (k + 1)))
    assert r.throughput == pytest.approx(lam * (1 - r.blocking))
    assert r.mean_response == pytest.approx(r.mean_in_system / r.throughput)


def test_mmcc_is_erlang_b_and_overload_is_stable():
    assert an.mmck(3.0, 1.0, 4, 0).blocking == pytest.approx(an.erlang_b(4, 3.0))
    r = an.mmck(5.0, 1.0, 1, 3)  # rho = 5: still a steady state, most arrivals dropped
    assert 0.75 < r.blocking < 1 and math.isfinite(r.mean_response)


# -------------------------------------------------------------------------------------- MVA


def machine_repairman(n_users: int, s: float, z: float) -> tuple[float, float]:
    """M/M/1//N: p0 = 1 / sum_n N!/(N-n)! (S/Z)^n, X = (1 - p0)/S, R = N/X - Z."""
    terms = [math.factorial(n_users) / math.factorial(n_users - n) * (s / z) ** n
             for n in range(n_users + 1)]
    p0 = 1 / math.fsum(terms)
    x = (1 - p0) / s
    return x, n_users / x - z


@pytest.mark.parametrize("n_users", [1, 2, 5, 10, 30])
def test_mva_single_station_matches_machine_repairman(n_users):
    s, z = 0.5, 4.0
    x, r = machine_repairman(n_users, s, z)
    res = an.mva([s], n_users, think_time=z)
    assert res.throughput == pytest.approx(x, rel=1e-10)
    assert res.response_time == pytest.approx(r, rel=1e-10)
    assert res.throughput_curve[-1] == res.throughput


def brute_force_product_form(demands, servers, think, n_users):
    """Normalise the product form over every state: the think station is a delay (Z^n / n!)."""
    k = len(demands)
    mass = 0.0
    mean_think = 0.0
    mean_q = np.zeros(k)
    for state in itertools.product(range(n_users + 1), repeat=k):
        at_think = n_users - sum(state)
        if at_think < 0:
            continue
        w = think**at_think / math.factorial(at_think)
        for d, c, n in zip(demands, servers, state, strict=True):
            w *= d**n / math.prod(min(j, c) for j in range(1, n + 1))
        mass += w
        mean_think += w * at_think
        mean_q += w * np.array(state)
    return (mean_think / mass) / think, mean_q / mass  # X by Little at the think station


@pytest.mark.parametrize("n_users", [1, 3, 7])
def test_load_dependent_mva_matches_brute_force(n_users):
    demands, servers, z = [1.0, 0.5, 2.0], [2, 1, 3], 3.0
    x, q = brute_force_product_form(demands, servers, z, n_users)
    res = an.mva(demands, n_users, think_time=z, servers=servers)
    assert res.throughput == pytest.approx(x, rel=1e-10)
    assert res.queue_length == pytest.approx(q.tolist(), rel=1e-9)
    assert res.utilization == pytest.approx([x * d / c for d, c in
                                             zip(demands, servers, strict=True)])


@pytest.mark.parametrize("n_users", [1, 4])
def test_convolution_fallback_matches_brute_force(n_users):
    from capsim.analytic.mva import _mva_convolution

    demands, servers, z = [1.0, 0.5, 2.0], [2, 1, 3], 3.0
    x, q = brute_force_product_form(demands, servers, z, n_users)
    res = _mva_convolution(np.array(demands), np.array(servers), n_users, z)
    assert res.throughput == pytest.approx(x, rel=1e-10)
    assert res.queue_length == pytest.approx(q.tolist(), rel=1e-9)


def test_mva_lattice_agrees_with_convolution_past_saturation():
    from capsim.analytic.mva import _mva_convolution

    d, c = np.array([0.16, 0.01, 0.3, 0.05]), np.array([8, 1, 4, 3])
    res = an.mva(d, 300, 1.0, c)  # the 4-server station saturates near N = 17
    ref = _mva_convolution(d, c, 300, 1.0)
    assert res.throughput == pytest.approx(ref.throughput, rel=1e-10)
    assert res.queue_length == pytest.approx(ref.queue_length, rel=1e-9)
    assert res.response_curve == pytest.approx(ref.response_curve, rel=1e-9)


def test_mva_large_population_approaches_multiserver_ceiling():
    res = an.mva({"web": 0.16, "db": 0.01}, 3000, think_time=1.0, servers={"web": 8, "db": 1})
    assert all(np.isfinite(res.queue_length))
    assert res.throughput == pytest.approx(50.0, rel=1e-6)  # 8 / 0.16
    assert res.utilization[0] == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.diff(res.throughput_curve) >= -1e-12)


def test_bounds():
    demands = {"web": 0.5, "db": 1.2}
    b = an.bounds(demands, think_time=2.0, users=4, servers={"web": 1, "db": 2})
    assert b.bottleneck == "db" and b.bottleneck_demand == pytest.approx(0.6)
    assert b.throughput_upper == pytest.approx(min(4 / 3.7, 1 / 0.6))
    assert b.response_lower == pytest.approx(max(1.7, 4 * 0.6 - 2.0))
    assert b.n_star == pytest.approx(3.7 / 0.6)
    for n in (1, 3, 6, 20, 100):
        res = an.mva(demands, n, 2.0, servers={"web": 1, "db": 2})
        bn = an.bounds(demands, 2.0, n, servers={"web": 1, "db": 2})
        assert res.throughput <= bn.throughput_upper * (1 + 1e-12)
        assert res.response_time >= bn.response_lower * (1 - 1e-12)


# ------------------------------------------------------------------------------ the network


def one_station(servers=1, service=None, capacity=None):
    svc = cs.Service("web", servers=servers, service_time=service or cs.Exponential(1.0),
                     queue_capacity=capacity)
    return cs.System([svc], flows=[cs.Flow("f", steps=[cs.Call("web")])])


def tandem(means):
    comps = [cs.Service(f"s{i}", servers=1, service_time=cs.Exponential(m))
             for i, m in enumerate(means)]
    return cs.System(comps, flows=[cs.Flow("f", steps=[cs.Call(c.name) for c in comps])])


def test_solve_mm1_table_and_percentiles():
    res = an.solve(one_station(), cs.OpenWorkload(users=8, requests_per_user_s=0.1))
    lat = res.latency()
    assert list(lat.columns) == LATENCY_COLUMNS
    assert list(res.components().columns) == COMPONENT_COLUMNS
    row = lat.iloc[0]
    assert np.isnan(row["count"]) and bool(row["stable"]) and res.stable
    assert row["mean_s"] == pytest.approx(5.0)
    assert row["p50_s"] == pytest.approx(math.log(2) / 0.2, rel=1e-4)
    assert row["p95_s"] == pytest.approx(math.log(20) / 0.2, rel=1e-4)
    assert row["p99_s"] == pytest.approx(math.log(100) / 0.2, rel=1e-4)
    comp = res.components().iloc[0]
    assert comp["mean_queue_length"] == pytest.approx(3.2)
    assert comp["offered_load"] == pytest.approx(0.8)


def test_solve_mmc_p99_matches_exact_quantile():
    res = an.solve(one_station(servers=3), cs.OpenWorkload(users=27, requests_per_user_s=0.1))
    exact = an.mmc_response_quantile(0.99, 2.7, 1.0, 3)
    assert res.latency()["p99_s"].iloc[0] == pytest.approx(exact, rel=2e-3)


def test_solve_tandem_p99_matches_hypoexponential():
    lam, means = 1.0, (0.5, 0.8)
    res = an.solve(tandem(means), cs.OpenWorkload(users=10, requests_per_user_s=lam / 10))
    a, b = 1 / means[0] - lam, 1 / means[1] - lam  # sojourns Exp(mu_i - lambda), independent
    sf = lambda t: (a * math.exp(-b * t) - b * math.exp(-a * t)) / (a - b)  # noqa: E731
    p99 = optimize.brentq(lambda t: sf(t) - 0.01, 0, 1e3)
    row = res.latency().iloc[0]
    assert row["p99_s"] == pytest.approx(p99, rel=5e-3)
    assert row["mean_s"] == pytest.approx(1 / a + 1 / b)


def test_solve_three_equal_mm1_is_erlang():
    res = an.solve(tandem((0.5, 0.5, 0.5)), cs.OpenWorkload(users=1, requests_per_user_s=1.0))
    rate = 2.0 - 1.0
    assert res.latency()["p95_s"].iloc[0] == pytest.approx(stats.gamma.ppf(0.95, 3) / rate,
                                                           rel=5e-3)


def test_solve_md1_uses_pollaczek_khinchine():
    res = an.solve(one_station(service=cs.Deterministic(1.0)),
                   cs.OpenWorkload(users=5, requests_per_user_s=0.1))
    assert res.latency()["mean_s"].iloc[0] == pytest.approx(1.0 + 0.5 / (2 * 0.5))
    assert res.latency()["p99_s"].iloc[0] > 1.0


def test_solve_propagates_arrival_scv_downstream():
    svc = [cs.Service("a", servers=1, service_time=cs.Deterministic(0.5)),
           cs.Service("b", servers=1, service_time=cs.Exponential(0.6))]
    system = cs.System(svc, flows=[cs.Flow("f", steps=[cs.Call("a"), cs.Call("b")])])
    res = an.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=1.0))
    comps = res.components().set_index("component")
    ca2 = an.departure_scv(0.5, 1, 1.0, 0.0)  # smoother than Poisson after the D station
    assert ca2 < 1
    assert comps.loc["b", "mean_wait_s"] == pytest.approx(an.ggc_wait(1.0, 0.6, 1, ca2, 1.0))
    assert comps.loc["b", "mean_wait_s"] < an.mmc(1.0, 0.6, 1).mean_wait


@pytest.mark.parametrize(("fast", "slow", "lam"), [(0.1, 0.5, 1.0), (0.001, 5.0, 0.1)])
def test_solve_branch_mixture_and_all_row(fast, slow, lam):
    comps = [cs.Service("fast", servers=1, service_time=cs.Exponential(fast)),
             cs.Service("slow", servers=1, service_time=cs.Exponential(slow))]
    split = cs.Branch([(0.5, [cs.Call("fast")]), (0.5, [cs.Call("slow")])])
    system = cs.System(comps, flows=[cs.Flow("mix", weight=0.6, steps=[split]),
                                     cs.Flow("only_fast", weight=0.4, steps=[cs.Call("fast")])])
    res = an.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=lam))
    lat = res.latency().set_index("flow")
    assert list(lat.index) == ["mix", "only_fast", ALL_FLOWS]
    r_fast, r_slow = 1 / (1 / fast - 0.7 * lam), 1 / (1 / slow - 0.3 * lam)  # M/M/1 responses
    assert lat.loc["mix", "mean_s"] == pytest.approx(0.5 * r_fast + 0.5 * r_slow)
    assert lat.loc[ALL_FLOWS, "mean_s"] == pytest.approx(0.7 * r_fast + 0.3 * r_slow)
    assert lat.loc[ALL_FLOWS, "throughput_per_s"] == pytest.approx(lam)
    assert lat.loc["only_fast", "p50_s"] == pytest.approx(math.log(2) * r_fast, rel=1e-3)
    for flow, w_fast in (("mix", 0.5), (ALL_FLOWS, 0.7)):
        def sf(t, w=w_fast):
            return w * math.exp(-t / r_fast) + (1 - w) * math.exp(-t / r_slow)
        for q, col in ((0.5, "p50_s"), (0.95, "p95_s"), (0.99, "p99_s")):
            exact = optimize.brentq(lambda t, q=q, sf=sf: sf(t) - (1 - q), 0, 100 * r_slow)
            assert lat.loc[flow, col] == pytest.approx(exact, rel=2e-3), (flow, col)


def test_solve_unstable_component_and_flows():
    comps = [cs.Service("web", servers=2, service_time=cs.Exponential(0.01)),
             cs.Service("db", servers=1, service_time=cs.Exponential(0.05))]
    system = cs.System(comps, flows=[
        cs.Flow("read", weight=0.5, steps=[cs.Call("web"), cs.Call("db")]),
        cs.Flow("static", weight=0.5, steps=[cs.Call("web")])])
    res = an.solve(system, cs.OpenWorkload(users=100, requests_per_user_s=0.5))  # db rho = 1.25
    assert not res.stable
    assert res.unstable_components == ("db",)
    assert res.bottleneck == "db"
    comp = res.components().set_index("component")
    assert not comp.loc["db", "stable"] and bool(comp.loc["web", "stable"])
    for col in ("mean_queue_length", "mean_in_system", "mean_wait_s", "mean_response_s"):
        assert math.isinf(comp.loc["db", col]) and comp.loc["db", col] > 0
    lat = res.latency().set_index("flow")
    assert not lat.loc["read", "stable"] and not lat.loc[ALL_FLOWS, "stable"]
    for col in ("mean_s", "p50_s", "p95_s", "p99_s"):
        assert math.isinf(lat.loc["read", col]) and lat.loc["read", col] > 0
    assert bool(lat.loc["static", "stable"])
    assert lat.loc["static", "mean_s"] == pytest.approx(an.mmc(50.0, 0.01, 2).mean_response)
    assert "UNSTABLE" in res.summary()


def test_solve_finite_queue_drops():
    lam = 0.9
    res = an.solve(one_station(capacity=4), cs.OpenWorkload(users=9, requests_per_user_s=0.1),
                   duration_s=100.0)
    expected = an.mmck(lam, 1.0, 1, 4)
    row = res.latency().iloc[0]
    assert row["error_rate"] == pytest.approx(expected.blocking)
    assert row["errors"] == pytest.approx(lam * expected.blocking * 100)
    assert row["throughput_per_s"] == pytest.approx(expected.throughput)
    assert row["mean_s"] == pytest.approx(expected.mean_response)
    comp = res.components().iloc[0]
    assert comp["drops"] == pytest.approx(lam * expected.blocking * 100)
    # overload on a finite queue is a steady state, not an instability
    over = an.solve(one_station(capacity=4), cs.OpenWorkload(users=20, requests_per_user_s=0.1))
    assert over.stable and over.latency()["error_rate"].iloc[0] > 0.5


@pytest.mark.parametrize(("lam", "capacity"), [(0.9, 4), (3.0, 30), (1.2, 800)])
def test_finite_queue_percentiles_match_erlang_mixture(lam, capacity):
    k = capacity + 1  # M/M/1/K: an accepted arrival finding n waits n services, then its own
    p = np.exp(np.arange(k + 1) * math.log(lam))  # P(n) proportional to rho^n, mu = 1
    accepted = p[:-1] / p[:-1].sum()
    n = np.arange(k)

    def sf(t):
        return float(np.sum(accepted * stats.gamma.sf(t, n + 1)))

    res = an.solve(one_station(capacity=capacity),
                   cs.OpenWorkload(users=1, requests_per_user_s=lam)).latency().iloc[0]
    for q, col in ((0.5, "p50_s"), (0.99, "p99_s")):
        exact = optimize.brentq(lambda t, q=q: sf(t) - (1 - q), 0, 10 * k)
        assert res[col] == pytest.approx(exact, rel=2e-3), col


def test_finite_queue_thins_downstream_load():
    comps = [cs.Service("gate", servers=1, service_time=cs.Exponential(1.0), queue_capacity=0),
             cs.Service("back", servers=1, service_time=cs.Exponential(0.5))]
    system = cs.System(comps, flows=[cs.Flow("f", steps=[cs.Call("gate"), cs.Call("back")])])
    res = an.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=1.0))
    b = an.erlang_b(1, 1.0)  # 1/2 of arrivals find the gate busy
    comp = res.components().set_index("component")
    assert comp.loc["back", "throughput_per_s"] == pytest.approx(1.0 - b)
    assert res.latency()["error_rate"].iloc[0] == pytest.approx(b)


def test_solve_closed_matches_mva_and_has_no_percentiles():
    comps = [cs.Service("web", servers=2, service_time=cs.Exponential(0.2)),
             cs.Service("db", servers=1, service_time=cs.Exponential(0.05))]
    system = cs.System(comps, flows=[cs.Flow("f", steps=[cs.Call("web"), cs.Call("db"),
                                                         cs.Call("db")])])
    load = cs.ClosedWorkload(users=12, think_time=cs.Exponential(1.5))
    res = an.solve(system, load)
    ref = an.mva([0.2, 0.1], 12, 1.5, servers=[2, 1])
    lat = res.latency()
    assert list(lat.columns) == LATENCY_COLUMNS
    assert lat["throughput_per_s"].iloc[0] == pytest.approx(ref.throughput)
    assert lat["mean_s"].iloc[0] == pytest.approx(ref.response_time)
    assert lat[["p50_s", "p95_s", "p99_s"]].isna().all(axis=None)
    comp = res.components().set_index("component")
    assert comp.loc["db", "throughput_per_s"] == pytest.approx(2 * ref.throughput)
    assert comp.loc["db", "mean_response_s"] == pytest.approx(ref.residence_time[1] / 2)
    assert res.stable and res.bounds().bottleneck == "web" == res.bottleneck
    with pytest.raises(ValueError, match="ClosedWorkload"):
        an.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=1.0)).bounds()


def test_result_is_picklable_and_readable():
    res = an.solve(tandem((0.1, 0.2)), cs.OpenWorkload(users=10, requests_per_user_s=0.3))
    back = pickle.loads(pickle.dumps(res))
    assert back.latency().equals(res.latency())
    assert back.components().equals(res.components())
    assert back.notes == res.notes and back.stable
    assert "bottleneck='s1'" in repr(res)
    with pytest.raises(AttributeError):
        res.bottleneck = "x"


def test_analytic_does_not_import_simpy_or_the_engine():
    """Layering: the twin must stay an independent oracle (capsim itself may import the engine)."""
    package = Path(an.__file__).parent
    imported = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert imported, "no imports found: the check is looking in the wrong place"
    assert not {m for m in imported if m.split(".")[0] == "simpy"}
    assert not {m for m in imported if m.startswith(("capsim.engine", "capsim.experiment"))}

"""Single stations against exact queueing theory: M/M/1, M/M/c (Erlang C), M/D/1, M/G/1."""

import math

import pytest

import capsim as cs
from capsim.analytic.queues import mg1_wait, mmc, mmc_response_quantile
from capsim.experiment import replicate
from tests.validation.agreement import assert_agrees, column

REPS = 10


def one_station(servers: int, service: cs.Distribution) -> cs.System:
    return cs.System([cs.Service("s", servers, service)], [cs.Flow("f", 1.0, [cs.Call("s")])])


def run(system, rate, customers, reps=REPS, seed=1):
    """Replications sized by customers per replication; warm-up = 5% of the run."""
    duration = customers / rate
    return replicate(system, cs.OpenWorkload(1, rate), reps, seed,
                     duration_s=duration, warmup_s=0.05 * duration)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mm1_mean_and_p99_of_sojourn(rho):
    # M/M/1 sojourn time is Exp(mu - lambda): mean 1/(mu - lambda), p99 ln(100)/(mu - lambda)
    mu, lam = 1.0, rho
    res = run(one_station(1, cs.Exponential(1 / mu)), lam, 150_000)
    lat, comp = res.latency_runs(), res.components_runs()
    assert_agrees(column(lat, "flow", "f", "mean_s"), 1 / (mu - lam), "M/M/1 mean sojourn")
    assert_agrees(column(lat, "flow", "f", "p99_s"), math.log(100) / (mu - lam),
                  "M/M/1 p99 sojourn", max_rel_half_width=0.08)
    assert_agrees(column(comp, "component", "s", "utilization"), rho, "M/M/1 utilization",
                  max_rel_half_width=0.02)
    assert_agrees(column(comp, "component", "s", "mean_in_system"), rho / (1 - rho),
                  "M/M/1 L = rho / (1 - rho)")


# customers per replication (12 of them): the mean wait (cap 10%) is the noisiest check; its
# relative spread shrinks as the servers pool, so 16 servers at 0.85 need fewer per server
# (a 99% half-width of 3-6% of theory)
MMC_CASES = [(2, 0.5, 40_000), (4, 0.85, 80_000), (8, 0.7, 160_000), (16, 0.85, 176_000)]


@pytest.mark.parametrize(("servers", "rho", "customers"), MMC_CASES,
                         ids=[f"{c}-{r}" for c, r, _ in MMC_CASES])
def test_mmc_against_erlang_c(servers, rho, customers):
    mean_service = 1.0
    lam = rho * servers / mean_service
    theory = mmc(lam, mean_service, servers)
    res = run(one_station(servers, cs.Exponential(mean_service)), lam, customers, reps=12)
    lat, comp = res.latency_runs(), res.components_runs()
    assert_agrees(column(comp, "component", "s", "mean_wait_s"), theory.mean_wait,
                  f"M/M/{servers} mean wait", max_rel_half_width=0.1)
    assert_agrees(column(lat, "flow", "f", "mean_s"), theory.mean_response,
                  f"M/M/{servers} mean sojourn")
    assert_agrees(column(lat, "flow", "f", "p99_s"),
                  mmc_response_quantile(0.99, lam, mean_service, servers),
                  f"M/M/{servers} p99 sojourn", max_rel_half_width=0.08)
    assert_agrees(column(comp, "component", "s", "utilization"), rho,
                  f"M/M/{servers} utilization", max_rel_half_width=0.02)


@pytest.mark.parametrize(
    "service",
    [cs.Deterministic(1.0), cs.HyperExponential(mean=1.0, cv=2.0), cs.Erlang(k=4, mean=1.0)],
    ids=["M/D/1", "M/H2/1 cv2", "M/E4/1"],
)
def test_mg1_pollaczek_khinchine(service):
    lam = 0.7
    theory = mg1_wait(lam, service.mean, service.scv)
    res = run(one_station(1, service), lam, 80_000)
    comp = res.components_runs()
    assert_agrees(column(comp, "component", "s", "mean_wait_s"), theory,
                  f"{service!r} mean wait (P-K)", max_rel_half_width=0.1)

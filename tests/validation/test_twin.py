"""The analytic twin against the simulation of the same model.

Exact where product form holds (the twin must lie inside the simulation's CI); an
approximation elsewhere, where the gap is measured and must stay within a stated bound.
"""

import capsim as cs
from capsim.analytic import solve
from capsim.experiment import replicate
from capsim.experiment.twin import twin_gap

E = cs.Exponential


def web(service):
    comps = {"lb": (1, 0.004), "app": (6, 0.04), "cache": (1, 0.006), "db": (3, 0.04)}
    return cs.System(
        [cs.Service(n, c, service(s)) for n, (c, s) in comps.items()],
        [cs.Flow("browse", 0.85, [cs.Call("lb"), cs.Call("app"),
                                  cs.Branch([(0.75, [cs.Call("cache")]),
                                             (0.25, [cs.Call("db")])])]),
         cs.Flow("order", 0.15, [cs.Call("lb"), cs.Call("app"), cs.Call("db"), cs.Call("db")])],
    )


LOAD = cs.OpenWorkload(users=10_000, requests_per_user_s=0.012)  # 120 requests/s


def test_twin_is_exact_for_a_product_form_network():
    system = web(E)
    gap = twin_gap(replicate(system, LOAD, 8, seed=21, duration_s=1_000, warmup_s=100),
                   solve(system, LOAD))
    means = gap[gap["metric"].isin(["mean_s", "utilization", "mean_response_s",
                                    "mean_in_system", "throughput_per_s"])]
    assert len(means) >= 20
    outside = means[~means["twin_in_ci"]]
    # 99% would be the bar for one comparison; with ~30 of them at 95%, allow one or two
    assert len(outside) <= 2, outside.to_string()
    assert means["gap"].abs().max() < 0.05, means.to_string()
    # percentiles of a route that visits the db twice are an approximation even here: the two
    # waits of one request are correlated, the convolution assumes them independent
    single_visit = gap[(gap["name"] == "browse") & gap["metric"].isin(["p50_s", "p95_s",
                                                                       "p99_s"])]
    assert single_visit["gap"].abs().max() < 0.03, single_visit.to_string()


def test_twin_gap_is_reported_and_bounded_for_lognormal_service():
    system = web(lambda mean: cs.LogNormal(mean, 1.5))
    gap = twin_gap(replicate(system, LOAD, 8, seed=22, duration_s=1_000, warmup_s=100),
                   solve(system, LOAD))
    util = gap[gap["metric"] == "utilization"]
    assert util["gap"].abs().max() < 0.02  # utilization needs no queueing approximation
    flows = gap[gap["kind"] == "flow"].set_index(["name", "metric"])["gap"]
    # Allen-Cunneen + QNA: mean latency within 10% here; the pooled p99 (independent
    # convolution, blind to the correlation of two visits to one db) within 20%
    assert flows.xs("mean_s", level="metric").abs().max() < 0.10, flows.to_string()
    assert abs(flows["all", "p99_s"]) < 0.20, flows.to_string()

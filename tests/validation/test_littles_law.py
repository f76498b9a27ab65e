"""Little's law, L = lambda W, on every run: per station and for the whole system.

L comes from time-integrals of the number present, W from per-request timestamps, lambda from
completions: three independent measurements, so the identity can fail if any one is wrong.
"""

import pytest

import capsim as cs

E = cs.Exponential

CASES = {
    "mm1": (cs.System([cs.Service("s", 1, E(0.7))], [cs.Flow("f", 1.0, [cs.Call("s")])]),
            cs.OpenWorkload(1, 1.0)),
    "branching": (
        cs.System(
            [cs.Service("app", 4, cs.LogNormal(0.03, 1.5)), cs.Service("db", 2, E(0.02))],
            [cs.Flow("a", 0.7, [cs.Call("app"), cs.Branch([(0.5, [cs.Call("db")]),
                                                           (0.5, [])])]),
             cs.Flow("b", 0.3, [cs.Call("db"), cs.Call("app")])],
        ),
        cs.OpenWorkload(100, 1.0),
    ),
    "finite_queue_overloaded": (
        cs.System([cs.Service("s", 2, cs.Gamma(1.0, 0.5), queue_capacity=5)],
                  [cs.Flow("f", 1.0, [cs.Call("s")])]),
        cs.OpenWorkload(1, 3.0),
    ),
    "closed": (
        cs.System([cs.Service("cpu", 1, E(0.05)), cs.Service("disk", 3, cs.Deterministic(0.2))],
                  [cs.Flow("f", 1.0, [cs.Call("cpu"), cs.Call("disk"), cs.Call("cpu")])]),
        cs.ClosedWorkload(30, E(1.0)),
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_littles_law_holds_on_every_run(case, seed):
    system, workload = CASES[case]
    run = cs.simulate(system, workload, duration_s=20_000 if case != "branching" else 600,
                      warmup_s=100 if case != "branching" else 30, seed=seed)
    comp = run.components().set_index("component")
    for name, row in comp.iterrows():
        l_time_average = row["mean_in_system"]
        l_little = row["throughput_per_s"] * row["mean_response_s"]
        assert l_little == pytest.approx(l_time_average, rel=0.02), name
    total = run.latency().set_index("flow").loc["all" if len(system.flows) > 1 else "f"]
    assert total["throughput_per_s"] * total["mean_s"] == pytest.approx(
        comp["mean_in_system"].sum(), rel=0.02)

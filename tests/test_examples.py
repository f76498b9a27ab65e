"""The bundled case study: loads from its scenario files, and each stage is one change."""

import capsim as cs
from capsim.examples import case_study_stages, ecommerce_monolith, scenario


def test_monolith_is_the_before_scenario():
    system, workload = ecommerce_monolith()
    assert system == scenario("ecommerce_monolith").system
    assert workload.users == 10_000


def test_stages_walk_from_before_to_after_one_change_at_a_time():
    stages = case_study_stages()
    labels = [label for label, _ in stages]
    assert labels[0] == "monolith" and len(stages) == 5
    assert stages[0][1] == scenario("ecommerce_monolith").system
    assert stages[-1][1] == scenario("ecommerce_scaled").system
    indexed = stages[1][1]
    assert all(v.scale == 1.0 for r in indexed.routes() for v in r.calls)  # no scan left
    cached = stages[2][1]
    assert "redis" in {c.name for c in cached.components}
    assert cached.visits()["postgres"] < indexed.visits()["postgres"]  # hits spare the db
    replicated = stages[3][1]
    assert "postgres/shard1/replica2" in replicated.visits()
    load = scenario("ecommerce_monolith").workload
    for _, system in stages:
        assert cs.simulate(system, load, 20, 2, seed=1).stable


def test_the_scaling_reference_shop_is_read_from_the_case_study_scenario():
    from capsim.scaling.examples import ecommerce_scalable

    system, workload = ecommerce_scalable()
    shop = scenario("ecommerce_monolith")
    assert workload == shop.workload
    for name in ("app", "postgres"):
        assert system.component(name).service_time == shop.system.component(name).service_time
    app = system.component("app")
    assert (app.servers, app.instances, app.balancing) == (8, 2, "least_connections")
    assert all(v.scale == 1.0 for r in system.routes() for v in r.calls)  # every query indexed

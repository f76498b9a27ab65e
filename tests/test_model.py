"""Model: frozen, validated at construction, routes and visit ratios from flows."""

import dataclasses

import pytest

import capsim as cs

E = cs.Exponential


def web_system():
    return cs.System(
        [cs.Service("web", 8, cs.LogNormal(0.02, 1.0)), cs.Service("redis", 2, E(0.0005)),
         cs.Service("db", 4, E(0.008))],
        [cs.Flow("browse", 0.9, [cs.Call("web"), cs.Call("redis"),
                                 cs.Branch([(0.8, []), (0.2, [cs.Call("db")])])]),
         cs.Flow("checkout", 0.1, [cs.Call("web"), cs.Call("db"), cs.Call("db")])],
    )


def test_routes_expand_branches_with_probabilities():
    routes = web_system().routes()
    got = {(r.flow, tuple(c.component for c in r.calls)): r.probability for r in routes}
    assert got == pytest.approx({
        ("browse", ("web", "redis")): 0.72,
        ("browse", ("web", "redis", "db")): 0.18,
        ("checkout", ("web", "db", "db")): 0.1,
    })
    assert web_system().visits() == pytest.approx({"web": 1.0, "redis": 0.9, "db": 0.38})


def test_offered_load_is_rate_times_visits_times_service_over_servers():
    loads = web_system().offered_load(100.0)
    assert loads["db"] == pytest.approx(100 * 0.38 * 0.008 / 4)
    assert loads["web"] == pytest.approx(100 * 0.02 / 8)


def test_models_are_frozen_and_evolve_makes_validated_copies():
    system = web_system()
    with pytest.raises(dataclasses.FrozenInstanceError):
        system.components[0].servers = 3
    bigger = system.evolve("db", servers=16)
    assert bigger.component("db").servers == 16 and system.component("db").servers == 4
    with pytest.raises(cs.ModelError, match=r"Service\('db'\).servers: must be >= 1, got 0"):
        system.evolve("db", servers=0)
    with pytest.raises(cs.ModelError, match=r"no component named 'dbb' \(did you mean 'db'\?\)"):
        system.evolve("dbb", servers=2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: cs.Service("db", servers=0, service_time=E(1)),
         r"Service\('db'\).servers: must be >= 1, got 0"),
        (lambda: cs.Service("db", servers=-2, service_time=E(1)), r"must be >= 1, got -2"),
        (lambda: cs.Service("db", servers=2.5, service_time=E(1)),
         r"servers: must be an integer >= 1, got 2.5"),
        (lambda: cs.Service("db", servers=1, service_time=0.01),
         r"Service\('db'\).service_time: must be a distribution"),
        (lambda: cs.Service("db", 1, E(1), queue_capacity=-1),
         r"queue_capacity: must be >= 0, got -1"),
        (lambda: cs.Service("", 1, E(1)), r"Service.name: must be a non-empty string"),
        (lambda: cs.Flow("f", 0, [cs.Call("a")]), r"Flow\('f'\).weight: must be > 0, got 0"),
        (lambda: cs.Flow("f", -0.5, [cs.Call("a")]), r"weight: must be > 0, got -0.5"),
        (lambda: cs.Flow("f", 1, []), r"Flow\('f'\).steps: must hold at least one step"),
        (lambda: cs.Flow("f", 1, ["web"]), r"steps\[0\]: must be a step such as Call"),
        (lambda: cs.Branch([(0.5, [cs.Call("a")]), (0.4, [])]),
         r"Branch.options: probabilities must sum to 1, got 0.9"),
        (lambda: cs.Branch([(-0.5, []), (1.5, [])]), r"probability: must be >= 0, got -0.5"),
        (lambda: cs.OpenWorkload(users=-10, requests_per_user_s=1),
         r"OpenWorkload.users: must be > 0, got -10"),
        (lambda: cs.OpenWorkload(100, float("nan")),
         r"OpenWorkload.requests_per_user_s: must be finite, got nan"),
        (lambda: cs.ClosedWorkload(users=-1), r"ClosedWorkload.users: must be >= 1, got -1"),
        (lambda: cs.ClosedWorkload(users=5, think_time=3.0),
         r"ClosedWorkload.think_time: must be a distribution"),
    ],
)
def test_bad_input_names_field_and_value(make, message):
    with pytest.raises(cs.ModelError, match=message):
        make()


def test_system_level_checks():
    web = cs.Service("web", 1, E(1))
    with pytest.raises(cs.ModelError, match=r"unknown component 'wbe' \(did you mean 'web'\?\)"):
        cs.System([web], [cs.Flow("f", 1.0, [cs.Call("wbe")])])
    with pytest.raises(cs.ModelError, match=r"System.components: duplicate name 'web'"):
        cs.System([web, web], [cs.Flow("f", 1.0, [cs.Call("web")])])
    with pytest.raises(cs.ModelError, match=r"System.flows: duplicate name 'f'"):
        cs.System([web], [cs.Flow("f", 0.5, [cs.Call("web")]), cs.Flow("f", 0.5, [cs.Call("web")])])
    with pytest.raises(cs.ModelError, match=r"weights must sum to 1, got 0.9 \(a=0.6, b=0.3\)"):
        cs.System([web], [cs.Flow("a", 0.6, [cs.Call("web")]), cs.Flow("b", 0.3, [cs.Call("web")])])
    with pytest.raises(cs.ModelError, match=r"System.flows: must hold at least one Flow"):
        cs.System([web], [])
    with pytest.raises(cs.ModelError, match=r"Flow\('f'\).steps: calls no component"):
        cs.Flow("f", 1.0, [cs.Branch([(1.0, [])])])


def test_workload_rates():
    w = cs.OpenWorkload(users=20_000, requests_per_user_s=0.01, interarrival=cs.Gamma(1.0, 0.5))
    assert w.arrival_rate_per_s == pytest.approx(200.0)
    gap = w.interarrival_time()
    assert gap.mean == pytest.approx(1 / 200) and gap.cv == pytest.approx(0.5)
    assert w.with_users(40_000).arrival_rate_per_s == pytest.approx(400.0)

"""Balancing policies: power_of_two compares two *different* instances."""

from collections import Counter

import numpy as np
import pytest
import simpy

import capsim as cs
from capsim.engine.balancer import Balancer
from capsim.engine.station import Station
from capsim.engine.streams import Draws

E = cs.Exponential


def stations_with(loads: list[int]) -> list[Station]:
    """Idle stations whose ``n`` (requests present) is set by hand: the balancer reads only n."""
    env = simpy.Environment()
    out = []
    for k, n in enumerate(loads):
        st = Station(env, f"app[{k}]", 4, Draws(E(0.01), np.random.default_rng(k)))
        st.n = n
        out.append(st)
    return out


def picks(loads: list[int], draws: int, seed: int = 0) -> Counter:
    stations = stations_with(loads)
    pick = Balancer(stations, "power_of_two", np.random.default_rng(seed))
    return Counter(stations.index(pick.choose()) for _ in range(draws))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_of_two_with_two_instances_always_takes_the_less_loaded(seed):
    # with replacement both picks would be the loaded one a quarter of the time
    assert picks([5, 0], 2000, seed) == {1: 2000}
    assert picks([0, 5], 2000, seed) == {0: 2000}


def test_power_of_two_never_takes_the_most_loaded_of_three_and_pairs_are_uniform():
    # distinct uniform pairs of 3: the least loaded is in 2 of 3 pairs, the middle wins the
    # third, the most loaded never wins (with replacement: 5/9, 3/9, 1/9)
    count = picks([0, 1, 2], 6000)
    assert count[2] == 0
    assert count[0] / 6000 == pytest.approx(2 / 3, abs=0.04)
    assert count[1] / 6000 == pytest.approx(1 / 3, abs=0.04)


def test_power_of_two_ties_spread_evenly():
    count = picks([3, 3, 3, 3], 8000)  # every pick is a tie: the first of the pair wins
    assert set(count) == {0, 1, 2, 3}
    assert all(c / 8000 == pytest.approx(0.25, abs=0.03) for c in count.values())


@pytest.mark.parametrize("policy", ["power_of_two", "least_connections"])
def test_two_instances_no_request_waits_while_the_other_is_idle(policy):
    # one arrival a second, 1.5 s of work each, two single-worker instances: every arrival
    # finds one busy and one idle instance, and a balancer that sees both never queues
    system = cs.System([cs.Service("app", 1, cs.Deterministic(1.5), instances=2,
                                   balancing=policy)],
                       [cs.Flow("f", 1.0, [cs.Call("app")])])
    load = cs.OpenWorkload(1, 1.0, interarrival=cs.Deterministic())
    lat = cs.simulate(system, load, 300, seed=3).requests()["latency_s"]
    assert len(lat) > 250
    assert lat.max() == pytest.approx(1.5)

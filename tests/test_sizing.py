"""capsim.scaling.sizing: what a system runs on, and the users its bottleneck carries."""

import math

import pytest

import capsim as cs
from capsim.scaling.sizing import bottleneck, vcpus

E = cs.Exponential


def shop(**pg):
    app = cs.Service("app", servers=4, instances=3, service_time=E(0.02))
    db = cs.Database("pg", servers=8, service_time=E(0.008), **pg)
    net = cs.Delay("internet", cs.Deterministic(0.03))
    return cs.System([net, app, db], [cs.Flow("page", 1.0, [cs.Call("internet"), cs.Call("app"),
                                                             cs.Read("pg"), cs.Read("pg")])])


def test_vcpus_count_every_worker_and_no_delay():
    assert vcpus(shop()) == 3 * 4 + 8
    assert vcpus(shop(read_replicas=2)) == 3 * 4 + 3 * 8
    assert vcpus(shop(shards=3)) == 3 * 4 + 3 * 8


def test_the_bottleneck_and_the_users_it_carries():
    b = bottleneck(shop())
    # pg: 2 reads x 8 ms over 8 cores = 2 ms per request; app: 20 ms over 12 workers = 1.67 ms
    assert b.station == "pg"
    assert b.capacity_per_s == pytest.approx(500.0)
    assert b.users_at(0.02) == pytest.approx(25_000)
    assert b.users_at(0.02, level=0.8) == pytest.approx(20_000)
    assert b.capacity_per_s == pytest.approx(cs.scaling.capacity_per_s(shop()))
    with pytest.raises(cs.ModelError):
        b.users_at(0.0)


def test_a_system_of_delays_has_no_bottleneck():
    system = cs.System([cs.Delay("wait", cs.Deterministic(1.0))],
                       [cs.Flow("f", 1.0, [cs.Call("wait")])])
    assert bottleneck(system).capacity_per_s == math.inf and vcpus(system) == 0

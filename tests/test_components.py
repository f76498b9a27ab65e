"""Web components: validated at construction (errors name the field and the value), and lowered
to the stations and visits the engine and the analytic twin share."""

import dataclasses

import pytest

import capsim as cs
from capsim.model.lowering import Visit
from capsim.model.popularity import che_hit_ratio

E = cs.Exponential


def svc(name="app", servers=1, **kw):
    return cs.Service(name, servers, E(0.01), **kw)


def one_flow(components, steps, **kw):
    return cs.System(components, [cs.Flow("f", 1.0, steps)], **kw)


# -- construction: every bad input names its field and its value ------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # Service (replicated)
        (lambda: svc(instances=0), r"Service\('app'\).instances: must be >= 1, got 0"),
        (lambda: svc(instances=2.0), r"Service\('app'\).instances: must be an integer >= 1, "
                                     r"got 2.0"),
        (lambda: svc(balancing="fastest"),
         r"Service\('app'\).balancing: must be one of round_robin, random, least_connections, "
         r"power_of_two, got 'fastest'"),
        # Delay, CDN
        (lambda: cs.Delay("net", latency=0.01),
         r"Delay\('net'\).latency: must be a distribution such as Exponential\(mean=0.01\), "
         r"got 0.01"),
        (lambda: cs.CDN("edge", hit_ratio=1.2, edge_latency=E(0.01)),
         r"CDN\('edge'\).hit_ratio: must be <= 1, got 1.2"),
        (lambda: cs.CDN("edge", hit_ratio=-0.1, edge_latency=E(0.01)),
         r"CDN\('edge'\).hit_ratio: must be >= 0, got -0.1"),
        (lambda: cs.CDN("edge", hit_ratio=0.9), r"CDN\('edge'\).edge_latency: must be a "
                                                r"distribution"),
        # Cache
        (lambda: cs.Cache("redis", 1, E(1e-3), hit_ratio=0.5, keys=1000, capacity_keys=10),
         r"Cache\('redis'\).hit_ratio: give hit_ratio or keys\+capacity_keys, not both, got 0.5"),
        (lambda: cs.Cache("redis", 1, E(1e-3), hit_ratio=1.5),
         r"Cache\('redis'\).hit_ratio: must be <= 1, got 1.5"),
        (lambda: cs.Cache("redis", 1, E(1e-3), hit_ratio=-0.2),
         r"Cache\('redis'\).hit_ratio: must be >= 0, got -0.2"),
        (lambda: cs.Cache("redis", 1, E(1e-3)),
         r"Cache\('redis'\).hit_ratio: give hit_ratio, or keys and capacity_keys .*, got None"),
        (lambda: cs.Cache("redis", 1, E(1e-3), keys=1000),
         r"Cache\('redis'\).hit_ratio: give hit_ratio, or keys and capacity_keys"),
        (lambda: cs.Cache("redis", 1, E(1e-3), keys=0, capacity_keys=10),
         r"Cache\('redis'\).keys: must be >= 1, got 0"),
        (lambda: cs.Cache("redis", 1, E(1e-3), keys=1000, capacity_keys=0),
         r"Cache\('redis'\).capacity_keys: must be >= 1, got 0"),
        (lambda: cs.Cache("redis", 1, E(1e-3), keys=1000, capacity_keys=10, zipf_s=-1),
         r"Cache\('redis'\).zipf_s: must be >= 0, got -1"),
        (lambda: cs.Cache("redis", 1, E(1e-3), hit_ratio=0.9, ttl_s=60),
         r"Cache\('redis'\).ttl_s: needs the key model \(keys, capacity_keys\); .*, got 60"),
        (lambda: cs.Cache("redis", 1, E(1e-3), keys=1000, capacity_keys=10, ttl_s=0),
         r"Cache\('redis'\).ttl_s: must be > 0, got 0"),
        (lambda: cs.Cache("redis", 0, E(1e-3), hit_ratio=0.5),
         r"Cache\('redis'\).servers: must be >= 1, got 0"),
        # Database
        (lambda: cs.Database("pg", 2, E(0.01), shards=2, shard_weights=(0.5, 0.4)),
         r"Database\('pg'\).shard_weights: must sum to 1, got 0.9"),
        (lambda: cs.Database("pg", 2, E(0.01), shards=2, shard_weights=(1.0,)),
         r"Database\('pg'\).shard_weights: must hold 2 weights \(one per shard\), got \[1.0\]"),
        (lambda: cs.Database("pg", 2, E(0.01), shards=3, shard_weights=(0.5, 0.5)),
         r"must hold 3 weights \(one per shard\), got \[0.5, 0.5\]"),
        (lambda: cs.Database("pg", 2, E(0.01), shards=2, shard_weights=(1.1, -0.1)),
         r"Database\('pg'\).shard_weights\[1\]: must be > 0, got -0.1"),
        (lambda: cs.Database("pg", 2, E(0.01), shards=0),
         r"Database\('pg'\).shards: must be >= 1, got 0"),
        (lambda: cs.Database("pg", 2, E(0.01), read_replicas=-1),
         r"Database\('pg'\).read_replicas: must be >= 0, got -1"),
        (lambda: cs.Database("pg", 2, E(0.01), read_policy="nearest"),
         r"Database\('pg'\).read_policy: must be one of round_robin, .*, got 'nearest'"),
        (lambda: cs.Database("pg", 2, E(0.01), replication_lag=0.1),
         r"Database\('pg'\).replication_lag: must be a distribution"),
        (lambda: cs.Database("pg", 2, E(0.01), table_rows=0),
         r"Database\('pg'\).table_rows: must be >= 1, got 0"),
        (lambda: cs.Database("pg", 2, E(0.01), scan_rows_per_s=0),
         r"Database\('pg'\).scan_rows_per_s: must be > 0, got 0"),
        # MessageQueue
        (lambda: cs.MessageQueue("orders", partitions=2, consumer=svc("worker", 4)),
         r"MessageQueue\('orders'\).consumer.servers: must be <= partitions \(2\): a partition "
         r"has at most one consumer, got 4"),
        (lambda: cs.MessageQueue("orders", partitions=2),
         r"MessageQueue\('orders'\).consumer: must be a Service \(the consumer group\), "
         r"got None"),
        (lambda: cs.MessageQueue("orders", partitions=0, consumer=svc("worker")),
         r"MessageQueue\('orders'\).partitions: must be >= 1, got 0"),
        (lambda: cs.MessageQueue("orders", 2, svc("worker"), publish_latency=0.002),
         r"MessageQueue\('orders'\).publish_latency: must be a distribution"),
        (lambda: cs.MessageQueue("orders", 2, svc("worker"), retention_s=-5),
         r"MessageQueue\('orders'\).retention_s: must be > 0, got -5"),
        # Outage
        (lambda: cs.Outage("app", start_s=-1, duration_s=10),
         r"Outage.start_s: must be >= 0, got -1"),
        (lambda: cs.Outage("app", start_s=10, duration_s=0),
         r"Outage.duration_s: must be > 0, got 0"),
        (lambda: cs.Outage("app", 10, 10, instance=-1), r"Outage.instance: must be >= 0, got -1"),
        (lambda: cs.Outage("", 10, 10), r"Outage.component: must be a non-empty string"),
    ],
)
def test_bad_component_input_names_field_and_value(make, message):
    with pytest.raises(cs.ModelError, match=message):
        make()


def test_shard_weights_are_stored_as_a_tuple_and_default_to_uniform():
    pg = cs.Database("pg", 1, E(0.01), shards=2, shard_weights=[0.7, 0.3])
    assert pg.shard_weights == (0.7, 0.3) and pg.weights == (0.7, 0.3)
    assert cs.Database("pg", 1, E(0.01), shards=4).weights == (0.25,) * 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        pg.shards = 3


# -- system level: steps that suit their component, outages that name something real ------------


REDIS = cs.Cache("redis", 2, E(5e-4), hit_ratio=0.8)
PG = cs.Database("pg", 4, E(0.008))
ORDERS = cs.MessageQueue("orders", 2, consumer=svc("worker", 2))


@pytest.mark.parametrize(
    ("components", "steps", "message"),
    [
        ([svc()], [cs.Publish("app")],
         r"Flow\('f'\).steps: Publish\('app'\) is not something a Service does; use Call"),
        ([svc()], [cs.Read("app")], r"Read\('app'\) is not something a Service does; use Call"),
        ([REDIS], [cs.Call("redis")],
         r"Call\('redis'\) is not something a Cache does; use Read or Write"),
        ([PG], [cs.Publish("pg")], r"Publish\('pg'\) is not something a Database does; "
                                   r"use Read or Write"),
        ([ORDERS], [cs.Call("orders")],
         r"Call\('orders'\) is not something a MessageQueue does; use Publish"),
        ([cs.CDN("edge", 0.9, E(0.01))], [cs.Write("edge")],
         r"Write\('edge'\) is not something a CDN does; use Read"),
        ([cs.Delay("net", E(0.01))], [cs.Read("net")],
         r"Read\('net'\) is not something a Delay does; use Call"),
        # nested steps are checked too
        ([svc(), ORDERS], [cs.Call("app", calls=[cs.Call("orders")])],
         r"Call\('orders'\) is not something a MessageQueue does"),
        ([REDIS, svc()], [cs.Read("redis", on_miss=[cs.Publish("app")])],
         r"Publish\('app'\) is not something a Service does"),
        ([PG], [cs.Read("pg", on_miss=[cs.Read("pg")])],
         r"Read\('pg'\) on a Database has no on_miss \(only caches miss\)"),
        ([PG], [cs.Read("pg", index=False)],
         r"Database\('pg'\).table_rows: is needed for Read\(..., index=False\), got None"),
        ([REDIS], [cs.Read("redis", on_miss=[cs.Read("pgg")])],
         r"unknown component 'pgg'; known: redis"),
    ],
)
def test_a_step_must_suit_its_component(components, steps, message):
    with pytest.raises(cs.ModelError, match=message):
        one_flow(components, steps)


@pytest.mark.parametrize(
    ("outage", "message"),
    [
        (cs.Outage("ap", 10, 5),
         r"System.outages\[0\].component: unknown component or station 'ap'; components: app, pg"),
        (cs.Outage("app", 10, 5, instance=3),
         r"System.outages\[0\].instance: Service\('app'\) has no instance 3"),
        (cs.Outage("pg", 10, 5, instance=0),
         r"System.outages\[0\].instance: Database\('pg'\) has no instance 0"),
    ],
)
def test_outages_name_a_component_and_an_instance_it_has(outage, message):
    with pytest.raises(cs.ModelError, match=message):
        one_flow([svc(instances=3), PG], [cs.Call("app"), cs.Read("pg")], outages=[outage])


def test_valid_outages_are_kept_and_a_bad_outage_list_is_refused():
    system = one_flow([svc(instances=3)], [cs.Call("app")],
                      outages=[cs.Outage("app", 10, 5, instance=2), cs.Outage("app", 30, 5)])
    assert [o.instance for o in system.outages] == [2, None]
    with pytest.raises(cs.ModelError, match=r"System.outages\[0\]: must be a Outage"):
        one_flow([svc()], [cs.Call("app")], outages=["app"])


# -- lowering: station names ------------------------------------------------------------------


def names(system):
    return [(s.name, s.component, s.servers) for s in system.stations()]


def test_station_names_of_every_component_kind():
    system = cs.System(
        [svc("app", 4, instances=3), svc("one"), cs.Delay("net", E(0.001)),
         cs.CDN("edge", 0.9, E(0.01)), REDIS,
         cs.Database("pg", 4, E(0.008), read_replicas=2),
         cs.Database("sh", 2, E(0.008), read_replicas=1, shards=2),
         cs.MessageQueue("orders", 3, consumer=svc("worker", 2), publish_latency=E(0.002),
                         retention_s=60)],
        [cs.Flow("f", 1.0, [cs.Call("net"), cs.Read("edge"), cs.Call("app"), cs.Call("one"),
                            cs.Read("redis"), cs.Read("pg"), cs.Write("sh"),
                            cs.Publish("orders")])])
    assert names(system) == [
        ("app[0]", "app", 4), ("app[1]", "app", 4), ("app[2]", "app", 4),
        ("one", "one", 1),
        ("net", "net", None), ("edge", "edge", None),  # pure delays: infinite servers
        ("redis", "redis", 2),
        ("pg", "pg", 4), ("pg/replica1", "pg", 4), ("pg/replica2", "pg", 4),
        ("sh/shard0", "sh", 2), ("sh/shard0/replica1", "sh", 2),
        ("sh/shard1", "sh", 2), ("sh/shard1/replica1", "sh", 2),
        ("orders/broker", "orders", None),
        ("orders/consumer0", "orders", 1), ("orders/consumer1", "orders", 1),
    ]
    consumer = system.stations()[-1]
    assert consumer.max_wait_s == 60 and consumer.service_time == E(0.01)
    # the engine builds exactly these stations
    run = cs.simulate(system, cs.OpenWorkload(1, 10.0), 5, seed=1)
    assert list(run.station_names) == [s.name for s in system.stations()]


def test_a_queue_without_publish_latency_has_no_broker_station():
    system = one_flow([ORDERS], [cs.Publish("orders")])
    assert [s.name for s in system.stations()] == ["orders/consumer0", "orders/consumer1"]
    assert system.routes()[0].calls == ()  # publishing costs the request nothing


# -- lowering: routes, visits and demands ----------------------------------------------------


def test_cache_misses_send_one_minus_h_of_reads_to_the_origin():
    system = one_flow([REDIS, PG], [cs.Read("redis", on_miss=[cs.Read("pg")])])
    routes = {tuple(v.component for v in r.calls): r.probability for r in system.routes()}
    assert routes == pytest.approx({("redis",): 0.8, ("redis", "pg"): 0.2})
    assert system.visits() == pytest.approx({"redis": 1.0, "pg": 0.2})
    assert system.offered_load(1000.0)["pg"] == pytest.approx(1000 * 0.2 * 0.008 / 4)


def test_an_lru_cache_is_lowered_with_ches_hit_ratio_unless_told_otherwise():
    lru = cs.Cache("c", 4, E(5e-4), keys=10_000, zipf_s=0.9, capacity_keys=1_000)
    system = one_flow([lru, PG], [cs.Read("c", on_miss=[cs.Read("pg")])])
    h = che_hit_ratio(10_000, 0.9, 1_000)
    assert system.visits()["pg"] == pytest.approx(1 - h)
    assert system.visits(hit_ratio=lambda c: 0.25)["pg"] == pytest.approx(0.75)
    assert lru.dynamic and not REDIS.dynamic


def test_a_cdn_miss_goes_to_the_origin():
    system = one_flow([cs.CDN("edge", 0.95, E(0.01)), svc("origin")],
                      [cs.Read("edge", on_miss=[cs.Call("origin")])])
    assert system.visits() == pytest.approx({"edge": 1.0, "origin": 0.05})


def test_instances_share_calls_evenly():
    system = one_flow([svc("app", 2, instances=4)], [cs.Call("app")])
    assert system.visits() == pytest.approx({f"app[{i}]": 0.25 for i in range(4)})
    assert system.component("app").capacity_per_s == pytest.approx(4 * 2 / 0.01)


def test_replicas_take_reads_and_primaries_writes_per_shard_weight():
    pg = cs.Database("pg", 2, E(0.01), read_replicas=2, shards=2, shard_weights=(0.75, 0.25))
    system = cs.System([pg], [cs.Flow("read", 0.8, [cs.Read("pg")]),
                              cs.Flow("write", 0.2, [cs.Write("pg")])])
    assert system.visits() == pytest.approx({
        "pg/shard0": 0.2 * 0.75, "pg/shard0/replica1": 0.8 * 0.75 / 2,
        "pg/shard0/replica2": 0.8 * 0.75 / 2,
        "pg/shard1": 0.2 * 0.25, "pg/shard1/replica1": 0.8 * 0.25 / 2,
        "pg/shard1/replica2": 0.8 * 0.25 / 2,
    })
    no_replicas = one_flow([cs.Database("db", 2, E(0.01))], [cs.Read("db"), cs.Write("db")])
    assert no_replicas.visits() == pytest.approx({"db": 2.0})  # the primary serves reads


def test_a_full_scan_scales_the_demand_by_rows_over_scan_rate_over_mean_service():
    pg = cs.Database("pg", 2, E(0.001), table_rows=50_000, scan_rows_per_s=5e6)
    assert pg.scan_factor() == pytest.approx(10.0)
    system = one_flow([pg], [cs.Branch([(0.9, [cs.Read("pg")]),
                                        (0.1, [cs.Read("pg", index=False)])])])
    scans = [r for r in system.routes() if r.calls[0].scale != 1.0]
    assert [(r.probability, r.calls[0].scale) for r in scans] == [(pytest.approx(0.1), 10.0)]
    assert system.demands()["pg"] == pytest.approx(0.9 * 0.001 + 0.1 * 0.01)


def test_a_holding_call_marks_the_visits_it_holds_across():
    system = one_flow([svc("api", 8), svc("db", 2), REDIS],
                      [cs.Call("api", calls=[cs.Call("db"), cs.Call("db")]), cs.Read("redis")])
    (route,) = system.routes()
    assert route.calls == (Visit("api", 1.0, holds=2), Visit("db"), Visit("db"),
                           Visit("redis"))
    # the held worker is busy for the calls' service too (a lower bound: waits come on top)
    assert system.offered_load(100.0)["api"] == pytest.approx(100 * (0.01 + 2 * 0.01) / 8)


def test_messages_go_to_the_partition_owners_and_count_as_consumer_visits():
    q = cs.MessageQueue("orders", partitions=5, consumer=svc("worker", 2))
    assert q.partition_share() == pytest.approx((3 / 5, 2 / 5))  # p mod K owns partition p
    system = cs.System([svc("api"), q, REDIS], [
        cs.Flow("checkout", 0.5, [cs.Call("api", calls=[cs.Publish("orders")])]),
        cs.Flow("browse", 0.5, [cs.Read("redis", on_miss=[cs.Publish("orders")])])])
    rate = 0.5 + 0.5 * 0.2  # every checkout, and browses that miss
    assert system.publish_rates() == pytest.approx({"orders": rate})
    v = system.visits()
    assert (v["orders/consumer0"], v["orders/consumer1"]) == pytest.approx(
        (rate * 3 / 5, rate * 2 / 5))
    assert q.capacity_per_s == pytest.approx(2 / 0.01)


def test_an_outage_can_take_down_one_database_box():
    db = cs.Database("pg", 2, E(0.01), read_replicas=2)
    system = one_flow([db], [cs.Read("pg")], outages=[cs.Outage("pg/replica1", 10, 50)])
    run = cs.simulate(system, cs.OpenWorkload(1, 50.0), 70, seed=1, sample_interval_s=1)
    ts = run.timeseries(10)
    tput = ts[ts["metric"] == "throughput_per_s"].pivot(index="time_s", columns="name",
                                                       values="value")
    assert (tput.loc[30.0:60.0, "pg/replica1"] == 0).all()  # down: serves nothing
    assert (tput.loc[30.0:60.0, "pg/replica2"] > 40).all()  # its twin takes all the reads
    with pytest.raises(cs.ModelError, match=r"outages\[0\].component: unknown component or "
                                            r"station 'pg/replica9'"):
        one_flow([db], [cs.Read("pg")], outages=[cs.Outage("pg/replica9", 10, 50)])

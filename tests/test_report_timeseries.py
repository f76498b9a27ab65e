"""capsim.report.timeseries: per-window station and flow tables of one run, and recoveries.

Exact checks use deterministic arrivals and service times chosen so that no event falls on a
sampling instant; totals are checked against the run's own counters on random runs.
"""

import numpy as np
import pytest

import capsim as cs
from capsim.report.timeseries import (
    latency_of_arrivals,
    latency_timeseries,
    recovery,
    station_timeseries,
    user_requests,
)

D, E = cs.Deterministic, cs.Exponential


def clockwork(outages=(), capacity=None):
    """Arrivals at 1.1, 2.2, 3.3 s; each served in 0.15 s by one server; sampled every 0.5 s."""
    system = cs.System([cs.Service("s", 1, D(0.15), queue_capacity=capacity)],
                       [cs.Flow("f", 1.0, [cs.Call("s")])], outages=list(outages))
    return cs.simulate(system, cs.OpenWorkload(1, 1 / 1.1, D(1.1)), duration_s=4.0,
                       sample_interval_s=0.5)


def test_station_windows_are_exact_on_a_deterministic_run():
    ts = station_timeseries(clockwork())
    np.testing.assert_allclose(ts["time_s"], np.arange(1, 9) * 0.5)
    busy = np.array([0, 0, 0.3, 0, 0.3, 0, 0.3, 0])  # 0.15 s busy in (1,1.5], (2,2.5], (3,3.5]
    np.testing.assert_allclose(ts["mean_present"], busy, atol=1e-12)
    np.testing.assert_allclose(ts["utilization"], busy, atol=1e-12)
    np.testing.assert_allclose(ts["arrivals_per_s"], (busy > 0) * 2.0)
    np.testing.assert_allclose(ts["throughput_per_s"], (busy > 0) * 2.0)
    assert (ts["present"] == 0).all() and (ts["drops_per_s"] == 0).all()


def test_present_counts_requests_held_by_an_outage():
    # the server is down from 2 to 3.5 s: the request arriving at 2.2 waits until 3.5
    ts = station_timeseries(clockwork([cs.Outage("s", 2.0, 1.5)])).set_index("time_s")
    assert ts.loc[2.5, "present"] == 1 and ts.loc[3.0, "present"] == 1
    assert ts.loc[3.5, "present"] == 2  # 3.3 arrived; the 2.2 one starts at 3.5
    assert ts.loc[4.0, "present"] == 0
    assert ts.loc[2.5, "utilization"] == 0


def test_drops_per_window():
    ts = station_timeseries(clockwork([cs.Outage("s", 2.0, 0.5)], capacity=0))
    drops = ts.set_index("time_s")["drops_per_s"]
    assert drops[2.5] == 2.0 and drops.drop(2.5).eq(0).all()


@pytest.fixture(scope="module")
def busy_run():
    app = cs.Service("app", servers=2, instances=3, service_time=E(0.02))
    db = cs.Database("db", servers=2, service_time=E(0.005), read_replicas=1)
    system = cs.System([app, db], [
        cs.Flow("read", 0.8, [cs.Call("app"), cs.Read("db")]),
        cs.Flow("write", 0.2, [cs.Call("app"), cs.Write("db")])])
    return cs.simulate(system, cs.OpenWorkload(1, 150.0), duration_s=60, seed=3)


def test_windows_add_up_to_the_run_totals(busy_run):
    ts = station_timeseries(busy_run)
    dt = np.diff(busy_run.sample_times_s)
    for k, name in enumerate(busy_run.station_names):
        rows = ts[ts["station"] == name]
        assert len(rows) == dt.size
        for col, counter in [("throughput_per_s", "completions"), ("arrivals_per_s", "arrivals"),
                             ("mean_present", "area_in_system")]:
            total = busy_run.counter(counter)[-1, k] - busy_run.counter(counter)[0, k]
            assert np.sum(rows[col].to_numpy() * dt) == pytest.approx(total)


def test_by_component_adds_the_stations_of_each_component(busy_run):
    stations = station_timeseries(busy_run, ["app"])
    assert set(stations["station"]) == {"app[0]", "app[1]", "app[2]"}
    summed = station_timeseries(busy_run, ["app", "db"], by_component=True)
    assert list(dict.fromkeys(summed["station"])) == ["app", "db"]
    app = summed[summed["station"] == "app"].reset_index(drop=True)
    by_time = stations.groupby("time_s", sort=True)
    np.testing.assert_allclose(app["present"], by_time["present"].sum().to_numpy())
    np.testing.assert_allclose(app["throughput_per_s"],
                               by_time["throughput_per_s"].sum().to_numpy())
    np.testing.assert_allclose(app["utilization"], by_time["utilization"].mean().to_numpy())
    assert (summed["utilization"] <= 1 + 1e-9).all()


def test_components_come_from_the_run_not_from_parsing_names(busy_run):
    # a database's primary and replica are one component, as the run says
    assert set(station_timeseries(busy_run, ["db"])["station"]) == {"db", "db/replica1"}
    summed = station_timeseries(busy_run, by_component=True)
    assert list(dict.fromkeys(summed["station"])) == ["app", "db"]


def test_unknown_station_is_an_error(busy_run):
    with pytest.raises(KeyError, match="nope"):
        station_timeseries(busy_run, ["nope"])


def test_latency_windows_by_arrival_time():
    lat = latency_timeseries(clockwork(), 1.0)
    assert list(lat["time_s"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(lat["finished"]) == [0, 1, 1, 1]
    np.testing.assert_allclose(lat["p99_s"].iloc[1:], 0.15)
    assert lat["p50_s"].isna().iloc[0] and lat["error_rate"].isna().iloc[0]
    assert (lat["errors"] == 0).all()


def test_latency_windows_count_errors_where_the_request_arrived():
    lat = latency_timeseries(clockwork([cs.Outage("s", 2.0, 0.5)], capacity=0), 1.0)
    lat = lat.set_index("time_s")
    assert lat.loc[2.0, "errors"] == 1 and lat.loc[2.0, "error_rate"] == 1.0
    assert lat["errors"].drop(2.0).eq(0).all()


def test_latency_windows_add_up_and_filter_flows(busy_run):
    lat = latency_timeseries(busy_run, 5.0, flows=["write"])
    assert set(lat["flow"]) == {"write"}
    assert lat["finished"].sum() == busy_run.latency(observed=True).set_index("flow").loc[
        "write", "count"]  # no warm-up: the run's table counts every finished request
    assert (lat["p50_s"] <= lat["p99_s"]).all()
    with pytest.raises(KeyError):
        latency_timeseries(busy_run, 5.0, flows=["missing"])
    with pytest.raises(ValueError):
        latency_timeseries(busy_run, 0.0)


def test_recovery_finds_the_peak_and_the_return():
    t = np.arange(11.0)
    v = np.array([0, 0, 5, 9, 7, 3, 1, 0, 0, 2, 0])
    r = recovery(t, v, after_s=1, level=1)
    assert (r.peak, r.peak_s, r.back_s, r.recovered) == (9, 3.0, 6.0, True)
    never = recovery(t, v, after_s=1, level=-1)
    assert never.back_s == np.inf and not never.recovered
    assert recovery(t, v, after_s=8.5, level=0).peak_s == 9.0
    with pytest.raises(ValueError):
        recovery(t, v[:-1], after_s=0, level=0)
    with pytest.raises(ValueError):
        recovery(t, v, after_s=20, level=0)


def queued_run():
    """Requests on ``api`` publish to ``orders``, whose consumer is slow (async latency)."""
    api = cs.Service("api", 4, E(0.01))
    orders = cs.MessageQueue("orders", partitions=2, consumer=cs.Service("worker", 1, E(0.05)))
    system = cs.System([api, orders], [cs.Flow("buy", 1.0, [cs.Call("api"),
                                                            cs.Publish("orders")])])
    return cs.simulate(system, cs.OpenWorkload(1, 20.0), duration_s=60, seed=5)


def test_user_requests_leave_out_the_async_flows():
    run = queued_run()
    assert run.async_flows == 1 and "orders (async)" in set(run.requests()["flow"])
    users = user_requests(run)
    assert set(users["flow"]) == {"buy"}
    assert len(users) == (run.requests()["flow"] == "buy").sum()


def test_latency_of_arrivals_pools_the_user_flows_of_a_span(busy_run):
    got = latency_of_arrivals(busy_run, 10.0, 30.0)
    req = busy_run.requests()
    x = req.loc[(req["arrival_s"] >= 10) & (req["arrival_s"] < 30), "latency_s"]
    assert got["count"] == len(x)
    assert got["mean_s"] == pytest.approx(x.mean())
    assert got["p99_s"] == pytest.approx(x.quantile(0.99))
    assert got["p50_s"] <= got["p95_s"] <= got["p99_s"]
    assert np.isnan(latency_of_arrivals(busy_run, 100.0, 200.0)["mean_s"])
    with pytest.raises(ValueError):
        latency_of_arrivals(busy_run, 30.0, 10.0)

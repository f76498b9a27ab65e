"""Target-tracking autoscaling: scales out after a spike (boot delay included), back in after."""

import pytest

import capsim as cs

E = cs.Exponential


def system(**kw) -> cs.System:
    return cs.System(
        [cs.Service("app", 4, E(0.05), instances=12, balancing="least_connections")],
        [cs.Flow("f", 1.0, [cs.Call("app")])],
        autoscalers=[cs.Autoscaler("app", **{"target_utilization": 0.6, "min_instances": 2,
                                              "max_instances": 12, "interval_s": 60,
                                              "provision_s": 120, "cooldown_s": 180, **kw})])


def test_scales_out_on_a_spike_after_the_boot_delay_and_back_in():
    load = cs.OpenWorkload(1, 80.0, profile=cs.Spike(1800, 1800, 3.0))  # 80/s -> 240/s
    run = cs.simulate(system(), load, 5400, seed=1, sample_interval_s=30)
    hist = run.instances()
    before = hist[hist["time_s"] < 1800]
    assert (before["instances"] == 2).all()  # 80/s x 50 ms / 4 = 1 instance-load: 2 is enough
    first_up = hist[(hist["time_s"] >= 1800) & (hist["instances"] > 2)].iloc[0]
    serving = hist[(hist["time_s"] > first_up["time_s"]) & (hist["serving"] > 2)].iloc[0]
    assert serving["time_s"] - first_up["time_s"] == pytest.approx(120)  # boot time
    # 240/s x 50 ms = 12 busy workers = 3 instances at 100%; at 60% target: 5
    during = hist[(hist["time_s"] > 2400) & (hist["time_s"] < 3600)]
    assert during.empty or (during["serving"] >= 5).all()
    assert hist.iloc[-1]["instances"] == 2  # back to the minimum after the spike
    # while instances booted, the p99 paid for it
    ts = run.timeseries(300)
    p99 = ts[(ts["name"] == "f") & (ts["metric"] == "p99_s")].set_index("time_s")["value"]
    assert p99.loc[2100] > 10 * p99.loc[1500]


def test_autoscaler_validation():
    with pytest.raises(cs.ModelError, match=r"target_utilization: must be < 1"):
        cs.Autoscaler("app", target_utilization=1.2)
    with pytest.raises(cs.ModelError, match=r"max_instances: must be >= 3, got 2"):
        cs.Autoscaler("app", min_instances=3, max_instances=2)
    with pytest.raises(cs.ModelError, match=r"has instances=12; give it at least 20"):
        system(max_instances=20)
    with pytest.raises(cs.ModelError, match=r"autoscalers\[0\].component: must name a Service"):
        cs.System([cs.Delay("d", E(1.0))], [cs.Flow("f", 1.0, [cs.Call("d")])],
                  autoscalers=[cs.Autoscaler("d")])


@pytest.mark.parametrize(("policy", "seed", "holding"),
                         [("random", 1, False), ("round_robin", 2, False), ("random", 3, True)])
def test_scale_in_drains_the_stopped_instance(policy, seed, holding):
    # single-worker instances at moderate load that rises and falls every 10 minutes: the
    # scaler stops instances that still have requests queued; those must be served, not left
    # waiting until the instance is started again (or for ever). With ``holding``, the worker
    # stays with its request through a downstream call (0.1 s of worker time either way).
    if holding:
        app = cs.Service("app", 1, E(0.05), instances=8, balancing=policy)
        steps = [cs.Call("app", calls=[cs.Call("db")])]
        parts = [app, cs.Delay("db", E(0.05))]
    else:
        parts = [cs.Service("app", 1, E(0.1), instances=8, balancing=policy)]
        steps = [cs.Call("app")]
    system = cs.System(parts, [cs.Flow("f", 1.0, steps)],
                       autoscalers=[cs.Autoscaler("app", target_utilization=0.7, min_instances=2,
                                                  max_instances=8, interval_s=30,
                                                  provision_s=30, cooldown_s=60)])
    quiet_s = 5700  # no arrivals after this: every admitted request must be done by the end
    profile = (cs.Diurnal(trough=0.3, peak_hour=12, period_s=600)
               * cs.Piecewise((0, quiet_s - 1, quiet_s), (1, 1, 0)))
    run = cs.simulate(system, cs.OpenWorkload(1, 30.0, profile=profile), 6000, seed=seed,
                      sample_interval_s=30)
    hist = run.instances()
    assert (hist["instances"].diff() < 0).sum() >= 10  # it scaled in, many times
    assert sum(s.present_at_end for s in run.stations) == 0
    # 0.1 s of work each; queueing while instances boot costs seconds, not minutes
    assert run.requests()["latency_s"].max() < 60
    apps = [s for s in run.stations if s.name.startswith("app")]
    assert sum(s.arrivals for s in apps) == sum(s.completions for s in apps) == len(run.requests())

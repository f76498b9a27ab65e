"""Alert rules with Prometheus ``for:`` semantics, worked by hand on tiny time series.

Every series below is evaluated at window ends 60, 120, 180, ... s (one-minute windows), so
each expected time can be checked by reading the values off the list.
"""

import math

import numpy as np
import pandas as pd
import pytest

import capsim as cs
from capsim.monitor import (
    Alert,
    evaluate,
    lead_time,
    lead_times,
    slo_alerts,
    states,
)


def series(values, name="db", metric="utilization", step=60.0):
    """A time series with one value per window end: step, 2 step, ..."""
    return pd.DataFrame({"time_s": step * np.arange(1, len(values) + 1), "name": name,
                         "metric": metric, "value": np.asarray(values, dtype=float)})


def both(*frames):
    return pd.concat(frames, ignore_index=True)


CPU = Alert("utilization", "db", ">", 0.8, for_s=120)


# -- firing and resolving -----------------------------------------------------------------------
def test_fires_after_for_s_and_resolves_when_the_condition_stops():
    #          60   120  180  240  300  360  420
    ts = series([0.5, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5])
    # holds from 120 (pending), 240 - 120 = 120 >= for_s: fires at 240; false at 360: resolved
    got = evaluate(CPU, ts)
    assert got.to_dict("records") == [{"alert": CPU.label, "active_at_s": 120.0,
                                       "fired_at_s": 240.0, "resolved_at_s": 360.0}]
    assert list(states(CPU, ts)["state"]) == ["inactive", "pending", "pending", "firing",
                                              "firing", "inactive", "inactive"]


def test_held_exactly_for_s_fires_a_hair_less_does_not():
    ts = series([0.5, 0.9, 0.9, 0.9, 0.5])  # holds at 120, 180, 240: for exactly 120 s
    assert evaluate(CPU, ts)["fired_at_s"].tolist() == [240.0]
    assert evaluate(Alert("utilization", "db", ">", 0.8, for_s=120.001), ts).empty
    # for_s = 0 fires at the first evaluation where the condition holds
    now = evaluate(Alert("utilization", "db", ">", 0.8), ts)
    assert now[["active_at_s", "fired_at_s", "resolved_at_s"]].values.tolist() == [
        [120.0, 120.0, 300.0]]


def test_still_firing_at_the_end_is_unresolved():
    got = evaluate(CPU, series([0.9, 0.9, 0.9, 0.95]))
    assert got["fired_at_s"].tolist() == [180.0]
    assert math.isnan(got["resolved_at_s"].item())


def test_flapping_resets_the_pending_timer():
    #                      60   120  180  240  300  360  420  480
    ts = series([0.9, 0.9, 0.7, 0.9, 0.9, 0.7, 0.9, 0.9])
    assert evaluate(CPU, ts).empty  # never two minutes in a row above 80%
    assert list(states(CPU, ts)["state"]) == ["pending", "pending", "inactive", "pending",
                                              "pending", "inactive", "pending", "pending"]
    # one more window above the line and it fires, counted from the restart at 420
    assert evaluate(CPU, series([0.9, 0.9, 0.7, 0.9, 0.9, 0.7, 0.9, 0.9, 0.9]))[
        ["active_at_s", "fired_at_s"]].values.tolist() == [[420.0, 540.0]]


def test_two_firings_and_operators_at_the_threshold():
    ts = series([0.8, 0.9, 0.5, 0.8, 0.8])
    assert evaluate(Alert("utilization", "db", ">", 0.8), ts)["fired_at_s"].tolist() == [120]
    at_least = evaluate(Alert("utilization", "db", ">=", 0.8), ts)
    assert at_least[["fired_at_s", "resolved_at_s"]].values.tolist()[0] == [60.0, 180.0]
    assert at_least["fired_at_s"].tolist() == [60.0, 240.0]
    below = evaluate(Alert("utilization", "db", "<", 0.8), ts)
    assert below[["fired_at_s", "resolved_at_s"]].values.tolist() == [[180.0, 240.0]]
    assert evaluate(Alert("utilization", "db", "<", 0.8, for_s=60), ts).empty
    # <= holds at 60, then from 180 on (0.5, 0.8, 0.8): held 60 s at 240
    assert evaluate(Alert("utilization", "db", "<=", 0.8, for_s=60), ts)[
        "fired_at_s"].tolist() == [240.0]


def test_a_window_without_data_does_not_hold():
    # an empty window has p99 NaN: the condition is false there, pending restarts
    ts = series([0.3, 0.3, np.nan, 0.3, 0.3], name="checkout", metric="p99_s")
    rule = Alert("p99_s", "checkout", ">", 0.2, for_s=60)
    got = evaluate(rule, ts)
    assert got["active_at_s"].tolist() == [60.0, 240.0]
    assert got["fired_at_s"].tolist() == [120.0, 300.0]
    assert got["resolved_at_s"].tolist()[0] == 180.0 and math.isnan(got["resolved_at_s"][1])
    assert list(states(rule, ts)["holds"]) == [True, True, False, True, True]


def test_other_series_in_the_frame_are_ignored_and_order_does_not_matter():
    ts = both(series([0.5, 0.9, 0.9, 0.9, 0.5]), series([0.99] * 5, name="app"),
              series([0.99] * 5, metric="mean_in_system"))
    shuffled = ts.sample(frac=1.0, random_state=1)
    assert evaluate(CPU, shuffled)["fired_at_s"].tolist() == [240.0]


# -- validation ---------------------------------------------------------------------------------
def test_alert_is_frozen_and_validated():
    with pytest.raises(cs.ModelError, match=r"Alert.op: must be one of '>', '>=', '<', '<=', "
                                            r"got '=>'"):
        Alert("utilization", "db", "=>", 0.8)
    with pytest.raises(cs.ModelError, match=r"Alert.for_s: must be >= 0, got -1"):
        Alert("utilization", "db", ">", 0.8, for_s=-1)
    with pytest.raises(cs.ModelError, match=r"Alert.threshold: must be a finite number, "
                                            r"got nan"):
        Alert("utilization", "db", ">", float("nan"))
    with pytest.raises(cs.ModelError, match=r"Alert.component: must be a non-empty string"):
        Alert("utilization", "", ">", 0.8)
    with pytest.raises(AttributeError):
        CPU.threshold = 0.9
    assert CPU.label == "db utilization > 0.8 for 2 min"
    assert Alert("p99_s", "checkout", ">", 0.2, 60, name="slow checkout").label == \
        "slow checkout"


def test_unknown_names_say_what_exists():
    ts = both(series([0.5]), series([0.1], name="browse", metric="p99_s"))
    with pytest.raises(cs.ModelError, match=r"no station or flow 'postgres'.*it has: db, browse"):
        evaluate(Alert("utilization", "postgres", ">", 0.8), ts)
    with pytest.raises(cs.ModelError, match=r"'db' has no metric 'cpu'; it has: utilization"):
        evaluate(Alert("cpu", "db", ">", 0.8), ts)
    with pytest.raises(cs.ModelError, match="same time"):
        evaluate(CPU, both(series([0.5]), series([0.6])))


# -- lead time ----------------------------------------------------------------------------------
P99 = Alert("p99_s", "checkout", ">", 0.2, for_s=60)


def test_lead_time_early():
    #                       60   120  180  240  300  360  420  480  540
    cpu = series([0.5, 0.85, 0.9, 0.95, 0.99, 0.99, 0.99, 0.7, 0.6])   # fires at 240
    p99 = series([0.1, 0.1, 0.15, 0.19, 0.3, 0.5, 0.4, 0.1, 0.1], "checkout", "p99_s")
    # p99 above 200 ms from 300 (users feel it from then), held 60 s at 360: a breach
    lt = lead_time(CPU, P99, both(cpu, p99))
    assert (lt.fired_at_s, lt.breach_at_s, lt.breach_end_s, lt.lead_s) == (240, 300, 480, 60)
    assert lt.status == "early" and lt.fired and lt.breach_s == 180
    assert lt.words() == ("db utilization > 0.8 for 2 min fired at t=0:04:00, 1 min before "
                          "users felt it: the breach started at t=0:05:00 and lasted 3 min "
                          "(checkout p99_s > 0.2 for 1 min).")
    # MTTR model: fixed response after the alert: detection delay -60 s + 120 s
    assert lt.time_in_breach_s(120) == 60
    assert lt.time_in_breach_s(30) == 0  # fixed before users would have felt it
    assert lt.time_in_breach_s(3600) == 180  # never longer than the breach by itself


def test_lead_time_late_and_the_latency_alert_is_late_by_its_own_for():
    cpu = series([0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5])  # pending 180, fires at 300
    p99 = series([0.1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1], "checkout", "p99_s")  # from 120
    ts = both(cpu, p99)
    lt = lead_time(CPU, P99, ts)
    assert (lt.fired_at_s, lt.breach_at_s, lt.lead_s, lt.status) == (300, 120, -180, "late")
    assert lt.detection_delay_s == 180 and lt.time_in_breach_s(60) == 240
    assert "3 min after users felt it (late)" in lt.words()
    # the SLO rule itself as an alert: it fires when the breach is confirmed, for_s late
    own = lead_time(P99, P99, ts)
    assert (own.lead_s, own.status) == (-60, "late")
    # the same condition without for: fires as users start to feel it
    assert lead_time(Alert("p99_s", "checkout", ">", 0.2), P99, ts).status == "on time"


def test_lead_time_never():
    quiet = series([0.5] * 6)
    p99 = series([0.1, 0.3, 0.3, 0.3, 0.1, 0.1], "checkout", "p99_s")
    missed = lead_time(CPU, P99, both(quiet, p99))
    assert missed.status == "missed" and math.isnan(missed.lead_s) and not missed.fired
    assert missed.detection_delay_s == math.inf and missed.time_in_breach_s(60) == 180
    assert "never fired during the breach" in missed.words()
    # an SLO blip shorter than its for is no breach; the CPU alert then warned for nothing
    blip = series([0.1, 0.3, 0.1, 0.1, 0.1, 0.1], "checkout", "p99_s")
    busy = series([0.9, 0.9, 0.9, 0.5, 0.9, 0.9])
    none = lead_time(CPU, P99, both(busy, blip))
    assert none.status == "no breach" and math.isnan(none.lead_s) and none.firings == 1
    assert none.fired_at_s == 180 and none.time_in_breach_s(60) == 0
    assert none.words() == ("The SLO (checkout p99_s > 0.2 for 1 min) never broke, so db "
                            "utilization > 0.8 for 2 min had nothing to catch: it fired 1 time "
                            "(warnings that did not come true).")


def test_a_warning_that_resolved_before_the_breach_does_not_count():
    cpu = series([0.9, 0.9, 0.9, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9])  # fires 180-240, again 480
    p99 = series([0.1, 0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3, 0.3], "checkout", "p99_s")
    lt = lead_time(CPU, P99, both(cpu, p99))
    assert (lt.breach_at_s, lt.fired_at_s, lt.lead_s) == (300, 480, -180)
    assert math.isnan(lt.breach_end_s) and lt.breach_s == math.inf


def test_every_breach_and_several_slo_rules():
    cpu = series([0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.5])
    p99_a = series([0.1, 0.1, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], "checkout",
                   "p99_s")
    p99_b = series([0.1, 0.1, 0.1, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1, 0.3, 0.3], "browse", "p99_s")
    ts = both(cpu, p99_a, p99_b)
    rules = [P99, Alert("p99_s", "browse", ">", 0.2, for_s=60)]
    # breaches: checkout 180-300 and browse 240-360 merge into 180-360; browse 600-end
    every = lead_times(CPU, rules, ts)
    assert [(x.breach_at_s, x.breach_end_s) for x in every][0] == (180, 360)
    assert every[1].breach_at_s == 600 and math.isnan(every[1].breach_end_s)
    assert [(x.fired_at_s, x.lead_s, x.status) for x in every] == [
        (180, 0, "on time"), (540, 60, "early")]
    assert lead_time(CPU, rules, ts, breach=-1) == every[1]
    with pytest.raises(cs.ModelError, match="breach: must index one of the 2 breaches"):
        lead_time(CPU, rules, ts, breach=2)


def test_a_rule_on_several_endpoints_fires_while_any_instance_does():
    ts = both(series([0.1, 0.3, 0.3, 0.3, 0.1, 0.1, 0.1], "checkout", "p99_s"),
              series([0.1, 0.1, 0.3, 0.3, 0.3, 0.1, 0.3], "browse", "p99_s"))
    rule = [Alert("p99_s", f, ">", 0.2, for_s=60) for f in ("checkout", "browse")]
    # checkout: active 120, fires 180, resolved 300; browse: active 180, fires 240,
    # resolved 360; browse again 420 (pending only). One firing: 180 to 360, active from 120
    got = evaluate(rule, ts)
    assert got.to_dict("records") == [{"alert": "checkout, browse p99_s > 0.2 for 1 min",
                                       "active_at_s": 120.0, "fired_at_s": 180.0,
                                       "resolved_at_s": 360.0}]
    assert lead_time(rule, P99, ts).lead_s == -60
    named = [Alert("p99_s", f, ">", 0.2, 60, name="slow page") for f in ("checkout", "browse")]
    assert evaluate(named, ts)["alert"].tolist() == ["slow page"]
    assert evaluate([CPU, named[0]], both(ts, series([0.1]*7)))["alert"].tolist() == [
        "db utilization > 0.8 for 2 min or slow page"]
    with pytest.raises(cs.ModelError, match="must be an Alert or a non-empty list of Alerts"):
        evaluate([], ts)


def test_breaches_close_together_are_one_incident():
    p99 = series([0.3, 0.3, 0.1, 0.3, 0.3, 0.1, 0.1, 0.1, 0.3, 0.3, 0.1], "checkout",
                 "p99_s")  # breaches 60-180, 240-360, 540-660
    cpu = series([0.9] * 11)
    assert [(x.breach_at_s, x.breach_end_s) for x in lead_times(CPU, P99, both(cpu, p99))] \
        == [(60, 180), (240, 360), (540, 660)]
    merged = lead_times(CPU, P99, both(cpu, p99), merge_within_s=60)
    assert [(x.breach_at_s, x.breach_end_s) for x in merged] == [(60, 360), (540, 660)]
    # CPU (above 80% throughout) fires at 180: 2 min into the first incident, and it is still
    # firing when the second starts
    assert [(x.status, x.lead_s) for x in merged] == [("late", -120), ("early", 360)]


def test_a_budget_is_every_endpoint_held_for_a_minute():
    ts = both(series([0.5] * 5),
              series([0.1, 0.3, 0.3, 0.1, 0.1], "checkout", "p99_s"),
              series([0.1, 0.1, 0.1, 0.1, 0.1], "browse", "p99_s"),
              series([9.0] * 5, "orders (async)", "p99_s"))
    budget = cs.Budget(p99_s=0.2)
    rules = slo_alerts(budget, ts)
    assert [r.label for r in rules] == ["checkout p99_s > 0.2 for 1 min",
                                        "browse p99_s > 0.2 for 1 min"]
    lt = lead_time(Alert("p99_s", "checkout", ">", 0.15), budget, ts)
    assert (lt.breach_at_s, lt.breach_end_s, lt.status) == (120, 240, "on time")
    assert lt.slo == "Budget(p99_s<=0.2) for 1 min"
    assert lead_time(CPU, budget, ts, slo_for_s=120).status == "no breach"
    with pytest.raises(cs.ModelError, match="no mean_s per window"):
        slo_alerts(cs.Budget(mean_s=0.1), ts)
    with pytest.raises(cs.ModelError, match="must be an Alert, a list of Alerts or a Budget"):
        lead_time(CPU, "p99 < 200ms", ts)


def test_on_a_simulated_run():
    # a one-station run whose load triples for ten minutes: the alert fires inside the spike
    one = cs.System([cs.Service("s", 4, cs.Exponential(0.01))], [cs.Flow("f", 1.0,
                                                                         [cs.Call("s")])])
    load = cs.OpenWorkload(1, 120.0, profile=cs.Spike(600, 600, 3.0))
    run = cs.simulate(one, load, 1800, seed=3, sample_interval_s=30)
    ts = run.timeseries(60)
    fired = evaluate(Alert("utilization", "s", ">", 0.8, for_s=120), ts)
    assert len(fired) == 1
    assert 600 < fired["fired_at_s"].item() <= 780 and fired["resolved_at_s"].item() >= 1200

"""The Alerts as a Prometheus rule file, and a Grafana dashboard of the exported series.

The structure is checked with yaml/json everywhere; where ``promtool`` is installed (Debian's
``prometheus`` package) it checks the exported metrics and rules, and its evaluation of the
rules on the exported series must agree with :func:`capsim.monitor.evaluate` at every
evaluation: the alert that was simulated is the alert that gets deployed.
"""

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

import capsim as cs
from capsim.monitor import (
    NAMES,
    Alert,
    alert_name,
    grafana_dashboard,
    metric_name,
    prometheus_rules,
    slo_alerts,
    states,
    to_prometheus,
    write_grafana_dashboard,
    write_prometheus,
    write_prometheus_rules,
)
from capsim.monitor.prometheus import exported, label_key
from capsim.monitor.rules import prometheus_duration, rule_expr

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt install prometheus); "
    "the rule file's structure is still checked with yaml.safe_load")
FAMILIES = {metric_name(m) for m in NAMES}


def frame(rows):
    return pd.DataFrame(rows, columns=["time_s", "name", "metric", "value"])


def series(values, name, metric, step=60.0):
    return frame([(step * (i + 1), name, metric, v) for i, v in enumerate(values)])


def promtool(*args, stdin=None):
    return subprocess.run([PROMTOOL, *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=60)


CPU = Alert("utilization", "db", ">", 0.8, for_s=300)
P99 = Alert("p99_s", "checkout", ">", 0.2, for_s=60, name="slow checkout")
TS = pd.concat([series([0.5, 0.9], "db", "utilization"),
                series([0.1, 0.3], "checkout", "p99_s"),
                series([10.0, 12.0], "checkout", "throughput_per_s"),
                series([3.0, 4.0], "db", "throughput_per_s")], ignore_index=True)


# -- the rule file ------------------------------------------------------------------------------
def test_rule_file_structure():
    budget = cs.Budget(p99_s=0.2, utilization=0.8)
    text = prometheus_rules([CPU, P99, Alert("p95_s", "checkout", ">=", 0.15)], budget=budget,
                            interval_s=60, labels={"team": "db"})
    doc = yaml.safe_load(text)
    assert list(doc) == ["groups"] and len(doc["groups"]) == 1
    group = doc["groups"][0]
    assert (group["name"], group["interval"]) == ("capsim", "1m")
    cpu, p99, p95 = group["rules"]
    assert cpu == {
        "alert": "DbUtilizationHigh",
        "expr": 'capsim_utilization_ratio{component="db"} > 0.8',
        "for": "5m",
        "labels": {"severity": "warning", "team": "db"},
        "annotations": {
            "summary": "db utilization > 0.8 for 5 min",
            "description": "capsim_utilization_ratio > 0.8 for 5 min on db, as simulated "
                           "with capsim (Busy servers / servers (0 to 1), time average over "
                           "the window); the budget allows utilization <= 0.8.",
            "slo": "Budget(p99_s<=0.2, utilization<=0.8)"}}
    assert p99["alert"] == "SlowCheckout" and p99["for"] == "1m"
    assert p99["expr"] == 'capsim_latency_seconds{flow="checkout",quantile="0.99"} > 0.2'
    assert p99["annotations"]["summary"] == "slow checkout: checkout p99_s > 0.2 for 1 min"
    assert "budget allows p99_s <= 0.2" in p99["annotations"]["description"]
    # for: 0 is no for at all; a rule the budget has no limit for says which budget only
    assert "for" not in p95 and p95["alert"] == "CheckoutP95LatencyHigh"
    assert p95["expr"].endswith('quantile="0.95"} >= 0.15')
    assert "budget allows" not in p95["annotations"]["description"]
    for rule in group["rules"]:
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", rule["alert"])
        assert rule["expr"].split("{")[0] in FAMILIES
    # no interval: Prometheus' global one; no budget: no slo
    bare = yaml.safe_load(prometheus_rules(CPU, group="db"))["groups"][0]
    assert "interval" not in bare and bare["name"] == "db"
    assert "slo" not in bare["rules"][0]["annotations"]


def test_thresholds_are_written_exactly_and_matchers_escaped():
    odd = Alert("utilization", 'a "b"\\c', "<", 0.1 + 0.2)
    expr = rule_expr(odd, match={"scenario": "launch"})
    assert expr == ('capsim_utilization_ratio{component="a \\"b\\"\\\\c",scenario="launch"} '
                    '< 0.30000000000000004')
    assert float(expr.rsplit(" ", 1)[1]) == odd.threshold
    # one rule on several components: an anchored regex, every special character escaped
    group = [Alert("p99_s", f, ">", 0.2, 60) for f in ("orders (async)", "app[0].x")]
    assert rule_expr(group) == ('capsim_latency_seconds{flow=~"orders\\\\ \\\\(async\\\\)|'
                                'app\\\\[0\\\\]\\\\.x",quantile="0.99"} > 0.2')
    assert alert_name(group) == "OrdersAsyncApp0XP99LatencyHigh"


def test_alert_names():
    assert alert_name(CPU) == "DbUtilizationHigh"
    assert alert_name(Alert("utilization", "app[0]", "<=", 0.1)) == "App0UtilizationLow"
    assert alert_name(Alert("count", "9lives", "<", 1.0)) == "_9livesFinishedRequestsLow"
    assert alert_name(Alert("utilization", "db", ">", 0.8, name="DBHot")) == "DBHot"
    assert alert_name(Alert("utilization", "db", ">", 0.8, name="CPU > 80% for 5 min")) == \
        "CPU80For5Min"
    assert alert_name([P99, Alert("p99_s", "browse", ">", 0.2, 60, name="slow checkout")]) \
        == "SlowCheckout"


def test_prometheus_durations():
    assert [prometheus_duration(s) for s in (300, 60, 5400, 0.25, 90061.5, 0)] == [
        "5m", "1m", "1h30m", "250ms", "1d1h1m1s500ms", "0s"]
    with pytest.raises(cs.ModelError, match=r"seconds: must be whole milliseconds"):
        prometheus_duration(0.0001)
    with pytest.raises(cs.ModelError, match=r"must be a finite number of seconds >= 0, "
                                            r"got nan"):
        prometheus_duration(math.nan)
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\.for_s: must be whole milliseconds"):
        prometheus_rules(Alert("utilization", "db", ">", 0.8, for_s=1e-4))


def test_bad_input_names_field_and_value():
    with pytest.raises(cs.ModelError, match=r"alerts\[1\]: must have a name of its own: "
                                            r"alerts\[0\] is also 'DbUtilizationHigh'"):
        prometheus_rules([CPU, Alert("utilization", "db", ">", 0.9)])
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\.metric: must be a metric capsim "
                                            r"exports .*got 'p99'.*did you mean 'p99_s'"):
        prometheus_rules([Alert("p99", "checkout", ">", 0.2)])
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\.metric: is exported for stations "
                                            r"and flows alike: pass timeseries="):
        prometheus_rules([Alert("throughput_per_s", "db", ">", 100)])
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\.component: must be a station or "
                                            r"flow of the time series .*got 'dbs'.*did you "
                                            r"mean 'db'"):
        prometheus_rules([Alert("utilization", "dbs", ">", 0.8)], timeseries=TS)
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\.metric: must be a metric 'db' has "
                                            r"\(utilization, throughput_per_s\), got 'drops'"):
        prometheus_rules([Alert("drops", "db", ">", 0)], timeseries=TS)
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\[1\]: must be the same rule as "
                                            r"alerts\[0\]\[0\]"):
        prometheus_rules([[P99, Alert("p99_s", "browse", ">", 0.3, 60)]])
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]: must be on stations only or on "
                                            r"flows only"):
        prometheus_rules([[Alert("throughput_per_s", n, ">", 1) for n in ("db", "checkout")]],
                         timeseries=TS)
    with pytest.raises(cs.ModelError, match=r"alerts\[1\]: must be an Alert or a non-empty"):
        prometheus_rules([CPU, "db > 0.8"])
    with pytest.raises(cs.ModelError, match=r"alerts: must be a non-empty list of Alerts"):
        prometheus_rules([])
    with pytest.raises(cs.ModelError, match=r"labels: must have label names .*got 'alertname'"):
        prometheus_rules(CPU, labels={"alertname": "x"})
    with pytest.raises(cs.ModelError, match=r"match: must have label names .*got 'flow'"):
        prometheus_rules(CPU, match={"flow": "x"})
    with pytest.raises(cs.ModelError, match=r"interval_s: must be a number of seconds > 0, "
                                            r"got 0"):
        prometheus_rules(CPU, interval_s=0)
    with pytest.raises(cs.ModelError, match=r"budget: must be a Budget, got 0.2"):
        prometheus_rules(CPU, budget=0.2)
    with pytest.raises(cs.ModelError, match=r"threshold: must be a finite number, got inf"):
        prometheus_rules(Alert("utilization", "db", ">", math.inf))
    # with the time series, a throughput alert knows a flow from a station
    doc = yaml.safe_load(prometheus_rules(
        [Alert("throughput_per_s", n, "<", 5) for n in ("db", "checkout")], timeseries=TS))
    assert [r["expr"] for r in doc["groups"][0]["rules"]] == [
        'capsim_throughput_per_second{component="db"} < 5.0',
        'capsim_throughput_per_second{flow="checkout"} < 5.0']


def test_write_prometheus_rules(tmp_path):
    path = write_prometheus_rules([CPU], tmp_path / "capsim.rules.yml", interval_s=30)
    assert yaml.safe_load(path.read_text())["groups"][0]["interval"] == "30s"


# -- promtool ------------------------------------------------------------------------------------
def input_series(exposition: str, step_s: float) -> list[dict]:
    """The exposition's samples as promtool ``input_series``: one value per step from t = 0
    (``_``: no sample there)."""
    samples: dict[str, dict[int, str]] = {}
    for line in exposition.splitlines():
        if not line.startswith("#"):
            sel, value, stamp = line.rsplit(" ", 2)
            samples.setdefault(sel, {})[int(stamp)] = value
    step = round(step_s * 1000)
    last = max(t for s in samples.values() for t in s)
    assert all(t % step == 0 for s in samples.values() for t in s), "not on the step grid"
    return [{"series": sel, "values": " ".join(s.get(k * step, "_")
                                              for k in range(last // step + 1))}
            for sel, s in samples.items()]


def alert_tests(items, timeseries, rule_files, match=None):
    """A promtool unit-test file saying, at every window end, which instances of every rule
    capsim says are firing; returns it and the number of (time, rule) evaluations."""
    times = np.sort(timeseries["time_s"].unique())
    step = float(times[0])
    assert np.allclose(times, step * np.arange(1, len(times) + 1))
    docs = {r["alert"]: r for f in rule_files for r in
            yaml.safe_load(f.read_text())["groups"][0]["rules"]}
    flows = set(timeseries.loc[timeseries["metric"] == "p99_s", "name"])
    cases = []
    for item in items:
        rules = [item] if isinstance(item, Alert) else list(item)
        doc = docs[alert_name(rules)]
        firing = {}
        for rule in rules:
            st = states(rule, timeseries)
            key = label_key(rule.metric) or ("flow" if rule.component in flows else
                                             "component")
            labels = {key: rule.component, **doc["labels"], **(match or {})}
            if exported(rule.metric).quantile:
                labels["quantile"] = exported(rule.metric).quantile
            for t in st.loc[st["state"] == "firing", "time_s"]:
                firing.setdefault(float(t), []).append(
                    {"exp_labels": labels, "exp_annotations": doc["annotations"]})
        cases += [{"eval_time": prometheus_duration(float(t)), "alertname": doc["alert"],
                   "exp_alerts": firing.get(float(t), [])} for t in times]
    tests = {"rule_files": [str(f) for f in rule_files],
             "evaluation_interval": prometheus_duration(step),
             "tests": [{"interval": prometheus_duration(step),
                        "input_series": input_series(to_prometheus(timeseries, 0,
                                                                   labels=match), step),
                        "alert_rule_test": cases}]}
    return tests, len(cases)


@pytest.fixture(scope="module")
def spiky():
    """Two stations, two flows, a load that triples for five minutes: alerts that fire and
    resolve (a few seconds to simulate)."""
    system = cs.System([cs.Service("app", 4, cs.Exponential(0.01)),
                        cs.Service("db", 2, cs.Exponential(0.004))],
                       [cs.Flow("checkout", 0.4, [cs.Call("app"), cs.Call("db")]),
                        cs.Flow("browse", 0.6, [cs.Call("app")])])
    load = cs.OpenWorkload(1, 110.0, profile=cs.Spike(300, 300, 3.0))
    return cs.simulate(system, load, 1200, seed=3, sample_interval_s=30).timeseries(60)


def rules_of(ts):
    """Alerts of every shape, thresholds read off the run (so some fire, some do not)."""
    def mid(name, metric):
        values = ts.loc[(ts["name"] == name) & (ts["metric"] == metric), "value"]
        return float(np.nanmedian(values))
    return [Alert("utilization", "app", ">", 0.7, for_s=120, name="AppBusy"),
            Alert("p99_s", "checkout", ">", mid("checkout", "p99_s"), for_s=60,
                  name="CheckoutSlow"),
            [Alert("p95_s", f, ">", mid("browse", "p95_s"), 60) for f in ("checkout", "browse")],
            Alert("throughput_per_s", "checkout", ">=", mid("checkout", "throughput_per_s")),
            Alert("mean_queue_length", "app", ">", mid("app", "mean_queue_length"), 180,
                  name="app queue"),
            Alert("utilization", "db", "<", mid("db", "utilization"), 60)]


@needs_promtool
def test_promtool_evaluates_the_rules_as_capsim_does(spiky, tmp_path):
    match = {"scenario": "launch"}
    ours = rules_of(spiky)
    budget = cs.Budget(p99_s=0.05, utilization=0.7)
    slo = slo_alerts(budget, spiky, for_s=60)
    files = [write_prometheus_rules(ours, tmp_path / "capsim.yml", interval_s=60,
                                    match=match, timeseries=spiky, budget=budget),
             write_prometheus_rules(slo, tmp_path / "slo.yml", group="slo", interval_s=60,
                                    match=match, timeseries=spiky, budget=budget)]
    # slo_alerts' names are their rules': keep them apart from ours in one test file
    assert not {alert_name(a) for a in slo} & {alert_name(a) for a in ours}
    done = promtool("check", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    tests, n = alert_tests([*ours, *slo], spiky, files, match)
    firing = sum(bool(c["exp_alerts"]) for c in tests["tests"][0]["alert_rule_test"])
    assert 0 < firing < n  # the comparison has firing and quiet evaluations to agree on
    assert n == 20 * (len(ours) + len(slo))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool("test", "rules", tmp_path / "tests.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # it has teeth: one evaluation capsim says fires, said quiet, is refused
    case = next(c for c in tests["tests"][0]["alert_rule_test"] if c["exp_alerts"])
    case["exp_alerts"] = []
    (tmp_path / "off.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool("test", "rules", tmp_path / "off.yml")
    assert done.returncode != 0 and case["alertname"] in done.stdout + done.stderr


@needs_promtool
def test_promtool_on_odd_names_and_empty_windows(tmp_path):
    # names that need escaping, a regex over several, a window without data (NaN p99)
    ts = pd.concat([series([0.1, 0.3, math.nan, 0.3, 0.3, 0.1], "orders (async)", "p99_s"),
                    series([0.3, 0.3, 0.3, 0.1, 0.3, 0.3], 'a"b\\c', "p99_s"),
                    series([0.3] * 6, "orders (async)x", "p99_s"),
                    series([0.9, 0.9, 0.7, 0.9, 0.9, 0.9], "app[0]", "utilization")],
                   ignore_index=True)
    items = [[Alert("p99_s", f, ">", 0.2, 60) for f in ("orders (async)", 'a"b\\c')],
             Alert("utilization", "app[0]", ">", 0.8, 60)]
    path = write_prometheus_rules(items, tmp_path / "odd.yml", interval_s=60)
    tests, n = alert_tests(items, ts, [path])
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool("test", "rules", tmp_path / "tests.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert n == 12


@needs_promtool
def test_promtool_checks_the_exported_metrics(spiky, tmp_path):
    text = to_prometheus(spiky, 1_732_900_000, labels={"scenario": "launch"})
    done = promtool("check", "metrics", stdin=text)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), \
        done.stdout + done.stderr
    # and the OpenMetrics export backfills (what Grafana will draw)
    path = write_prometheus(spiky, tmp_path / "run.om.txt", 1_732_900_000, openmetrics=True)
    done = promtool("tsdb", "create-blocks-from", "openmetrics", path, tmp_path / "blocks")
    assert done.returncode == 0, done.stdout + done.stderr
    assert any((tmp_path / "blocks").iterdir())


@needs_promtool
def test_promtool_parses_every_dashboard_query(spiky, tmp_path):
    board = grafana_dashboard(timeseries=spiky, alerts=rules_of(spiky), match={"scenario": "x"})
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    doc = {"groups": [{"name": "panels", "rules": [
        {"record": f"capsim:panel_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(doc))
    done = promtool("check", "rules", tmp_path / "panels.yml")
    assert done.returncode == 0, done.stdout + done.stderr


# -- the Grafana dashboard ------------------------------------------------------------------------
def panels_of(board):
    return [p for p in board["panels"] if p["type"] != "row"]


def test_dashboard_has_every_panel_with_the_alert_lines(spiky):
    alerts = rules_of(spiky)
    budget = cs.Budget(p99_s=0.25, utilization=0.85)
    board = grafana_dashboard(timeseries=spiky, alerts=alerts, budget=budget, title="launch")
    json.loads(json.dumps(board))  # plain JSON
    assert board["schemaVersion"] >= 36 and re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"])
    assert board["templating"]["list"][0]["current"]["value"] == "Prometheus"
    panels = panels_of(board)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    by_title = {p["title"]: p for p in panels}
    assert set(by_title) == {"app utilization", "app queue length", "db utilization",
                             "db queue length", "checkout p99 latency", "browse p99 latency"}

    def lines(title):
        steps = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None
        return [s["value"] for s in steps[1:]]

    assert lines("app utilization") == [0.7, 0.85]  # the alert, then the budget
    assert lines("db utilization") == sorted([alerts[5].threshold, 0.85])
    assert lines("checkout p99 latency") == sorted([alerts[1].threshold, 0.25])
    assert lines("browse p99 latency") == [0.25]
    assert lines("app queue length") == [alerts[4].threshold]
    assert lines("db queue length") == []
    assert by_title["db queue length"]["fieldConfig"]["defaults"]["custom"][
        "thresholdsStyle"]["mode"] == "off"
    for p in panels:
        (target,) = p["targets"]
        assert target["expr"].split("{")[0] in FAMILIES
        name, title = p["title"].split(" ", 1)
        metric = {"utilization": "utilization", "queue length": "mean_queue_length",
                  "p99 latency": "p99_s"}[title]
        assert target["expr"].startswith(metric_name(metric) + "{")
        assert f'="{name}"' in target["expr"]
    assert 'quantile="0.99"' in by_title["checkout p99 latency"]["targets"][0]["expr"]
    assert by_title["app utilization"]["fieldConfig"]["defaults"]["max"] == 1.0
    # panels do not overlap on the 24-column grid
    cells = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells
        cells |= mine


def test_dashboard_options_and_errors(tmp_path):
    board = grafana_dashboard(["db"], ["checkout"], budget=cs.Budget(p99_s=0.2,
                                                                     flow="browse"),
                              datasource="prom-eu", uid="capsim-run", match={"run": "7"},
                              time_range=(1_732_900_000, 1_732_903_600))
    assert board["uid"] == "capsim-run"
    assert board["time"] == {"from": "2024-11-29T17:06:40.000Z", "to": "2024-11-29T18:06:40.000Z"}
    p99 = [p for p in panels_of(board) if p["title"] == "checkout p99 latency"][0]
    assert p99["fieldConfig"]["defaults"]["thresholds"]["steps"][1:] == []  # browse's budget
    assert p99["targets"][0]["expr"] == \
        'capsim_latency_seconds{flow="checkout",quantile="0.99",run="7"}'
    assert board["templating"]["list"][0]["current"]["text"] == "prom-eu"
    path = write_grafana_dashboard(tmp_path / "d.json", components=["db"], title="x")
    assert json.loads(path.read_text())["title"] == "x"
    with pytest.raises(cs.ModelError, match=r"alerts\[0\]\.component: must be a station or "
                                            r"flow of the dashboard \(db\), got 'app'"):
        grafana_dashboard(["db"], alerts=[Alert("utilization", "app", ">", 0.8)])
    with pytest.raises(cs.ModelError, match=r"uid: must be 1 to 40 characters"):
        grafana_dashboard(["db"], uid="a b")
    with pytest.raises(cs.ModelError, match=r"components: must name at least one"):
        grafana_dashboard()
    with pytest.raises(cs.ModelError, match=r"components: must be a list of station or flow "
                                            r"names, got 'db'"):
        grafana_dashboard("db")

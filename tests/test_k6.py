"""capsim.calibrate.k6: the k6 readers read what k6 writes (files written by the real k6, tiny
hand-made files with known numbers); bad input fails with the field and the value.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import capsim as cs
from capsim.calibrate import LOADTEST_COLUMNS, read_k6_summary

DATA = Path(__file__).resolve().parents[1] / "data" / "measurements"
K6_FILES = sorted(DATA.glob("k6_summary_step*.json"))

# what generate.py simulated (data/measurements/README.md)
CAPACITY_PER_S = 8 / 0.020
K6_THINK_S = 0.1


# -- k6 -----------------------------------------------------------------------------------------
def test_k6_sample_summaries_match_the_simulated_system():
    """One row per file. Each VU loops request + sleep(0.1 s), so Little's law for the loop says
    requests/s = VUs / (0.1 s + mean response time), to the precision of a 60 s run."""
    df = read_k6_summary(K6_FILES)
    assert list(df.columns) == LOADTEST_COLUMNS
    assert list(df["concurrency"]) == [10, 25, 50, 100]
    assert list(df["step"]) == [0, 1, 2, 3]
    assert np.allclose(df["duration_s"], 60.0)
    all_per_s = df["requests"] / df["duration_s"]
    little = df["concurrency"] / (K6_THINK_S + df["mean_s"])
    assert np.allclose(all_per_s, little, rtol=0.01)
    assert (df["p50_s"] < df["p95_s"]).all() and (df["p95_s"] < df["p99_s"]).all()
    assert list(df["error_rate"] > 0) == [False, False, False, True]  # the queue fills at 100
    assert df["throughput_per_s"].iloc[-1] == pytest.approx(CAPACITY_PER_S, rel=0.03)


def test_k6_tiny_summary_with_known_numbers(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"metrics": {
        "http_req_duration": {"avg": 12.5, "min": 2, "med": 10, "max": 90, "p(90)": 20,
                              "p(95)": 30},
        "http_reqs": {"count": 600, "rate": 10},
        "http_req_failed": {"passes": 6, "fails": 594, "value": 0.01},
        "vus": {"value": 5, "min": 1, "max": 5},
    }}))
    row = read_k6_summary(p).iloc[0]
    assert row["source"] == "s.json" and row["concurrency"] == 5
    assert row["duration_s"] == 60 and row["requests"] == 600
    assert row["throughput_per_s"] == pytest.approx(9.9)
    assert row["mean_s"] == 0.0125 and row["p50_s"] == 0.010 and row["p95_s"] == 0.030
    assert math.isnan(row["p99_s"]) and row["error_rate"] == 0.01
    assert read_k6_summary([p], concurrency=[7]).loc[0, "concurrency"] == 7


def test_k6_handle_summary_layout_and_fallbacks(tmp_path):
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
    q.write_text(json.dumps({"metrics": {"http_req_duration": {"avg": 1, "med": 1, "p(95)": 2},
                                         "http_reqs": {"count": 10, "rate": 1},
                                         "vus": {"value": 1}}}))
    row = read_k6_summary(q).iloc[0]
    assert math.isnan(row["error_rate"]) and row["throughput_per_s"] == 1


@pytest.mark.parametrize(("content", "match"), [
    ("not json", r"read_k6_summary\('b.json'\): not a JSON file"),
    ("[1, 2]", r"read_k6_summary\('b.json'\).metrics: missing"),
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
])
def test_k6_bad_files(tmp_path, content, match):
    p = tmp_path / "b.json"
    p.write_text(content)
    with pytest.raises(cs.ModelError, match=match):
        read_k6_summary(p)


def test_k6_bad_arguments(tmp_path):
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.paths: must be existing files"):
        read_k6_summary(tmp_path / "missing.json")
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.paths: must name at least one"):
        read_k6_summary([])
    with pytest.raises(cs.ModelError, match=r"read_k6_summary.concurrency: must give one value "
                                            r"per file \(4\), got \[1, 2\]"):
        read_k6_summary(K6_FILES, concurrency=[1, 2])

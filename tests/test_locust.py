"""capsim.calibrate.locust: the Locust reader reads what Locust writes (files written by the real
Locust, tiny hand-made files with known numbers); bad input fails with the field and the value.
"""

from pathlib import Path

import numpy as np
import pytest

import capsim as cs
from capsim.calibrate import LOADTEST_COLUMNS, read_locust_history

DATA = Path(__file__).resolve().parents[1] / "data" / "measurements"
LOCUST_FILE = DATA / "locust_stats_history.csv"

# what generate.py simulated (data/measurements/README.md)
CAPACITY_PER_S = 8 / 0.020
LOCUST_THINK_S = 0.1


# -- Locust -------------------------------------------------------------------------------------
def test_locust_sample_history_matches_the_simulated_system():
    """Seven 60 s steps. Little's law for the user loop (think ~0.1 s) holds step by step, and
    past the knee (~48 users) the 8 workers deliver their capacity, 400 responses/s."""
    df = read_locust_history(LOCUST_FILE)
    assert list(df.columns) == LOADTEST_COLUMNS
    assert list(df["concurrency"]) == [5, 10, 20, 40, 60, 80, 120]
    assert (df["duration_s"] == 49).all()  # 60 rows, the first 10 s dropped
    all_per_s = df["requests"] / df["duration_s"]
    little = df["concurrency"] / (LOCUST_THINK_S + df["mean_s"])
    assert np.allclose(all_per_s, little, rtol=0.02)
    busy = df[df["concurrency"] >= 60]
    assert np.allclose(busy["throughput_per_s"], CAPACITY_PER_S, rtol=0.03)
    assert df["error_rate"].iloc[-1] > 0.2 and (df["error_rate"].iloc[:4] == 0).all()
    assert (df["p50_s"] <= df["p95_s"]).all() and (df["p95_s"] <= df["p99_s"]).all()


LOCUST_HEADER = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,"
                 "95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,"
                 "Total Median Response Time,Total Average Response Time,"
                 "Total Min Response Time,Total Max Response Time,Total Average Content Size")


def _locust_row(t, users, p50, p95, p99, total, failed, avg, name="Aggregated", kind=""):
    pcts = [p50, p50, p50, p50, p95, p95, p99, p99, p99, p99, p99]
    return ",".join(str(v) for v in (t, users, kind, name, "0.000000", "0.000000", *pcts, total,
                                     failed, p50, avg, 1, 100, 512))


def tiny_locust(path: Path) -> Path:
    na = "N/A"
    rows = [
        _locust_row(100, 0, na, na, na, 0, 0, 0),
        _locust_row(101, 10, na, na, na, 0, 0, 0),
        _locust_row(102, 10, 20, 40, 50, 100, 0, 20),
        _locust_row(103, 10, 22, 44, 60, 200, 0, 21),
        _locust_row(103, 10, 99, 99, 99, 77, 7, 99, name="/api", kind="GET"),  # not Aggregated
        _locust_row(104, 10, 24, 48, 70, 300, 2, 22),
        _locust_row(105, 20, 30, 30, 30, 400, 2, 22),
        _locust_row(106, 20, 30, 30, 30, 600, 2, 22),
        _locust_row(107, 20, 30, 30, 30, 800, 2, 22),
        _locust_row(108, 20, 30, 30, 30, 1000, 12, 22),
        _locust_row(109, 25, 30, 30, 30, 1100, 12, 22),  # a ramp passing through: one row
    ]
    path.write_text(LOCUST_HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def test_locust_tiny_history_with_known_numbers(tmp_path):
    """settle_s=2: step 1 keeps t = 103, 104 (one second: 100 requests, 2 failed, mean from the
    totals (22*300 - 21*200)/100 = 24 ms, p50 = median(22, 24) = 23 ms); step 2 keeps t = 107,
    108 (200 requests, 10 failed); the one-row step at 25 users is skipped."""
    df = read_locust_history(tiny_locust(tmp_path / "h.csv"), settle_s=2)
    assert list(df["concurrency"]) == [10, 20] and list(df["step"]) == [0, 1]
    one, two = df.iloc[0], df.iloc[1]
    assert one["duration_s"] == 1 and one["requests"] == 100
    assert one["throughput_per_s"] == 98 and one["error_rate"] == 0.02
    assert one["mean_s"] == pytest.approx(0.024)
    assert one["p50_s"] == pytest.approx(0.023) and one["p95_s"] == pytest.approx(0.046)
    assert one["p99_s"] == pytest.approx(0.065)
    assert two["throughput_per_s"] == 190 and two["error_rate"] == 0.05
    assert two["mean_s"] == pytest.approx(0.022) and two["p50_s"] == pytest.approx(0.030)
    # the per-endpoint rows are there for whoever asks for them by name
    with pytest.raises(cs.ModelError, match=r"no load step lasts longer than settle_s=2"):
        read_locust_history(tmp_path / "h.csv", settle_s=2, name="/api")


def test_locust_bad_files(tmp_path):
    p = tiny_locust(tmp_path / "h.csv")
    with pytest.raises(cs.ModelError, match=r"read_locust_history\('h.csv'\).name: must match "
                                            r"the Name of some rows, got 'Total'"):
        read_locust_history(p, name="Total")
    with pytest.raises(cs.ModelError, match=r"no load step lasts longer than settle_s=10"):
        read_locust_history(p)  # every step of the tiny file is shorter than 10 s
    with pytest.raises(cs.ModelError, match=r"read_locust_history.settle_s: must be >= 0"):
        read_locust_history(p, settle_s=-1)
    q = tmp_path / "stats.csv"
    q.write_text("Type,Name,Request Count\nGET,/a,10\n")  # the _stats.csv, not the history
    with pytest.raises(cs.ModelError, match=r"missing columns \['Timestamp', 'User Count'"):
        read_locust_history(q)
    r = tmp_path / "bad.csv"
    r.write_text(p.read_text().replace("\n104,10,", "\nsoon,10,"))
    with pytest.raises(cs.ModelError, match=r"\['Timestamp'\] row 5: must be a number, "
                                            r"got 'soon'"):
        read_locust_history(r, settle_s=2)

"""capsim.calibrate.locust: the Locust reader reads what Locust writes, in both of its modes (files
written by the real Locust against a stub of known capacity, tiny hand-made files with known
numbers, one live run); bad input fails with the field and the value.
"""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capsim as cs
from capsim.calibrate import LOADTEST_COLUMNS, read_locust_history
from capsim.errors import MeasurementWarning
from capsim.testbed.stub import StubServer

LOCUST_DIR = Path(__file__).resolve().parents[1] / "data" / "measurements" / "locust"
DEFAULT = LOCUST_DIR / "locust-2.47.0_default_stats_history.csv"
FULL = LOCUST_DIR / "locust-2.47.0_full-history_stats_history.csv"
STEPS = [5, 10, 20, 40, 60, 80, 120]
WORKERS, QUEUE, THINK_S = 8, 48, 0.1  # record_locust.py: the stub, and between(0.05, 0.15)


def stub_truth(history: Path) -> dict:
    return json.loads(history.with_name(history.name.replace("_stats_history.csv",
                                                             "_stub.json")).read_text())


def read_quietly(path: Path, **options) -> pd.DataFrame:
    """Read a file that must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeasurementWarning)
        return read_locust_history(path, **options)


def read_default(path: Path = DEFAULT, **options) -> pd.DataFrame:
    with pytest.warns(MeasurementWarning, match=r"without --csv-full-history.*cumulative since "
                                                r"the test started.*--csv-full-history"):
        return read_locust_history(path, **options)


# -- files written by Locust 2.47.0 -------------------------------------------------------------
def check_against_the_stub(df: pd.DataFrame, history: Path) -> None:
    """What the stub's queueing makes true whatever the random draws."""
    truth = stub_truth(history)
    capacity = WORKERS / truth["service_time_mean_s"]  # ~400/s, from the service times it slept
    assert list(df.columns) == LOADTEST_COLUMNS
    assert list(df["concurrency"]) == STEPS and list(df["step"]) == list(range(len(STEPS)))
    assert df["arrival_rate_per_s"].isna().all()
    assert (df["duration_s"] >= truth["step_s"] - 10 - 3).all()  # the settle_s=10 s dropped
    # Little's law for the users' loop: request, then ~0.1 s of wait
    little = df["concurrency"] / (THINK_S + df["mean_s"])
    assert np.allclose(df["requests"] / df["duration_s"], little, rtol=0.05)
    # no step can fill the queue before 8 + 48 = 56 users; past it the 8 workers are busy
    below = df["concurrency"] < WORKERS + QUEUE
    assert (df.loc[below, "error_rate"] == 0).all()
    assert df["error_rate"].iloc[-1] > 0.2 and df["error_rate"].is_monotonic_increasing
    assert np.allclose(df.loc[below, "throughput_per_s"], little[below], rtol=0.05)
    # past the knee the workers deliver their capacity (less the stub's own hand-over time)
    busy = df.loc[df["concurrency"] >= 80, "throughput_per_s"]
    assert ((0.9 * capacity < busy) & (busy <= 1.02 * capacity)).all()
    assert busy.iloc[-1] == pytest.approx(busy.iloc[0], rel=0.05)
    assert (df["throughput_per_s"] <= 1.02 * capacity).all()
    assert df["mean_s"].iloc[0] == pytest.approx(truth["service_time_mean_s"], rel=0.3)


def test_full_history_file_matches_the_stub():
    df = read_quietly(FULL)
    assert df.attrs["locust_mode"] == "full-history"
    check_against_the_stub(df, FULL)
    assert (df["p50_s"] <= df["p95_s"]).all() and (df["p95_s"] <= df["p99_s"]).all()
    # alone, a request waits for nothing: its median is the service time's (LogNormal cv 1:
    # mean / sqrt(2)) plus the client's own overhead
    assert 0.8 * 0.020 / np.sqrt(2) < df["p50_s"].iloc[0] < 0.020
    # they rise with load: at 80 users (saturated) a request waits ~ 80 / 400 - 0.1 s in line
    light, knee, busy = (df[df["concurrency"] == u].iloc[0] for u in (5, 40, 80))
    for q in ("p50_s", "p95_s", "p99_s"):
        assert light[q] <= knee[q] < busy[q]
    assert busy["p50_s"] > 3 * light["p50_s"] and busy["p50_s"] > 0.06


def test_full_history_endpoints_add_up_to_the_aggregate():
    """Each request is logged to its endpoint and to Aggregated, and all rows of a timestamp are
    written together: the endpoints' counts sum to the aggregate's exactly."""
    total = read_quietly(FULL)
    items, search = read_quietly(FULL, name="/items"), read_quietly(FULL, name="/search")
    assert (items["requests"] + search["requests"] == total["requests"]).all()
    assert np.allclose(items["throughput_per_s"] + search["throughput_per_s"],
                       total["throughput_per_s"])
    mean = (items["mean_s"] * items["requests"] + search["mean_s"] * search["requests"])
    assert np.allclose(mean / total["requests"], total["mean_s"], rtol=1e-6)
    # the locustfile's task weights are 3 : 1
    assert np.allclose(items["requests"] / total["requests"], 0.75, atol=0.06)
    assert items["p50_s"].notna().all() and search["p50_s"].notna().all()


def test_default_file_has_no_percentiles_but_the_same_totals():
    df = read_default()
    assert df.attrs["locust_mode"] == "default"
    check_against_the_stub(df, DEFAULT)
    assert df[["p50_s", "p95_s", "p99_s"]].isna().all().all()
    # the other run of the same test gives the same numbers where load, not the machine, sets
    # them: at light load (no queue) and past the knee (the capacity); in between the client's
    # share of a busy CPU moves the response times from run to run
    full = read_quietly(FULL)
    for users, rtol in [(5, 0.15), (10, 0.15), (80, 0.1), (120, 0.1)]:
        one, other = (f[f["concurrency"] == users].iloc[0] for f in (df, full))
        assert one["throughput_per_s"] == pytest.approx(other["throughput_per_s"], rel=0.05)
        assert one["mean_s"] == pytest.approx(other["mean_s"], rel=rtol)
    assert np.allclose(df["error_rate"], full["error_rate"], atol=0.03)


def test_default_files_cumulative_percentiles_are_not_the_steps():
    """The issue: at the end of the saturated 80-user step the default file's 50% column is
    still dominated by the earlier, lighter steps, far below that step's own median (~0.1 s,
    set by the capacity: the full-history run measured it)."""
    raw = pd.read_csv(DEFAULT)
    full = read_quietly(FULL)
    cumulative = raw.loc[raw["User Count"] == 80, "50%"].iloc[-1] * 1e-3
    assert cumulative < 0.6 * full.loc[full["concurrency"] == 80, "p50_s"].item()
    # in this mode 50% and Total Median Response Time are the same cumulative median
    with_requests = raw[raw["Total Request Count"] > 0]
    assert (with_requests["50%"].astype(float)
            == with_requests["Total Median Response Time"]).mean() > 0.95


def test_files_totals_match_the_stubs_counts():
    """The last row's total is every request the stub answered, but for the last second."""
    for history in (DEFAULT, FULL):
        raw = pd.read_csv(history)
        last = raw[raw["Name"] == "Aggregated"].iloc[-1]
        truth = stub_truth(history)
        answered = truth["served"] + truth["rejected"]
        assert answered - 700 <= last["Total Request Count"] <= answered
        # every failure Locust counted is a 503 of a full queue
        assert truth["rejected"] - 300 <= last["Total Failure Count"] <= truth["rejected"]
        # _stats.csv is rewritten in the same pass as the history's last rows
        stats = pd.read_csv(history.with_name(history.name.replace("_history", "")))
        final = stats[stats["Name"] == "Aggregated"].iloc[0]
        assert final["Request Count"] == last["Total Request Count"]
        assert final["Failure Count"] == last["Total Failure Count"]


# -- tiny hand-made files -----------------------------------------------------------------------
PCT_COLS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
HEADER = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PCT_COLS,
          "Total Request Count", "Total Failure Count", "Total Median Response Time",
          "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
          "Total Average Content Size"]


def _row(t, users, kind, name, pcts, total, failed, avg, median=15):
    if isinstance(pcts, str | int):
        pcts = [pcts] * 3
    p50, p95, p99 = pcts
    cells = [p50, p50, p50, p50, p95, p95, p95, p99, p99, p99, p99]
    return [t, users, kind, name, "0.000000", "0.000000", *cells, total, failed, median, avg,
            1, 100, 3.0]


def _write(path: Path, rows: list[list]) -> Path:
    pd.DataFrame(rows, columns=HEADER).to_csv(path, index=False)
    return path


class Endpoint:
    """Cumulative totals of one endpoint, advanced a second at a time."""

    def __init__(self):
        self.n, self.failed, self.time_ms = 0, 0, 0.0

    def tick(self, n: int, failed: int, mean_ms: float) -> None:
        self.n, self.failed, self.time_ms = self.n + n, self.failed + failed, \
            self.time_ms + n * mean_ms

    @property
    def avg(self) -> float:
        return self.time_ms / self.n if self.n else 0.0


def tiny_full_history(path: Path) -> Path:
    """t = 100: 0 users, nothing yet. t = 101..114: 10 users; GET /a 60/s at 20 ms, GET /b
    30/s at 10 ms, POST /b not requested (N/A). t = 115..128: 20 users; /a 60/s at 30 ms,
    GET /b 40/s at 10 ms with 4 failures/s, POST /b 10/s at 50 ms. t = 129: 30 users (a ramp).

    settle_s = 10 keeps t = 111..114 and 125..128. Percentiles there are given (999 elsewhere,
    which must not be used): Aggregated step 1: p50 20, 0 (an empty window), 22, 24 -> 22.
    """
    ends = {k: Endpoint() for k in (("GET", "/a"), ("GET", "/b"), ("POST", "/b"))}
    agg = Endpoint()
    kept_agg = {111: (20, 40, 60), 112: 0, 113: (22, 44, 66), 114: (24, 48, 72),
                125: (30, 60, 90), 126: (31, 62, 93), 127: "0", 128: (33, 66, 99)}
    kept_b = {111: (9, 12, 14), 112: (0, 3, 5), 113: (11, 12, 14), 114: (10, 12, 14),
              125: (0, 3, 5), 126: (0, 3, 5), 127: (8, 12, 14), 128: (9, 12, 14)}
    rows = [_row(100, 0, "", "Aggregated", "N/A", 0, 0, 0.0)]
    for t in range(101, 130):
        users = 10 if t < 115 else 20 if t < 129 else 30
        plan = ({("GET", "/a"): (60, 0, 20.0), ("GET", "/b"): (30, 0, 10.0)} if users == 10 else
                {("GET", "/a"): (60, 0, 30.0), ("GET", "/b"): (40, 4, 10.0),
                 ("POST", "/b"): (10, 0, 50.0)})
        for key, (n, failed, mean_ms) in plan.items():
            ends[key].tick(n, failed, mean_ms)
            agg.tick(n, failed, mean_ms)
        for (kind, name), e in sorted(ends.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            pcts = ("N/A" if e.n == 0 else kept_b.get(t, 999) if (kind, name) == ("GET", "/b")
                    else (25, 35, 45) if t in kept_agg else 999)
            rows.append(_row(t, users, kind, name, pcts, e.n, e.failed, e.avg))
        rows.append(_row(t, users, "", "Aggregated", kept_agg.get(t, 999), agg.n, agg.failed,
                         agg.avg))
    return _write(path, rows)


def test_tiny_full_history_with_known_numbers(tmp_path):
    """Step 1 keeps t = 111..114: 3 s, 3 * 90 requests, none failed, mean (60*20 + 30*10)/90
    ms; step 2 keeps t = 125..128: 3 * 110 requests, 12 failed, mean (60*30 + 40*10 +
    10*50)/110 ms; the one-row step at 30 users is skipped."""
    p = tiny_full_history(tmp_path / "h.csv")
    df = read_quietly(p)
    assert df.attrs == {"locust_mode": "full-history", "settle_s": 10.0}
    assert list(df["concurrency"]) == [10, 20] and list(df["duration_s"]) == [3, 3]
    one, two = df.iloc[0], df.iloc[1]
    assert one["requests"] == 270 and one["throughput_per_s"] == 90 and one["error_rate"] == 0
    assert one["mean_s"] == pytest.approx(1.5 / 90)
    # the empty window at t = 112 (all 0) is missing: median(20, 22, 24), not median(0, 20, ...)
    assert (one["p50_s"], one["p95_s"], one["p99_s"]) == pytest.approx((0.022, 0.044, 0.066))
    assert two["requests"] == 330 and two["throughput_per_s"] == pytest.approx(318 / 3)
    assert two["error_rate"] == pytest.approx(12 / 330)
    assert two["mean_s"] == pytest.approx(2.7 / 110)
    assert (two["p50_s"], two["p99_s"]) == pytest.approx((0.031, 0.093))  # t = 127 empty


def test_tiny_full_history_endpoints(tmp_path):
    p = tiny_full_history(tmp_path / "h.csv")
    a = read_quietly(p, name="/a")
    assert list(a["throughput_per_s"]) == [60, 60]
    assert list(a["mean_s"]) == pytest.approx([0.020, 0.030])
    b = read_quietly(p, name="/b", method="GET")
    assert list(b["requests"]) == [90, 120] and list(b["error_rate"]) == pytest.approx([0, 0.1])
    # a 0 beside nonzero percentiles is a real sub-millisecond response, kept
    assert list(b["p50_s"]) == pytest.approx([0.0095, 0.004])  # median(0, 0, 8, 9)
    post = read_quietly(p, name="/b", method="POST")
    # not requested in step 1: no requests, no mean, no percentiles (N/A), and no warning
    assert post["requests"].tolist() == [0, 30] and post["throughput_per_s"].tolist() == [0, 10]
    assert np.isnan(post["mean_s"].iloc[0]) and np.isnan(post["p50_s"].iloc[0])
    assert post["mean_s"].iloc[1] == pytest.approx(0.050)


def tiny_default(path: Path, hand_made: bool = False) -> Path:
    """Aggregated rows only; t = 101..114 at 10 users, 100 requests/s at 20 ms, 2 failures/s
    from t = 112. The 50% column is the cumulative median (= Total Median Response Time), as
    Locust writes it; ``hand_made`` puts a step's own median there instead."""
    agg = Endpoint()
    rows = [_row(100, 0, "", "Aggregated", "N/A", 0, 0, 0.0, median=0)]
    for t in range(101, 115):
        agg.tick(100, 2 if t >= 112 else 0, 20.0)
        p50 = 30 + t % 3 if hand_made else 18
        rows.append(_row(t, 10, "", "Aggregated", (p50, 40, 50), agg.n, agg.failed, agg.avg,
                         median=18))
    return _write(path, rows)


def test_tiny_default_mode_keeps_totals_and_refuses_percentiles(tmp_path):
    """Kept t = 111..114: 300 requests in 3 s, 6 failed (t = 112..114), mean 20 ms."""
    with pytest.warns(MeasurementWarning, match=r"p50_s/p95_s/p99_s are NaN") as seen:
        df = read_locust_history(tiny_default(tmp_path / "d.csv"))
    assert len(seen) == 1 and "made by hand" not in str(seen[0].message)
    assert df.attrs["locust_mode"] == "default"
    row = df.iloc[0]
    assert row["requests"] == 300 and row["throughput_per_s"] == 98
    assert row["error_rate"] == 0.02 and row["mean_s"] == pytest.approx(0.020)
    assert df[["p50_s", "p95_s", "p99_s"]].isna().all().all()
    with pytest.warns(MeasurementWarning, match=r"50% column differs from 'Total Median "
                                                r"Response Time' in 14 of 14 rows.*by hand"):
        read_locust_history(tiny_default(tmp_path / "m.csv", hand_made=True))
    with pytest.raises(cs.ModelError, match=r"\.name: must be 'Aggregated': a file written "
                                            r"without --csv-full-history.*got '/a'"):
        read_locust_history(tmp_path / "d.csv", name="/a")


def test_whole_second_stamps_do_not_bias_the_span(tmp_path):
    """Rows written every 1.05 s but stamped int(time): a second slips every 20 rows. At 100
    requests per real second the step's throughput is 100/s, not requests / stamped span (here
    the kept rows span 9.45 s, stamped 10 s: 6 % off)."""
    real = 100.3 + 1.05 * np.arange(20)
    rows = [_row(int(r), 10, "", "Aggregated", 18, round(100 * (r - real[0])), 0, 20.0, 18)
            for r in real]
    with pytest.warns(MeasurementWarning, match="without --csv-full-history"):
        df = read_locust_history(_write(tmp_path / "slip.csv", rows))
    stamps = np.floor(real)
    kept = stamps[stamps >= stamps[0] + 10]
    assert kept[-1] - kept[0] == 10 and kept.size == 10  # the stamps alone say 10 s
    assert df["duration_s"].item() == pytest.approx(1.05 * (kept.size - 1), rel=0.01)
    assert df["throughput_per_s"].item() == pytest.approx(100, rel=0.01)


def test_short_settle_warns_in_full_history_mode(tmp_path):
    p = tiny_full_history(tmp_path / "h.csv")
    with pytest.warns(MeasurementWarning, match=r"settle_s=2 is shorter than Locust's 10 s "
                                                r"percentile window"):
        df = read_locust_history(p, settle_s=2)
    assert df["duration_s"].tolist() == [11, 11]


def test_bad_files(tmp_path):
    p = tiny_full_history(tmp_path / "h.csv")
    with pytest.raises(cs.ModelError, match=r"read_locust_history\('h.csv'\)\.name: must be "
                                            r"'Aggregated' or an endpoint of the file \['/a', "
                                            r"'/b'\] \(did you mean '/a'\?\), got '/aa'"):
        read_locust_history(p, name="/aa")
    with pytest.raises(cs.ModelError, match=r"\.method: must pick one of the request types "
                                            r"\['GET', 'POST'\] of endpoint '/b', got None"):
        read_locust_history(p, name="/b")
    with pytest.raises(cs.ModelError, match=r"\.method: must be a request type of endpoint "
                                            r"'/a', one of \['GET'\], got 'PUT'"):
        read_locust_history(p, name="/a", method="PUT")
    with pytest.raises(cs.ModelError, match=r"\.name: must be a non-empty string, got 3"):
        read_locust_history(p, name=3)
    with pytest.raises(cs.ModelError, match=r"no load step lasts longer than settle_s=20"):
        read_locust_history(p, settle_s=20)
    with pytest.raises(cs.ModelError, match=r"read_locust_history.settle_s: must be >= 0"):
        read_locust_history(p, settle_s=-1)
    with pytest.raises(cs.ModelError, match=r"read_locust_history.paths: must be existing"):
        read_locust_history(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text(",".join(HEADER) + "\n")
    with pytest.raises(cs.ModelError, match=r"\('empty.csv'\): no 'Aggregated' rows"):
        read_locust_history(tmp_path / "empty.csv")
    q = tmp_path / "stats.csv"
    q.write_text("Type,Name,Request Count\nGET,/a,10\n")  # the _stats.csv, not the history
    with pytest.raises(cs.ModelError, match=r"missing columns \['Timestamp', 'User Count'"):
        read_locust_history(q)
    text = p.read_text()
    for old, new, message in [
        ("\n113,10,,Aggregated,", "\nsoon,10,,Aggregated,",
         r"\['Timestamp'\] row \d+: must be a number, got 'soon'"),
        ("\n113,10,,Aggregated,", "\n99,10,,Aggregated,",
         r"\['Timestamp'\] row \d+: must not decrease, got 99 after 112"),
        ("\n113,10,,Aggregated,0.000000,0.000000,22,",
         "\n113,10,,Aggregated,0.000000,0.000000,fast,",
         r"\['50%'\] row \d+: must be a number of ms or N/A, got 'fast'"),
    ]:
        r = tmp_path / "bad.csv"
        r.write_text(text.replace(old, new))
        with pytest.raises(cs.ModelError, match=message):
            read_locust_history(r)
    raw = pd.read_csv(p)
    raw.loc[(raw["Timestamp"] == 113) & (raw["Name"] == "Aggregated"), "Total Request Count"] = 5
    raw.to_csv(tmp_path / "reset.csv", index=False)
    with pytest.raises(cs.ModelError, match=r"\['Total Request Count'\] row \d+: must not "
                                            r"decrease, got 5 after 1080 \(the totals restart"):
        read_locust_history(tmp_path / "reset.csv")


# -- the real Locust, live ----------------------------------------------------------------------
LIVE_LOCUSTFILE = """\
from locust import FastHttpUser, LoadTestShape, between, task


class Visitor(FastHttpUser):
    wait_time = between(0.05, 0.15)

    @task(3)
    def items(self):
        self.client.get("/items")

    @task(1)
    def search(self):
        self.client.get("/search")


class Steps(LoadTestShape):
    # 10 users for 5 s, then none for 2 s: the last rows hold every finished request
    def tick(self):
        t = self.get_run_time()
        return (10, 20) if t < 5 else (0, 100) if t < 7 else None
"""


def test_live_locust_full_history_reads_back(tmp_path):
    """Locust headless for a few seconds against a stub: the file it writes reads back as
    full-history, and its totals are what the stub answered."""
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("locust is not installed next to this Python")
    (tmp_path / "locustfile.py").write_text(LIVE_LOCUSTFILE)
    with StubServer(workers=4, service_time=cs.LogNormal(0.005, 1.0), queue_capacity=2) as stub:
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "--host",
             stub.url, "--csv", "live", "--csv-full-history", "--only-summary", "--loglevel",
             "WARNING"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        answered = stub.served + stub.rejected
    assert run.returncode in (0, 1), run.stderr[-2000:]  # 1: some requests failed (503s)
    history = tmp_path / "live_stats_history.csv"
    with pytest.warns(MeasurementWarning, match="shorter than Locust's 10 s"):
        df = read_locust_history(history, settle_s=1)
    assert df.attrs["locust_mode"] == "full-history" and df["concurrency"].tolist() == [10]
    raw = pd.read_csv(history)
    assert set(raw["Name"]) == {"/items", "/search", "Aggregated"}
    last = raw[raw["Name"] == "Aggregated"].iloc[-1]
    # the users are gone by the last row: it counts every request but the <= 10 cut off in
    # flight when they were stopped (the stub still finished those)
    assert last["User Count"] == 0
    assert answered - 10 <= last["Total Request Count"] <= answered
    assert last["Total Failure Count"] <= stub.rejected
    assert 100 < df["requests"].item() <= last["Total Request Count"]
    assert df["p50_s"].item() <= df["p95_s"].item() <= df["p99_s"].item()
    # the endpoints' rows add up to the aggregate's, request for request
    with pytest.warns(MeasurementWarning):
        parts = [read_locust_history(history, settle_s=1, name=n) for n in ("/items", "/search")]
    assert sum(part["requests"].item() for part in parts) == df["requests"].item()

"""Readers for real load-test outputs, into one tidy table of load steps.

Two formats, as the tools write them:

* **k6** ``k6 run --summary-export=summary.json``: ``metrics.http_req_duration`` holds ``avg``,
  ``min``, ``med``, ``max``, ``p(90)``, ``p(95)`` (and ``p(99)`` when
  ``--summary-trend-stats`` asks for it) in milliseconds; ``metrics.http_reqs`` the ``count`` and
  ``rate`` of requests; ``metrics.http_req_failed`` the failed share as ``value``; ``metrics.vus``
  the virtual users (``value``, ``min``, ``max``). The ``handleSummary()`` JSON, which nests each
  metric's numbers under ``values``, is read too. A summary covers one whole run, so one file is
  one load step; run one k6 test per step and pass all the files.
* **Locust** ``locust --csv=prefix`` writes ``prefix_stats_history.csv``: one row per interval
  (default 1 s) with the ``User Count``, the current ``Requests/s``, the current response-time
  percentiles (ms; ``N/A`` before any response) and the cumulative totals. The rows named
  ``Aggregated`` are the totals over all endpoints. A stepped test is cut into its steps (runs of
  rows with the same user count); the first ``settle_s`` seconds of each step are dropped (the
  ramp, and Locust's 10 s window of "current" statistics still holding the previous step), and
  the rest is the step's steady part.

Every reader answers with :data:`LOADTEST_COLUMNS`. ``throughput_per_s`` counts *successful*
responses (failed requests are in ``error_rate``, as in capsim's own latency table); latencies
are in seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.errors import ModelError, check_number, fail

__all__ = ["LOADTEST_COLUMNS", "read_k6_summary", "read_load_test", "read_locust_history"]

LOADTEST_COLUMNS = [
    "source",  # file name the row was read from
    "step",  # 0, 1, ... within the source (k6: the file's position in the list)
    "concurrency",  # virtual users (k6 VUs, Locust users)
    "duration_s",  # length of the measured window
    "requests",  # requests completed in the window, failed ones included
    "throughput_per_s",  # successful responses per second
    "mean_s",
    "p50_s",
    "p95_s",
    "p99_s",  # NaN when the tool was not asked for it
    "error_rate",  # failed / requests (NaN if the tool did not report failures)
]

LOCUST_REQUIRED = ["Timestamp", "User Count", "Name", "Requests/s", "Total Request Count",
                   "Total Failure Count", "Total Average Response Time", "50%", "95%"]


def _paths(paths, owner: str) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = [Path(p) for p in paths]
    if not out:
        raise fail(owner, "paths", "must name at least one file", list(paths))
    for p in out:
        if not p.is_file():
            raise fail(owner, "paths", "must be existing files", str(p))
    return out


# -- k6 -----------------------------------------------------------------------------------------
def read_k6_summary(paths: str | Path | Sequence[str | Path],
                    concurrency: float | Sequence[float] | None = None) -> pd.DataFrame:
    """One row per k6 summary export (``--summary-export``), in the order given.

    The concurrency of a step is the largest number of active VUs the run saw (``vus.max``,
    else ``vus.value``, else ``vus_max``). Pass ``concurrency`` (one number per file) to
    override it, for instance for an arrival-rate executor where VUs are not the load.
    """
    files = _paths(paths, "read_k6_summary")
    if concurrency is not None:
        given = np.atleast_1d(np.asarray(concurrency, dtype=float))
        if given.size != len(files):
            raise fail("read_k6_summary", "concurrency", f"must give one value per file "
                       f"({len(files)})", concurrency)
        for c in given:
            check_number("read_k6_summary", "concurrency", float(c))
    rows = []
    for step, path in enumerate(files):
        row = _k6_row(path)
        if concurrency is not None:
            row["concurrency"] = float(given[step])
        rows.append({"source": path.name, "step": step, **row})
    return pd.DataFrame(rows, columns=LOADTEST_COLUMNS)


def _k6_row(path: Path) -> dict:
    owner = f"read_k6_summary({path.name!r})"
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{owner}: not a JSON file ({exc})") from None
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise ModelError(f"{owner}.metrics: missing; expected the JSON that "
                         "`k6 run --summary-export=summary.json` writes")

    def metric(name: str, required: bool = True) -> dict | None:
        m = metrics.get(name)
        if isinstance(m, dict) and isinstance(m.get("values"), dict):
            m = m["values"]  # handleSummary() layout
        if m is None and not required:
            return None
        if not isinstance(m, dict):
            raise ModelError(f"{owner}.metrics.{name}: missing, got {m!r}")
        return m

    def number(m: dict, where: str, *keys: str, required: bool = True) -> float:
        for key in keys:
            if key in m:
                v = m[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ModelError(f"{owner}.metrics.{where}[{key!r}]: must be a finite "
                                     f"number, got {v!r}")
                return float(v)
        if required:
            raise ModelError(f"{owner}.metrics.{where}: needs {' or '.join(map(repr, keys))}, "
                             f"has {sorted(m)}")
        return math.nan

    dur = metric("http_req_duration")
    reqs = metric("http_reqs")
    count = number(reqs, "http_reqs", "count")
    rate = number(reqs, "http_reqs", "rate")
    failed = metric("http_req_failed", required=False)
    if failed is None:
        error_rate = math.nan
    else:
        error_rate = number(failed, "http_req_failed", "value", "rate", required=False)
        if math.isnan(error_rate):  # derive from the counts: passes = requests that failed
            passes = number(failed, "http_req_failed", "passes")
            fails = number(failed, "http_req_failed", "fails")
            error_rate = passes / (passes + fails) if passes + fails else math.nan
    vus = metric("vus", required=False) or metric("vus_max", required=False)
    if vus is None:
        raise ModelError(f"{owner}.metrics.vus: missing; pass concurrency= to say how many "
                         "virtual users the run had")
    users = number(vus, "vus", "max", "value")
    state = data.get("state") if isinstance(data.get("state"), dict) else {}
    if isinstance(state.get("testRunDurationMs"), (int, float)):
        duration = state["testRunDurationMs"] / 1e3
    else:
        duration = count / rate if rate > 0 else math.nan
    ms = 1e-3
    ok_share = 1.0 if math.isnan(error_rate) else 1.0 - error_rate
    return {
        "concurrency": users,
        "duration_s": duration,
        "requests": count,
        "throughput_per_s": rate * ok_share,
        "mean_s": number(dur, "http_req_duration", "avg") * ms,
        "p50_s": number(dur, "http_req_duration", "med", "p(50)") * ms,
        "p95_s": number(dur, "http_req_duration", "p(95)") * ms,
        "p99_s": number(dur, "http_req_duration", "p(99)", required=False) * ms,
        "error_rate": error_rate,
    }


# -- Locust -------------------------------------------------------------------------------------
def read_locust_history(path: str | Path, settle_s: float = 10.0,
                        name: str = "Aggregated") -> pd.DataFrame:
    """One row per load step of a Locust ``*_stats_history.csv``.

    A step is a run of consecutive rows with the same ``User Count`` (0 users is no step). Its
    first ``settle_s`` seconds are dropped; a step with fewer than two rows left is skipped
    (a ramp passing through). Over the rest, throughput, error rate and mean latency come from
    the cumulative totals (exact), and p50 / p95 / p99 are the median of Locust's per-interval
    "current" percentiles. ``name`` picks the rows (``"Aggregated"``: all endpoints).
    """
    (path,) = _paths(path, "read_locust_history")
    settle_s = check_number("read_locust_history", "settle_s", settle_s, strict=False)
    owner = f"read_locust_history({path.name!r})"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in LOCUST_REQUIRED if c not in frame.columns]
    if missing:
        raise ModelError(f"{owner}: missing columns {missing}; expected the "
                         "prefix_stats_history.csv that `locust --csv=prefix` writes")
    frame = frame[frame["Name"] == name]
    if frame.empty:
        raise fail(owner, "name", "must match the Name of some rows", name)

    def column(col: str, allow_na: bool = False) -> np.ndarray:
        if col not in frame.columns:
            return np.full(len(frame), np.nan)
        raw = frame[col].str.strip()
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(values) & ~(allow_na & raw.isin(["N/A", ""])).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(f"{owner}[{col!r}] row {frame.index[i]}: must be a number, "
                             f"got {frame[col].iloc[i]!r}")
        return values

    t = column("Timestamp")
    users = column("User Count")
    total = column("Total Request Count")
    failures = column("Total Failure Count")
    mean_ms = column("Total Average Response Time")
    pct = {q: column(f"{q}%", allow_na=True) for q in (50, 95, 99)}

    rows = []
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], users.size]
    for a, b in zip(starts, ends, strict=True):
        if users[a] <= 0:
            continue
        steady = np.arange(a, b)[t[a:b] >= t[a] + settle_s]
        if steady.size < 2 or t[steady[-1]] <= t[steady[0]]:
            continue
        i, j = steady[0], steady[-1]
        dt = t[j] - t[i]
        n = total[j] - total[i]
        nf = failures[j] - failures[i]
        rows.append({
            "source": path.name,
            "step": len(rows),
            "concurrency": users[a],
            "duration_s": dt,
            "requests": n,
            "throughput_per_s": (n - nf) / dt,
            "mean_s": ((mean_ms[j] * total[j] - mean_ms[i] * total[i]) / n * 1e-3
                       if n > 0 else np.nan),
            **{f"p{q}_s": _nanmedian(pct[q][steady]) * 1e-3 for q in (50, 95, 99)},
            "error_rate": nf / n if n > 0 else np.nan,
        })
    if not rows:
        raise ModelError(f"{owner}: no load step lasts longer than settle_s={settle_s:g} s plus "
                         "two rows; lower settle_s or run longer steps")
    return pd.DataFrame(rows, columns=LOADTEST_COLUMNS)


def _nanmedian(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else math.nan


# -- either -------------------------------------------------------------------------------------
def read_load_test(paths: str | Path | Sequence[str | Path], **options) -> pd.DataFrame:
    """Read k6 summaries (``.json``) and Locust histories (``.csv``) into one table.

    All k6 files go to :func:`read_k6_summary` together (one step each), every Locust file to
    :func:`read_locust_history` (``settle_s`` and ``name`` are passed on); rows are sorted by
    concurrency.
    """
    files = _paths(paths, "read_load_test")
    k6 = [p for p in files if p.suffix.lower() == ".json"]
    locust = [p for p in files if p.suffix.lower() == ".csv"]
    other = [str(p) for p in files if p not in k6 and p not in locust]
    if other:
        raise fail("read_load_test", "paths", "must be .json (k6) or .csv (Locust) files", other)
    parts = [read_k6_summary(k6)] if k6 else []
    parts += [read_locust_history(p, **options) for p in locust]
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values("concurrency", kind="stable").reset_index(drop=True)

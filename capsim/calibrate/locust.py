"""Locust's output files, read into capsim's table of load steps (:data:`LOADTEST_COLUMNS`).

* **Locust** ``locust --csv=prefix`` writes ``prefix_stats_history.csv``: one row per interval
  (default 1 s) with the ``User Count``, the current ``Requests/s``, the current response-time
  percentiles (ms; ``N/A`` before any response) and the cumulative totals. The rows named
  ``Aggregated`` are the totals over all endpoints. A stepped test is cut into its steps (runs of
  rows with the same user count); the first ``settle_s`` seconds of each step are dropped (the
  ramp, and Locust's 10 s window of "current" statistics still holding the previous step), and
  the rest is the step's steady part.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.calibrate.loadtest import LOADTEST_COLUMNS, _paths
from capsim.errors import ModelError, check_number, fail

__all__ = ["read_locust_history"]

LOCUST_REQUIRED = ["Timestamp", "User Count", "Name", "Requests/s", "Total Request Count",
                   "Total Failure Count", "Total Average Response Time", "50%", "95%"]


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



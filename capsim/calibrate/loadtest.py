"""Readers for real load-test outputs, into one tidy table of load steps.

The tools' own formats are read in :mod:`capsim.calibrate.k6` and :mod:`capsim.calibrate.locust`;
this module holds the table they all answer with (:data:`LOADTEST_COLUMNS`) and
:func:`read_load_test`, which sends each file to its reader. ``throughput_per_s`` counts
*successful* responses (failed requests are in ``error_rate``, as in capsim's own latency
table); latencies are in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from capsim.errors import fail

__all__ = ["LOADTEST_COLUMNS", "read_load_test"]

LOADTEST_COLUMNS = [
    "source",  # file name the row was read from
    "step",  # 0, 1, ... within the source (k6: the file's position in the list)
    "concurrency",  # virtual users (k6 VUs, Locust users)
    "arrival_rate_per_s",  # offered arrivals per s of an open-loop (arrival-rate) step; NaN for
    # closed loops, where the users' think time, not the tool, sets the rate
    "duration_s",  # length of the measured window
    "requests",  # requests completed in the window, failed ones included
    "throughput_per_s",  # successful responses per second
    "mean_s",
    "p50_s",
    "p95_s",
    "p99_s",  # NaN when the tool was not asked for it
    "error_rate",  # failed / requests (NaN if the tool did not report failures)
]


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
    from capsim.calibrate.k6 import read_k6_summary
    from capsim.calibrate.locust import read_locust_history

    parts = [read_k6_summary(k6)] if k6 else []
    parts += [read_locust_history(p, **options) for p in locust]
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values("concurrency", kind="stable").reset_index(drop=True)

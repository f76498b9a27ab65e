"""k6's output files, read into capsim's table of load steps (:data:`LOADTEST_COLUMNS`).

* **k6** ``k6 run --summary-export=summary.json``: ``metrics.http_req_duration`` holds ``avg``,
  ``min``, ``med``, ``max``, ``p(90)``, ``p(95)`` (and ``p(99)`` when
  ``--summary-trend-stats`` asks for it) in milliseconds; ``metrics.http_reqs`` the ``count`` and
  ``rate`` of requests; ``metrics.http_req_failed`` the failed share as ``value``; ``metrics.vus``
  the virtual users (``value``, ``min``, ``max``). The ``handleSummary()`` JSON, which nests each
  metric's numbers under ``values``, is read too. A summary covers one whole run, so one file is
  one load step; run one k6 test per step and pass all the files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.calibrate.loadtest import LOADTEST_COLUMNS, _paths
from capsim.errors import ModelError, check_number, fail

__all__ = ["read_k6_summary"]


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



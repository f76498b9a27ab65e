"""k6's output files, read into capsim's table of load steps (:data:`LOADTEST_COLUMNS`).

* ``k6 run --summary-export=summary.json``: ``metrics.http_req_duration`` holds ``avg``,
  ``min``, ``med``, ``max``, ``p(90)``, ``p(95)`` (and ``p(99)`` when ``--summary-trend-stats``
  asks for it) in milliseconds; ``metrics.http_reqs`` the ``count`` and ``rate`` of requests;
  ``metrics.http_req_failed`` the failed share as ``value``; ``metrics.vus`` the VUs inside an
  iteration and ``metrics.vus_max`` the VUs allocated (``value``, ``min``, ``max``). The
  ``handleSummary()`` JSON nests each metric's numbers under ``values`` and has
  ``state.testRunDurationMs``.
* k6 >= 1.5's machine-readable summary (``--new-machine-readable-summary``, schema ``version``
  1.0.0): ``config.duration`` in seconds, ``results.metrics`` a *list* of ``{name, type,
  contains, values}``; counters have only ``count``, rates ``matches`` / ``total`` / ``rate``,
  trends ``avg``, ``min``, ``med``, ``max``, ``p90``, ``p95`` (ms; no p99, whatever
  ``--summary-trend-stats`` says).
* ``k6 run --out json=points.json`` (or ``points.json.gz``): one JSON object a line, ``Metric``
  declarations and ``Point`` samples (``data.time``, ``data.value``, ``data.tags``): every
  request's own ``http_req_duration``, so a stepped run can be cut into its steps and each step
  given real percentiles, which no summary can.

A summary covers one whole run, so one summary file is one load step.

Open or closed loop. A VU-based executor (``constant-vus``, ``ramping-vus``) is a closed loop:
every VU is always inside an iteration, so the ``vus`` gauge reaches ``vus_max``, and the load is
the VU count. An arrival-rate executor starts iterations at a rate, whether or not earlier ones
have finished: it keeps idle VUs in reserve (``vus`` stays below ``vus_max``) or, when it runs
out, drops iterations (``dropped_iterations``). That is how the readers tell them apart when
``open_loop`` is not given. For an open-loop step the offered rate is ``arrival_rate_per_s`` =
(iterations started + dropped) / duration, in iterations per second (the executor's ``rate``;
requests per second if each iteration makes one request), and ``concurrency`` is the mean number
of requests in flight by Little's law: requests per second x mean response time.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.calibrate.loadtest import (
    K6_MACHINE_SUMMARY,
    K6_STREAM,
    K6_SUMMARY,
    LOADTEST_COLUMNS,
    _open_text,
    _paths,
    _sniff,
)
from capsim.errors import MeasurementWarning, ModelError, check_number, fail

__all__ = ["read_k6_stream", "read_k6_summary"]

MS = 1e-3
# the new summary's trend keys, in the legacy spelling
_TREND_KEYS = {"p90": "p(90)", "p95": "p(95)", "p99": "p(99)"}


# -- summaries ----------------------------------------------------------------------------------
def read_k6_summary(paths: str | Path | Sequence[str | Path],
                    concurrency: float | Sequence[float] | None = None,
                    open_loop: bool | Sequence[bool] | None = None) -> pd.DataFrame:
    """One row per k6 summary (``--summary-export``, ``handleSummary()`` JSON, or k6 >= 1.5's
    machine-readable summary; the layout is detected), in the order given.

    Closed loop: ``concurrency`` is the largest number of active VUs (``vus.max``, else
    ``vus.value``, else ``vus_max``). Open loop (arrival-rate executors): ``arrival_rate_per_s``
    is (iterations + dropped iterations) / duration and ``concurrency`` the mean requests in
    flight, all requests/s x mean response time. ``open_loop`` (one bool, or one per file)
    overrides the detection described in the module docstring; ``concurrency`` (one number per
    file) overrides the concurrency.
    """
    files = _paths(paths, "read_k6_summary")
    given = _per_file("concurrency", concurrency, len(files), float)
    loops = _per_file("open_loop", open_loop, len(files), bool)
    rows = []
    for step, path in enumerate(files):
        row = _Summary(path).row(loops[step], given[step])
        rows.append({"source": path.name, "step": step, **row})
    return pd.DataFrame(rows, columns=LOADTEST_COLUMNS)


def _per_file(field: str, value, n: int, kind: type) -> list:
    owner = "read_k6_summary"
    if value is None:
        return [None] * n
    if kind is bool:
        if isinstance(value, (bool, np.bool_)):
            return [bool(value)] * n
        values = list(value) if isinstance(value, Sequence) else [value]
        if not all(isinstance(v, (bool, np.bool_)) for v in values):
            raise fail(owner, field, "must be True, False or one of them per file", value)
    else:
        values = np.atleast_1d(np.asarray(value, dtype=float)).tolist()
        for v in values:
            check_number(owner, field, v)
    if len(values) != n:
        raise fail(owner, field, f"must give one value per file ({n})", value)
    return [kind(v) for v in values]


class _Summary:
    """One summary file, whichever of k6's layouts, with its metrics in one spelling."""

    def __init__(self, path: Path) -> None:
        self.owner = f"read_k6_summary({path.name!r})"
        kind, looks = _sniff(path)
        if kind == K6_STREAM:
            raise ModelError(f"{self.owner}: this is k6's --out json point stream; use "
                             "read_k6_stream")
        if kind not in (K6_SUMMARY, K6_MACHINE_SUMMARY):
            raise ModelError(f"{self.owner}: not a k6 summary: the file looks like {looks}; "
                             "expected the JSON that `k6 run --summary-export=summary.json` "
                             "writes")
        data = json.loads(_open_text(path))
        self.new = kind == K6_MACHINE_SUMMARY
        self.where = "results.metrics" if self.new else "metrics"
        if self.new:
            self.metrics = {}
            for i, m in enumerate(data["results"]["metrics"]):
                if not isinstance(m, dict) or not isinstance(m.get("name"), str):
                    raise ModelError(f"{self.owner}.results.metrics[{i}]: must be an object "
                                     f"with a name, got {m!r}")
                self.metrics[m["name"]] = m
            config = data.get("config")
            self.duration = self._number(config if isinstance(config, dict) else {},
                                         "config", "duration", top=True)
        else:
            self.metrics = data["metrics"]
            state = data.get("state") if isinstance(data.get("state"), dict) else {}
            self.duration = (self._number(state, "state", "testRunDurationMs", top=True) * MS
                             if "testRunDurationMs" in state else math.nan)

    def metric(self, name: str, required: bool = True) -> dict | None:
        m = self.metrics.get(name)
        if isinstance(m, dict) and isinstance(m.get("values"), dict):
            m = m["values"]  # handleSummary() and the new summary
        if m is None and not required:
            return None
        if not isinstance(m, dict):
            raise ModelError(f"{self.owner}.{self.where}.{name}: missing, got {m!r}")
        if self.new:  # into the legacy spelling: p90 -> p(90), matches/total -> passes/fails
            m = {_TREND_KEYS.get(k, k): v for k, v in m.items()}
            if "matches" in m and "total" in m:
                m = {**m, "passes": m["matches"], "fails": _minus(m["total"], m["matches"])}
        return m

    def _number(self, m: dict, where: str, *keys: str, required: bool = True,
                top: bool = False) -> float:
        at = where if top else f"{self.where}.{where}"
        for key in keys:
            if key in m:
                v = m[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ModelError(f"{self.owner}.{at}[{key!r}]: must be a finite number, "
                                     f"got {v!r}")
                return float(v)
        if required:
            raise ModelError(f"{self.owner}.{at}: needs {' or '.join(map(repr, keys))}, "
                             f"has {sorted(m)}")
        return math.nan

    def row(self, open_loop: bool | None, concurrency: float | None) -> dict:
        num = self._number
        dur = self.metric("http_req_duration")
        reqs = self.metric("http_reqs")
        count = num(reqs, "http_reqs", "count")
        duration = self.duration
        if math.isnan(duration):  # --summary-export has no run duration: count / rate
            rate = num(reqs, "http_reqs", "rate")
            duration = count / rate if rate > 0 else math.nan
        all_per_s = count / duration if duration > 0 else math.nan
        failed = self.metric("http_req_failed", required=False)
        if failed is None:
            error_rate = math.nan
        else:
            error_rate = num(failed, "http_req_failed", "value", "rate", required=False)
            if math.isnan(error_rate):  # from the counts: passes = requests that failed
                passes = num(failed, "http_req_failed", "passes")
                fails = num(failed, "http_req_failed", "fails")
                error_rate = passes / (passes + fails) if passes + fails else math.nan
        mean_s = num(dur, "http_req_duration", "avg") * MS
        p99 = num(dur, "http_req_duration", "p(99)", required=False) * MS
        if math.isnan(p99):
            why = ("its schema keeps avg, min, med, max, p90 and p95 only; read the --out json "
                   "stream with read_k6_stream for p99" if self.new else
                   "k6 writes it only when --summary-trend-stats asks for p(99)")
            warnings.warn(f"{self.owner}: no p99 of http_req_duration ({why}); p99_s is NaN",
                          MeasurementWarning, stacklevel=3)

        vus = self.metric("vus", required=False)
        vus_max = self.metric("vus_max", required=False)
        iterations = self.metric("iterations", required=False)
        dropped_m = self.metric("dropped_iterations", required=False)
        dropped = 0.0 if dropped_m is None else num(dropped_m, "dropped_iterations", "count")
        busy = math.nan if vus is None else num(vus, "vus", "max", "value")
        allocated = math.nan if vus_max is None else num(vus_max, "vus_max", "max", "value")
        if open_loop is None:
            open_loop = dropped > 0 or busy < allocated
        arrival = math.nan
        if open_loop:
            if iterations is None:
                warnings.warn(f"{self.owner}: no iterations counter, so no arrival rate; "
                              "arrival_rate_per_s is NaN", MeasurementWarning, stacklevel=3)
            else:
                started = num(iterations, "iterations", "count") + dropped
                arrival = started / duration if duration > 0 else math.nan
            users = all_per_s * mean_s
        elif not math.isnan(busy):
            users = busy
        elif not math.isnan(allocated):
            users = allocated
        elif concurrency is None:
            raise ModelError(f"{self.owner}.{self.where}.vus: missing; pass concurrency= to say "
                             "how many virtual users the run had")
        ok_share = 1.0 if math.isnan(error_rate) else 1.0 - error_rate
        return {
            "concurrency": users if concurrency is None else concurrency,
            "arrival_rate_per_s": arrival,
            "duration_s": duration,
            "requests": count,
            "throughput_per_s": all_per_s * ok_share,
            "mean_s": mean_s,
            "p50_s": num(dur, "http_req_duration", "med", "p(50)") * MS,
            "p95_s": num(dur, "http_req_duration", "p(95)") * MS,
            "p99_s": p99,
            "error_rate": error_rate,
        }


def _minus(a, b):
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return a - b if ok else None


# -- the --out json point stream ----------------------------------------------------------------
_METRIC = re.compile(r'"metric"\s*:\s*"([^"]*)"')
_POINT = re.compile(r'"type"\s*:\s*"Point"')
_WANTED = ("http_req_duration", "http_req_failed", "vus", "vus_max", "iteration_duration",
           "dropped_iterations")


def read_k6_stream(path: str | Path, steps: Sequence[tuple[float, float]] | None = None,
                   settle_s: float = 2.0, open_loop: bool | None = None) -> pd.DataFrame:
    """One row per load step of a k6 ``--out json`` point stream (plain or gzipped NDJSON).

    Steps are where the load changes: runs of equal ``vus`` samples for a closed loop, runs of
    about the same started-iteration rate (iterations, dated at their start, plus dropped ones,
    per second; within 10 %, or 2, of the step's median) for an arrival-rate executor; or the
    explicit ``steps``, ``(start_s, end_s)`` windows in seconds from the first response (the
    earliest ``http_req_duration`` point).
    The first ``settle_s`` seconds of every step are dropped (the queue's transient); a detected
    step with less than 1 s left is skipped (a ramp passing through). Within a window, the
    statistics are those of the ``http_req_duration`` points dated in it: percentiles computed
    from the raw points (numpy's linear interpolation, as k6's own), failures from the
    ``expected_response`` tag or else the ``http_req_failed`` points. ``open_loop`` as in
    :func:`read_k6_summary` (detected when None).
    """
    (path,) = _paths(path, "read_k6_stream")
    owner = f"read_k6_stream({path.name!r})"
    settle_s = check_number("read_k6_stream", "settle_s", settle_s, strict=False)
    if open_loop is not None and not isinstance(open_loop, (bool, np.bool_)):
        raise fail("read_k6_stream", "open_loop", "must be True, False or None", open_loop)
    kind, looks = _sniff(path)
    if kind in (K6_SUMMARY, K6_MACHINE_SUMMARY):
        raise ModelError(f"{owner}: this is {kind}, one run's totals; use read_k6_summary")
    if kind != K6_STREAM:
        raise ModelError(f"{owner}: not a k6 point stream: the file looks like {looks}; expected "
                         "what `k6 run --out json=points.json` writes")
    pts = _points(path, owner)
    if "http_req_duration" not in pts:
        raise ModelError(f"{owner}: no http_req_duration points; the stream has "
                         f"{sorted(pts) or 'no points'} of what the reader needs")
    t0 = float(pts["http_req_duration"][0].min())  # the first response: the steps' origin
    pts = {k: (t - t0, v, ok) for k, (t, v, ok) in pts.items()}
    t_req, ms, ok = pts["http_req_duration"]
    order = np.argsort(t_req, kind="stable")
    t_req, ms, ok = t_req[order], ms[order], (None if ok is None else ok[order])
    failed = pts.get("http_req_failed")
    if ok is None and failed is None:
        warnings.warn(f"{owner}: neither the expected_response tag nor http_req_failed points, "
                      "so no failures; error_rate is NaN and every response counts as a "
                      "success", MeasurementWarning, stacklevel=2)

    vus_t, vus_v = _series(pts, "vus")
    dropped = pts.get("dropped_iterations")
    if open_loop is None:
        vmax = pts.get("vus_max")
        open_loop = bool(dropped is not None and dropped[1].sum() > 0) or bool(
            vus_v.size and vmax is not None and vus_v.max() < vmax[1].max())
    starts, weights = _starts(pts)

    if steps is not None:
        windows = _explicit(steps)
        explicit = True
    else:
        explicit = False
        if open_loop:
            if starts.size == 0:
                raise ModelError(f"{owner}: no iteration_duration points to find the steps by; "
                                 "pass steps=")
            windows = _rate_steps(starts, weights)
        else:
            if vus_v.size == 0:
                raise ModelError(f"{owner}: no vus points to find the steps by; pass steps=")
            windows = _vus_steps(vus_t, vus_v)

    rows = []
    for i, (a, b) in enumerate(windows):
        a = a + settle_s
        span = b - a
        if span <= 0 or (not explicit and span < 1.0):
            if explicit:
                raise fail("read_k6_stream", f"steps[{i}]", f"must be longer than settle_s "
                           f"({settle_s:g} s)", tuple(windows[i]))
            continue
        lo, hi = np.searchsorted(t_req, [a, b])
        d = ms[lo:hi] * MS
        if d.size == 0:
            if explicit:
                raise fail("read_k6_stream", f"steps[{i}]", "must hold some http_req_duration "
                           "points", tuple(windows[i]))
            continue
        if ok is not None:
            n_failed = float(np.count_nonzero(~ok[lo:hi]))
        elif failed is not None:
            ft, fv, _ = failed
            n_failed = float(fv[(ft >= a) & (ft < b)].sum())
        else:
            n_failed = math.nan
        error_rate = n_failed / d.size
        successes = d.size if math.isnan(n_failed) else d.size - n_failed
        mean_s = float(d.mean())
        p50, p95, p99 = np.percentile(d, [50, 95, 99])
        arrival = math.nan
        if open_loop:
            in_window = (starts >= a) & (starts < b)
            arrival = float(weights[in_window].sum()) / span
            users = d.size / span * mean_s
        else:
            in_vus = (vus_t >= a) & (vus_t <= b)
            if in_vus.any():
                users = float(vus_v[in_vus].mean())
            else:  # a window shorter than k6's 1 s sampling: the level last sampled
                before = np.flatnonzero(vus_t < a)
                users = float(vus_v[before[-1]]) if before.size else math.nan
        rows.append({"source": path.name, "step": len(rows), "concurrency": users,
                     "arrival_rate_per_s": arrival, "duration_s": span,
                     "requests": float(d.size), "throughput_per_s": successes / span,
                     "mean_s": mean_s, "p50_s": float(p50), "p95_s": float(p95),
                     "p99_s": float(p99), "error_rate": error_rate})
    if not rows:
        raise ModelError(f"{owner}: no load step lasts longer than settle_s ({settle_s:g} s) "
                         "+ 1 s; pass a smaller settle_s or explicit steps=")
    return pd.DataFrame(rows, columns=LOADTEST_COLUMNS)


def _points(path: Path, owner: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The Point samples of the metrics the reader needs: name -> (time s, value, ok), ok the
    expected_response tag of http_req_duration (None when some point has no such tag)."""
    times: dict[str, list[str]] = {}
    values: dict[str, list[float]] = {}
    oks: list[object] = []
    try:
        text = _open_text(path)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ModelError(f"{owner}: cannot read the stream ({exc})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        found = _METRIC.search(line)  # look before parsing: most lines are not needed
        if found is None:
            if line.strip():
                raise ModelError(f"{owner} line {n}: not one of k6's points, got {line[:80]!r}")
            continue
        name = found.group(1)
        if name not in _WANTED or _POINT.search(line) is None:
            continue
        try:
            obj = json.loads(line)
            data = obj["data"]
            stamp, value, tags = data["time"], data["value"], data.get("tags") or {}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelError(f"{owner} line {n}: not a k6 Point ({exc!r}), got "
                             f"{line[:80]!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and isinstance(stamp, str)):
            raise ModelError(f"{owner} line {n}: {name} needs a finite value and a time, got "
                             f"value={value!r}, time={stamp!r}")
        times.setdefault(name, []).append(stamp)
        values.setdefault(name, []).append(float(value))
        if name == "http_req_duration":
            oks.append(tags.get("expected_response") if isinstance(tags, dict) else None)
    out = {}
    for name, stamps in times.items():
        try:
            t = pd.to_datetime(pd.Series(stamps), format="ISO8601", utc=True)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{owner}: {name} has a time k6 would not write ({exc})") from None
        seconds = t.astype("int64").to_numpy() / 1e9
        ok = None
        if name == "http_req_duration" and all(o in ("true", "false") for o in oks):
            ok = np.array([o == "true" for o in oks])
        out[name] = (seconds, np.asarray(values[name]), ok)
    return out


def _series(pts: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in pts:
        return np.empty(0), np.empty(0)
    t, v, _ = pts[name]
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def _starts(pts: dict) -> tuple[np.ndarray, np.ndarray]:
    """When iterations started (an iteration_duration point is dated at its end) and dropped
    iterations were due, with their counts; sorted by time."""
    t, w = [np.empty(0)], [np.empty(0)]
    if "iteration_duration" in pts:
        end, ms, _ = pts["iteration_duration"]
        t.append(end - ms * MS)
        w.append(np.ones(end.size))
    if "dropped_iterations" in pts:
        dt, dv, _ = pts["dropped_iterations"]
        t.append(dt)
        w.append(dv)
    times, weights = np.concatenate(t), np.concatenate(w)
    order = np.argsort(times, kind="stable")
    return times[order], weights[order]


def _vus_steps(t: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
    """Runs of equal vus samples (k6 samples the gauge once a second), as (first, last) sample
    times, leaving out 0 VUs."""
    cuts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    ends = np.r_[cuts[1:], v.size] - 1
    return [(float(t[a]), float(t[b])) for a, b in zip(cuts, ends, strict=True) if v[a] > 0]


def _rate_steps(starts: np.ndarray, weights: np.ndarray) -> list[tuple[float, float]]:
    """Runs of 1 s bins whose started-iteration counts stay near the run's median; a change
    counts when it lasts two bins (one slow second is not a new step)."""
    first = math.floor(starts[0])
    edges = np.arange(first, math.floor(starts[-1]) + 2.0)
    counts, _ = np.histogram(starts, bins=edges, weights=weights)
    bounds = [0]
    for i in range(1, counts.size):
        level = float(np.median(counts[bounds[-1]:i]))
        tol = max(2.0, 0.1 * level)
        nxt = counts[i + 1] if i + 1 < counts.size else counts[i]
        if abs(counts[i] - level) > tol and abs(nxt - level) > tol:
            bounds.append(i)
    bounds.append(counts.size)
    return [(float(edges[a]), float(edges[b])) for a, b in zip(bounds[:-1], bounds[1:],
                                                                strict=True)]


def _explicit(steps) -> list[tuple[float, float]]:
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
        raise fail("read_k6_stream", "steps", "must be a non-empty list of (start_s, end_s)",
                   steps)
    out = []
    for i, w in enumerate(steps):
        if not isinstance(w, Sequence) or len(w) != 2:
            raise fail("read_k6_stream", f"steps[{i}]", "must be a (start_s, end_s) pair", w)
        a = check_number("read_k6_stream", f"steps[{i}][0]", w[0], strict=False)
        b = check_number("read_k6_stream", f"steps[{i}][1]", w[1], strict=False)
        if b <= a:
            raise fail("read_k6_stream", f"steps[{i}]", "must end after it starts", tuple(w))
        out.append((a, b))
    return out

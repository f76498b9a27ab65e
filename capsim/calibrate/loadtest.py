"""Readers for real load-test outputs, into one tidy table of load steps.

The tools' own formats are read in :mod:`capsim.calibrate.k6` and :mod:`capsim.calibrate.locust`;
this module holds the table they all answer with (:data:`LOADTEST_COLUMNS`),
:func:`read_load_test`, which sends each file to its reader, and the sniffing that tells the
formats apart by content (a ``.json`` may be a k6 summary, a new-style summary or an NDJSON point
stream; a refused file is told what it looks like). ``throughput_per_s`` counts *successful*
responses (failed requests are in ``error_rate``, as in capsim's own latency table); latencies
are in seconds.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from capsim.errors import fail

__all__ = ["LOADTEST_COLUMNS", "read_load_test"]

LOADTEST_COLUMNS = [
    "source",  # file name the row was read from
    "step",  # 0, 1, ... within the source (k6 summaries: the file's position in the list)
    "concurrency",  # virtual users (k6 VUs, Locust users); open-loop steps: mean requests in
    # flight (Little's law), see the readers
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

# what _sniff() recognises, and who reads it
K6_SUMMARY = "k6's end-of-test summary JSON (--summary-export or handleSummary())"
K6_MACHINE_SUMMARY = ("k6's machine-readable summary (k6 >= 1.5, "
                      "--new-machine-readable-summary)")
K6_STREAM = "k6's --out json point stream (NDJSON); use read_k6_stream"
LOCUST_HISTORY = "Locust's --csv stats history (prefix_stats_history.csv)"

_HEAD_BYTES = 1 << 16
_PROMETHEUS = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*(\{[^}]*\})?\s+[-+]?(\d|\.\d|Inf|NaN)")


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


def _open_text(path: Path, limit: int | None = None) -> str:
    """The file's text, gunzipped if it is gzip (k6 writes ``--out json=points.json.gz``);
    ``limit``: at most that many bytes of it. Bytes that are not UTF-8 raise UnicodeDecodeError."""
    with path.open("rb") as raw:
        magic = raw.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read() if limit is None else f.read(limit)
    text = data.decode("utf-8", errors="strict" if limit is None else "ignore")
    return text.removeprefix("\ufeff")


def _sniff(path: Path) -> tuple[str | None, str]:
    """(format, what the file looks like): format is one of K6_SUMMARY, K6_MACHINE_SUMMARY,
    K6_STREAM, LOCUST_HISTORY, or None, and then the text says what the file seems to be."""
    try:
        head = _open_text(path, _HEAD_BYTES)
    except (OSError, EOFError) as exc:
        return None, f"an unreadable or truncated file ({exc})"
    if "\x00" in head:
        return None, "a binary file, not text"
    lines = [ln.strip() for ln in head.splitlines() if ln.strip()]
    if not lines:
        return None, "an empty file"
    first = lines[0]
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except json.JSONDecodeError:
            obj = None  # a pretty-printed document: read it whole, below
        if isinstance(obj, dict) and len(lines) > 1:  # one object per line: NDJSON
            if obj.get("type") in ("Metric", "Point") and "metric" in obj:
                return K6_STREAM, K6_STREAM
            return None, ("JSON lines, but not k6's point stream (the first line has keys "
                          f"{sorted(obj)[:8]})")
        try:
            obj = json.loads(_open_text(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, f"not valid JSON ({exc})"
        return _json_kind(obj)
    if first.startswith("["):
        return None, "a JSON array, not a k6 summary (k6 writes one JSON object)"
    if first.startswith(("# HELP ", "# TYPE ")) or _PROMETHEUS.match(first):
        return None, ("Prometheus' text exposition format (a /metrics scrape), not a load-test "
                      "result")
    if "," in first:
        header = next(csv.reader([first]))
        cols = {c.strip() for c in header}
        if {"Timestamp", "User Count", "Name"} <= cols:
            return LOCUST_HISTORY, LOCUST_HISTORY
        if {"Name", "Request Count", "Failure Count"} <= cols:
            return None, ("Locust's --csv totals (prefix_stats.csv), which has no time axis; "
                          "pass prefix_stats_history.csv")
        if {"Method", "Name", "Error", "Occurrences"} <= cols:
            return None, "Locust's --csv failures (prefix_failures.csv)"
        widths = {len(row) for row in csv.reader(lines[:5])}
        if len(lines) > 1 and len(widths) == 1:  # a table, not prose with a comma in it
            return None, f"a CSV file with columns {header[:8]}"
    return None, f"text in none of k6's or Locust's formats (first line {first[:60]!r})"


def _json_kind(obj) -> tuple[str | None, str]:
    if not isinstance(obj, dict):
        return None, f"JSON, but a {type(obj).__name__}, not k6's summary object"
    if isinstance(obj.get("metrics"), dict):
        return K6_SUMMARY, K6_SUMMARY
    results = obj.get("results")
    if isinstance(results, dict) and isinstance(results.get("metrics"), list):
        return K6_MACHINE_SUMMARY, K6_MACHINE_SUMMARY
    if obj.get("type") in ("Metric", "Point") and "metric" in obj:
        return K6_STREAM, K6_STREAM  # a stream of one line
    return None, f"a JSON object that is not a k6 summary (top-level keys {sorted(obj)[:8]})"


def read_load_test(paths: str | Path | Sequence[str | Path], **options) -> pd.DataFrame:
    """Read k6 and Locust outputs into one table, each file sent to its reader by its content.

    k6 summaries (``--summary-export``, handleSummary() and k6 >= 1.5's machine-readable
    summary) go to :func:`read_k6_summary` together (one step each; ``concurrency`` and
    ``open_loop`` are passed on); each k6 ``--out json`` stream (``.json``, ``.ndjson``,
    ``.gz``) to :func:`read_k6_stream` (``settle_s``, ``steps``, ``open_loop``); each Locust
    stats history, and any other ``.csv``, to :func:`read_locust_history` (``settle_s``,
    ``name``). Rows are sorted by concurrency. A file that is none of these is refused, saying
    what it looks like.
    """
    files = _paths(paths, "read_load_test")
    known = {"settle_s", "name", "steps", "concurrency", "open_loop"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise fail("read_load_test", "options", f"must be among {sorted(known)}", unknown)
    summaries, streams, locust, other = [], [], [], []
    for p in files:
        kind, looks = _sniff(p)
        if kind in (K6_SUMMARY, K6_MACHINE_SUMMARY):
            summaries.append(p)
        elif kind == K6_STREAM:
            streams.append(p)
        elif kind == LOCUST_HISTORY or p.suffix.lower() == ".csv":
            locust.append(p)
        else:
            other.append(f"{p.name}: {looks}")
    if other:
        raise fail("read_load_test", "paths", "must be .json (k6) or .csv (Locust) files, told "
                   "apart by content: a k6 summary, a k6 --out json stream (.json, .ndjson, "
                   ".gz) or a Locust stats history", other)
    from capsim.calibrate.k6 import read_k6_stream, read_k6_summary
    from capsim.calibrate.locust import read_locust_history

    def pick(*keys: str) -> dict:
        return {k: options[k] for k in keys if k in options}

    parts = [read_k6_summary(summaries, **pick("concurrency", "open_loop"))] if summaries else []
    parts += [read_k6_stream(p, **pick("settle_s", "steps", "open_loop")) for p in streams]
    parts += [read_locust_history(p, **pick("settle_s", "name")) for p in locust]
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values("concurrency", kind="stable").reset_index(drop=True)

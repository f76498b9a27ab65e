"""What one run looked like over time: stations and flows per time window, and recoveries.

A run samples every station's cumulative counters (``RunResult.samples`` at
``RunResult.sample_times_s``); differences between samples give per-window figures. These
tables are for transients the steady-state tables average away: an outage and the backlog it
leaves, a cold cache's miss storm, a queue that never drains.

* ``station_timeseries`` - per window and station (or component): number present,
  utilization, arrivals, completions and drops per second;
* ``latency_timeseries`` - per window of arrival time and flow: requests, errors, p50 / p99;
* ``user_requests`` and ``latency_of_arrivals`` - the requests users waited for, and the
  latency of those that arrived in a span of time (during a campaign, an outage);
* ``recovery`` - when a series that left its normal level comes back to it after an event.

``RunResult.timeseries`` is the dashboard view (per station, flows by finish time); these
tables add what an incident review asks: the backlog at an instant, a component's stations
added up (a topic's consumers), and requests grouped by when they *arrived*, so a request that
waited out an outage counts in the window it arrived in, not the one it finished in. The
dashboard view has no instantaneous backlog nor arrivals, so the station tables read the
run's cumulative counters (``RunResult.counter``) themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from capsim.schema import ALL_FLOWS

if TYPE_CHECKING:
    from capsim.engine import RunResult

__all__ = ["Recovery", "latency_of_arrivals", "latency_timeseries", "recovery",
           "station_timeseries", "user_requests"]

STATION_COLUMNS = ["time_s", "station", "present", "mean_present", "utilization",
                   "arrivals_per_s", "throughput_per_s", "drops_per_s"]


def station_timeseries(run: RunResult, stations: Sequence[str] | None = None, *,
                       by_component: bool = False) -> pd.DataFrame:
    """Per sampling window and station: what was there and what went through.

    ``time_s`` is the end of the window; ``present`` the number of requests at the station at
    that instant (waiting + in service), ``mean_present`` its time average over the window;
    ``utilization`` busy servers / the station's configured servers; arrivals, completions
    (``throughput_per_s``) and drops per second. ``stations`` picks stations or components
    by name (all when None). With ``by_component`` the stations of each component are added
    up (utilization over their servers together), e.g. a message queue's consumers.
    """
    names = list(run.station_names)
    comps = list(run.station_components) or names  # a result without them: each its own
    index = {n: k for k, n in enumerate(names)}
    if stations is None:
        keep = list(range(len(names)))
    else:
        unknown = [s for s in stations if s not in index and s not in comps]
        if unknown:
            raise KeyError(f"station_timeseries: no station or component {unknown}; "
                           f"stations: {', '.join(names)}")
        keep = [k for k, n in enumerate(names) if n in stations or comps[k] in stations]
    counters = {c: run.counter(c)[:, keep] for c in
                ("present", "area_in_system", "area_busy", "arrivals", "completions", "drops")}
    servers = np.asarray([run.station_servers[k] for k in keep], dtype=float)
    labels = [names[k] for k in keep]
    if by_component:
        groups = list(dict.fromkeys(comps[k] for k in keep))
        member = np.array([[comps[k] == g for k in keep] for g in groups], dtype=float)
        counters = {c: v @ member.T for c, v in counters.items()}
        servers = member @ servers
        labels = groups
    dt = np.diff(run.sample_times_s)[:, None]

    def per_s(name: str) -> np.ndarray:
        return (np.diff(counters[name], axis=0) / dt).ravel()

    n_t, n_s = dt.size, len(labels)
    return pd.DataFrame({
        "time_s": np.repeat(run.sample_times_s[1:], n_s),
        "station": np.tile(labels, n_t),
        "present": counters["present"][1:].ravel(),
        "mean_present": per_s("area_in_system"),
        "utilization": (np.diff(counters["area_busy"], axis=0) / (dt * servers)).ravel(),
        "arrivals_per_s": per_s("arrivals"),
        "throughput_per_s": per_s("completions"),
        "drops_per_s": per_s("drops"),
    }, columns=STATION_COLUMNS)


def latency_timeseries(run: RunResult, window_s: float,
                       flows: Sequence[str] | None = None) -> pd.DataFrame:
    """Per window of *arrival* time and flow: requests that arrived, how many finished and
    how many failed (dropped), and the p50 / p99 latency of those that finished. The flow
    ``"all"`` pools every flow users wait for (not message queues' consumers).

    Windows are ``[t, t + window_s)`` from time 0 over the whole run (warm-up included).
    A request still in flight when the run ends is neither finished nor failed, so the last
    windows of a run that ends congested under-count; ``in_flight`` says how many.
    """
    if not window_s > 0:
        raise ValueError(f"latency_timeseries: window_s must be > 0, got {window_s!r}")
    flow_of = np.asarray(run.route_flow, dtype=int)
    done_flow, drop_flow = flow_of[run.route], flow_of[run.drop_route]
    latency = run.finish_s - run.arrival_s
    edges = np.arange(0.0, run.duration_s + window_s, window_s)
    n = edges.size - 1
    done_bin = np.minimum((run.arrival_s // window_s).astype(int), n - 1)
    drop_bin = np.minimum((run.drop_arrival_s // window_s).astype(int), n - 1)
    wanted = list(run.flows) if flows is None else list(flows)
    users = len(run.flows) - run.async_flows  # the flows users wait for come first
    rows = []
    for name in wanted:
        if name == ALL_FLOWS and name not in run.flows:  # every flow users wait for
            sel, dropped = done_flow < users, drop_flow < users
        elif name in run.flows:
            i = run.flows.index(name)
            sel, dropped = done_flow == i, drop_flow == i
        else:
            raise KeyError(f"latency_timeseries: no flow {name!r}; flows: {list(run.flows)} "
                           f"or {ALL_FLOWS!r}")
        bins, lat = done_bin[sel], latency[sel]
        finished = np.bincount(bins, minlength=n)
        failed = np.bincount(drop_bin[dropped], minlength=n)
        order = np.argsort(bins, kind="stable")
        split = np.split(lat[order], np.cumsum(finished)[:-1])
        for b in range(n):
            x = split[b]
            p50, p99 = np.percentile(x, (50, 99)) if x.size else (np.nan, np.nan)
            total = finished[b] + failed[b]
            rows.append({"time_s": edges[b], "flow": name, "finished": int(finished[b]),
                         "errors": int(failed[b]),
                         "error_rate": failed[b] / total if total else np.nan,
                         "p50_s": p50, "p99_s": p99})
    out = pd.DataFrame(rows, columns=["time_s", "flow", "finished", "errors", "error_rate",
                                      "p50_s", "p99_s"])
    return out


def user_requests(run: RunResult) -> pd.DataFrame:
    """``RunResult.requests()`` without the message queues' async flows: one row per request a
    user waited for (flow, arrival_s, latency_s)."""
    req = run.requests()
    queues = list(run.flows[len(run.flows) - run.async_flows:]) if run.async_flows else []
    return req[~req["flow"].isin(queues)]


def latency_of_arrivals(run: RunResult, start_s: float, end_s: float) -> pd.Series:
    """Latency of the requests users waited for that *arrived* in ``[start_s, end_s)`` (a
    campaign, an outage), all flows pooled: count, mean_s, p50_s, p95_s, p99_s.

    Only finished requests have a latency: one still in flight when the run ended is missing,
    so give the run time to drain after ``end_s``.
    """
    if not end_s > start_s:
        raise ValueError(f"latency_of_arrivals: need start_s < end_s, got {start_s!r}, "
                         f"{end_s!r}")
    req = user_requests(run)
    x = req.loc[(req["arrival_s"] >= start_s) & (req["arrival_s"] < end_s),
                "latency_s"].to_numpy()
    p50, p95, p99 = np.percentile(x, (50, 95, 99)) if x.size else (np.nan,) * 3
    return pd.Series({"count": float(x.size), "mean_s": x.mean() if x.size else np.nan,
                      "p50_s": p50, "p95_s": p95, "p99_s": p99})


@dataclass(frozen=True)
class Recovery:
    """How a series behaved after an event at ``after_s``: its peak, and when it was back."""

    peak: float
    peak_s: float
    back_s: float  # first time after the peak at or below ``level`` (inf: never in the data)
    level: float

    @property
    def recovered(self) -> bool:
        return bool(np.isfinite(self.back_s))


def recovery(times, values, *, after_s: float, level: float) -> Recovery:
    """Peak of ``values`` at or after ``after_s``, and the first time after that peak when the
    series is back at or below ``level`` (a backlog drained, a latency back to normal)."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError("recovery: times and values must be 1-d and of the same length")
    sel = np.flatnonzero((t >= after_s) & np.isfinite(v))
    if sel.size == 0:
        raise ValueError(f"recovery: no finite values at or after {after_s!r}")
    peak_i = sel[np.argmax(v[sel])]
    later = sel[(sel >= peak_i) & (v[sel] <= level)]
    back = float(t[later[0]]) if later.size else np.inf
    return Recovery(peak=float(v[peak_i]), peak_s=float(t[peak_i]), back_s=back, level=level)

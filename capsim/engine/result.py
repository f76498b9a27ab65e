"""RunResult: what one simulation run measured, as plain data (picklable, no SimPy)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from capsim.engine import stability
from capsim.errors import RunLengthWarning, fail
from capsim.schema import ALL_FLOWS, COMPONENT_COLUMNS, COUNTERS, LATENCY_COLUMNS
from capsim.units import format_duration

if TYPE_CHECKING:  # imported where a table is made: a run that only simulates never needs it
    import pandas as pd

QUANTILES = (50, 95, 99)


@dataclass(frozen=True)
class StationStats:
    """Counters and time-integrals of one station over the measured window."""

    name: str
    servers: int
    offered_load: float  # from the model (NaN for closed workloads)
    window_s: float
    area_in_system: float
    area_busy: float
    wait_sum_s: float
    sojourn_sum_s: float
    arrivals: int
    started: int
    completions: int
    drops: int
    present_at_end: int
    finite_queue: bool = False
    instability: str = ""  # why it has no steady state ("" when it has one)
    relaxation_s: float = 0.0  # how slowly it forgets its past (see engine.stability)

    @property
    def saturated(self) -> bool:
        """Offered at least as much work as it can do, by the model or by what the run saw
        (a finite queue then sheds the rest)."""
        return self.offered_load >= 1.0 or bool(self.instability)

    @property
    def stable(self) -> bool:
        """Has a steady state: not saturated, or saturated but shedding load (finite queue)."""
        return self.finite_queue or not self.saturated


@dataclass(frozen=True)
class RunResult:
    """One run of ``(system, workload, seed)``.

    ``latency()`` and ``components()`` are tidy DataFrames. When a component is offered more
    work than it can do, the run has no steady state: ``stable`` is False and steady-state
    figures are ``inf`` (pass ``observed=True`` to see what this finite run happened to show).
    """

    system: str
    workload: str
    seed: str
    duration_s: float
    warmup_s: float
    flows: tuple[str, ...]
    route_flow: tuple[int, ...]  # flow index of each route
    route_components: tuple[tuple[str, ...], ...]
    arrival_s: np.ndarray  # of finished requests
    finish_s: np.ndarray
    route: np.ndarray
    drop_arrival_s: np.ndarray
    drop_route: np.ndarray
    station_names: tuple[str, ...]
    station_servers: tuple[int, ...]
    offered_loads: tuple[float, ...]  # from the model (NaN for closed workloads)
    # sheds load (a finite queue, retention) or is bounded (a closed loop): never unstable
    finite_queues: tuple[bool, ...]
    sample_times_s: np.ndarray  # (K,) from 0 to duration_s, warm-up boundary included
    samples: np.ndarray  # (K, stations, len(COUNTERS)) cumulative counters at those times
    station_components: tuple[str, ...] = ()  # the component each station belongs to
    station_work_s: tuple[float, ...] = ()  # model: mean busy time per visit (NaN: unknown)
    station_scv: tuple[float, ...] = ()  # squared cv of each station's service time
    flow_arrivals: tuple[int, ...] = ()  # requests each (request) flow started in the run
    # several populations (a MixedWorkload, or one running some flows): route r is one
    # population's flow; () when each route is simply one flow
    populations: tuple[str, ...] = ()
    route_population: tuple[int, ...] = ()  # population index of each route (-1: a message)
    route_arrivals: tuple[int, ...] = ()  # requests each request route started in the run
    async_flows: int = 0  # the last flows are message queues' consumers (not requests)
    cache_names: tuple[str, ...] = ()
    database_names: tuple[str, ...] = ()
    call_names: tuple[str, ...] = ()
    autoscaling: tuple[tuple[str, float, int, int], ...] = ()
    failovers: tuple[tuple, ...] = ()  # one per primary failure, engine.failover's columns
    # (K, caches + databases + 2 x calls, 4) cumulative: caches hits, misses, stale hits,
    # stale age sum; databases reads after a write, stale reads, writes refused by a
    # failover, writes lost with a failed primary; calls with a timeout or retries:
    # calls, attempts, timeouts, failures; then the same calls again: fast fails (breaker),
    # retries denied (budget), retries sent, seconds of backoff
    probe_samples: np.ndarray | None = None
    breakers: tuple[tuple, ...] = ()  # every breaker change, engine.resilience's columns
    # rate limits, queue deadlines and lossy hops (engine.shedding): per point (name, scope,
    # kind, status, rate_per_s, burst), and their (K, points, 2) cumulative counters at the
    # sample times: passed (admitted, started, delivered), shed (rejected, expired, lost)
    shedding_points: tuple[tuple, ...] = ()
    shed_samples: np.ndarray | None = None
    events: int = 0
    wall_s: float = 0.0
    trace_log: tuple = field(default=(), repr=False)
    # connection pools and bulkheads (engine.pools): per limiter (kind, name, target, caller,
    # size, patience, service), their (K, limiters, 8) counters at the sample times (in the
    # order of engine.pools.LIMIT_COUNTERS), and per limiter its (time served, wait) > 0
    limiters: tuple[tuple, ...] = ()
    limiter_samples: np.ndarray | None = field(default=None, repr=False)
    limiter_waits: tuple = field(default=(), repr=False)

    # -- counters ---------------------------------------------------------------------------
    def counter(self, name: str) -> np.ndarray:
        """The cumulative counter ``name`` (one of ``capsim.schema.COUNTERS``) of every station
        at every sample time: a (samples, stations) array, rows ``sample_times_s``, columns
        ``station_names``. Differences between rows give the counter over a window."""
        if name not in COUNTERS:
            raise fail("RunResult.counter", "name",
                       f"must be one of the counters {', '.join(COUNTERS)}", name)
        return self.samples[:, :, COUNTERS.index(name)]

    # -- windows ----------------------------------------------------------------------------
    @property
    def window_s(self) -> float:
        return self.duration_s - self.warmup_s

    def with_warmup(self, warmup_s: float) -> RunResult:
        """The same run measured from the first sample time at or after ``warmup_s``.

        Used by warm-up detection (MSER), which picks the truncation after the run.
        """
        times = self.sample_times_s
        i = min(int(np.searchsorted(times, warmup_s - 1e-12)), times.size - 2)
        return replace(self, warmup_s=float(times[i]))

    def _window(self, t0: float, t1: float) -> tuple[StationStats, ...]:
        times = self.sample_times_s
        i0 = int(np.searchsorted(times, t0 - 1e-9))
        i1 = int(np.searchsorted(times, t1 - 1e-9))
        im = min(int(np.searchsorted(times, 0.5 * (times[i0] + times[i1]) - 1e-9)), i1 - 1)
        span = float(times[i1] - times[i0])
        late_span = float(times[i1] - times[im])
        delta = {c: self.counter(c)[i1] - self.counter(c)[i0] for c in COUNTERS}
        busy = self.counter("area_busy")
        late_busy = busy[i1] - busy[im]
        present = (np.diff(self.counter("area_in_system")[i0:i1 + 1], axis=0)
                   / np.diff(times[i0:i1 + 1])[:, None])
        present_at_end = self.counter("present")[i1]
        ends = times[i0 + 1:i1 + 1]
        out = []
        for k, name in enumerate(self.station_names):
            d = {c: v[k] for c, v in delta.items()}
            servers = self.station_servers[k]
            work = self.station_work_s[k] if self.station_work_s else math.nan
            scv = self.station_scv[k] if self.station_scv else 1.0
            measured = d["area_busy"] / d["completions"] if d["completions"] else math.nan
            # busy time per visit: the run's where the model misses work (held workers)
            per_visit = max((x for x in (work, measured) if math.isfinite(x)),
                            default=math.nan)
            reason = ""
            if self.finite_queues[k] or not math.isfinite(servers):
                pass
            elif self.offered_loads[k] >= 1.0:
                reason = f"offered load {self.offered_loads[k]:.2f} >= 1 (model)"
            elif (rho := stability.measured_overload(d["arrivals"], per_visit, servers, span,
                                                     scv)) is not None:
                reason = f"arrivals need {rho:.2f}x its capacity (measured)"
            elif span < stability.JUDGE_RELAXATIONS * stability.relaxation_time_s(
                    self.offered_loads[k], servers, work, scv):
                pass  # too short to tell a slow excursion from divergence
            elif (rate := stability.growth(ends, present[:, k],
                                           late_busy[k] / (servers * late_span),
                                           d["arrivals"], d["completions"], scv)) is not None:
                reason = f"diverging: never idle, present grows {rate:.3g}/s"
            utilization = d["area_busy"] / (servers * span) if math.isfinite(servers) else 0.0
            if self.finite_queues[k]:
                relax = stability.autocorrelation_time_s(present[:, k], span / len(present))
            else:
                model = self.offered_loads[k]
                # the model's load is exact where it holds (no noise from this run's
                # utilization, to which the formula is steep near 1); the run's where the
                # model misses work (held workers, retries)
                rho = model if 0 < model < 1 and abs(utilization - model) <= 0.1 * model \
                    else utilization
                relax = stability.relaxation_time_s(rho, servers, per_visit, scv)
            out.append(StationStats(
                name=name, servers=servers, offered_load=self.offered_loads[k],
                window_s=span, area_in_system=d["area_in_system"], area_busy=d["area_busy"],
                wait_sum_s=d["wait_sum_s"], sojourn_sum_s=d["sojourn_sum_s"],
                arrivals=int(d["arrivals"]), started=int(d["started"]),
                completions=int(d["completions"]), drops=int(d["drops"]),
                present_at_end=int(present_at_end[k]),
                finite_queue=self.finite_queues[k], instability=reason,
                relaxation_s=relax,
            ))
        return tuple(out)

    @cached_property
    def stations(self) -> tuple[StationStats, ...]:
        """Per-station statistics over the measured window ``[warmup_s, duration_s]``."""
        return self._window(self.warmup_s, self.duration_s)

    # -- status -----------------------------------------------------------------------------
    @property
    def unstable_components(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stations if not s.stable)

    @property
    def stable(self) -> bool:
        return not self.unstable_components

    def _owner(self) -> dict[str, str]:
        """Station name -> the component it belongs to (routes name components)."""
        return dict(zip(self.station_names, self.station_components, strict=False))

    def _flow_stable(self) -> np.ndarray:
        owner = self._owner()
        bad = {owner.get(s, s) for s in self.unstable_components}
        ok = np.ones(len(self.flows), dtype=bool)
        for r, comps in enumerate(self.route_components):
            if bad.intersection(comps):
                ok[self.route_flow[r]] = False
        return ok

    def relaxation_s(self) -> np.ndarray:
        """Per flow: the relaxation time of the slowest station it visits (seconds)."""
        owner = self._owner()
        slowest: dict[str, float] = {}
        for st in self.stations:
            comp = owner.get(st.name, st.name)
            slowest[comp] = max(slowest.get(comp, 0.0), st.relaxation_s)
        out = np.zeros(len(self.flows))
        for r, comps in enumerate(self.route_components):
            f = self.route_flow[r]
            out[f] = max([out[f]] + [slowest.get(c, 0.0) for c in comps])
        return out

    def _censored(self) -> np.ndarray:
        """Per flow: requests still in flight when the run ended (no latency recorded).

        Request flows: started minus finished minus failed, over the whole run; message
        queues: the messages still waiting or in service at the end."""
        n = len(self.flows)
        out = np.zeros(n, dtype=np.int64)
        n_sync = n - self.async_flows
        if self.flow_arrivals:
            done = np.bincount(np.asarray(self.route_flow)[self.route], minlength=n)
            failed = np.bincount(np.asarray(self.route_flow)[self.drop_route], minlength=n)
            out[:n_sync] = np.asarray(self.flow_arrivals[:n_sync]) - done[:n_sync] \
                - failed[:n_sync]
        present = self.counter("present")[-1]
        for r, f in enumerate(self.route_flow):
            if f >= n_sync:
                queues = set(self.route_components[r])
                out[f] = int(sum(p for p, c in zip(present, self.station_components,
                                                   strict=False) if c in queues))
        return out

    def _population_censored(self) -> np.ndarray:
        """Per population: its requests still in flight when the run ended."""
        n = len(self.populations)
        routes = len(self.route_arrivals)
        done = np.bincount(self.route[self.route < routes], minlength=routes)
        failed = np.bincount(self.drop_route[self.drop_route < routes], minlength=routes)
        left = np.asarray(self.route_arrivals) - done[:routes] - failed[:routes]
        return np.bincount(np.asarray(self.route_population[:routes]), weights=left,
                           minlength=n).astype(np.int64)

    # -- tables -----------------------------------------------------------------------------
    def requests(self) -> pd.DataFrame:
        """One row per request finished in the window: flow, arrival_s, latency_s."""
        import pandas as pd

        keep = self.arrival_s >= self.warmup_s
        flow_of = np.asarray(self.route_flow)[self.route[keep]]
        return pd.DataFrame(
            {
                "flow": pd.Categorical.from_codes(flow_of, categories=list(self.flows)),
                "arrival_s": self.arrival_s[keep],
                "latency_s": (self.finish_s - self.arrival_s)[keep],
            }
        )

    def latency(self, observed: bool = False, by: str = "flow") -> pd.DataFrame:
        """Per flow: count, throughput, mean / p50 / p95 / p99 latency (s), errors, requests
        still in flight at the end (``censored``), stability, and whether the run is long
        enough for these estimates (``adequate``; a :class:`capsim.RunLengthWarning` when
        not). ``by="population"`` gives one row per population of a mixed workload instead
        (the ``flow`` column names the population)."""
        import pandas as pd

        keep = self.arrival_s >= self.warmup_s
        lat = (self.finish_s - self.arrival_s)[keep]
        flow_of = np.asarray(self.route_flow, dtype=int)
        flows = flow_of[self.route[keep]]
        dropped = flow_of[self.drop_route[self.drop_arrival_s >= self.warmup_s]]
        stable = self._flow_stable()
        relax = self.relaxation_s()
        adequate = relax * stability.ADEQUATE_RELAXATIONS <= self.window_s
        n_sync = len(self.flows) - self.async_flows
        if by == "population":
            if not self.populations:
                raise fail("RunResult.latency", "by", "needs several populations (a "
                           "MixedWorkload, or a workload running some of the flows)", by)
            pop_of = np.asarray(self.route_population, dtype=int)
            names = self.populations
            # a population is stable, and long enough, when every flow it runs is
            member = [sorted({self.route_flow[r] for r, p in enumerate(self.route_population)
                              if p == i}) for i in range(len(names))]
            stable = np.array([bool(stable[m].all()) for m in member])
            adequate = np.array([bool(adequate[m].all()) for m in member])
            relax = np.array([relax[m].max(initial=0.0) for m in member])
            censored = self._population_censored()
            flows = pop_of[self.route[keep]]
            dropped = pop_of[self.drop_route[self.drop_arrival_s >= self.warmup_s]]
            groups = [(name, flows == i, dropped == i, stable[i], adequate[i], censored[i])
                      for i, name in enumerate(names)]
        elif by == "flow":
            censored = self._censored()
            groups = [(name, flows == i, dropped == i, stable[i], adequate[i], censored[i])
                      for i, name in enumerate(self.flows)]
            if n_sync > 1:
                groups.append((ALL_FLOWS, flows < n_sync, dropped < n_sync,
                               bool(stable[:n_sync].all()), bool(adequate[:n_sync].all()),
                               int(censored[:n_sync].sum())))
            relax = np.append(relax, relax[:n_sync].max(initial=0.0))  # the pooled row
        else:
            raise fail("RunResult.latency", "by", "must be 'flow' or 'population'", by)
        rows, short = [], []
        for g, (name, sel, dsel, ok, long_enough, in_flight) in enumerate(groups):
            x = lat[sel]
            errors = int(np.size(dropped[dsel]))
            stats = _latency_stats(x)
            if not ok and not observed:
                stats = dict.fromkeys(stats, np.inf)
            # an inf is no tail estimate: only finite estimates need a long enough run
            long_enough = bool(long_enough or (not ok and not observed))
            if not long_enough and x.size:
                short.append((name, relax[g]))
            total = x.size + errors
            rows.append(
                {
                    "flow": name,
                    "count": int(x.size),
                    "throughput_per_s": x.size / self.window_s,
                    **stats,
                    "errors": errors,
                    "error_rate": errors / total if total else np.nan,
                    "censored": int(in_flight),
                    "stable": bool(ok),
                    "adequate": long_enough,
                }
            )
        if short:
            slowest = max(r for _, r in short)
            warnings.warn(RunLengthWarning(
                f"{self.system}: a {self.window_s:g} s window is too short for the tail "
                f"estimates of {', '.join(n for n, _ in short)}: the slowest station they "
                f"visit relaxes in ~{slowest:.3g} s and {stability.ADEQUATE_RELAXATIONS:g}x "
                f"that is needed (~{slowest * stability.ADEQUATE_RELAXATIONS:.3g} s); rows "
                "marked adequate=False"), stacklevel=2)
        return pd.DataFrame(rows, columns=LATENCY_COLUMNS)

    def components(self, observed: bool = False) -> pd.DataFrame:
        """Per component: utilization, queue length, throughput, wait, response, drops."""
        import pandas as pd

        rows = []
        for s in self.stations:
            w = s.window_s
            row = {
                "component": s.name,
                "servers": s.servers,
                "offered_load": s.offered_load,
                "utilization": s.area_busy / (s.servers * w),
                "throughput_per_s": s.completions / w,
                "mean_queue_length": (s.area_in_system - s.area_busy) / w,
                "mean_in_system": s.area_in_system / w,
                "mean_wait_s": s.wait_sum_s / s.started if s.started else np.nan,
                "mean_response_s": s.sojourn_sum_s / s.completions if s.completions else np.nan,
                "drops": s.drops,
                "stable": s.stable,
                "instability": s.instability if not s.stable else "",
            }
            if not s.stable and not observed:
                for key in ("mean_queue_length", "mean_in_system", "mean_wait_s",
                            "mean_response_s"):
                    row[key] = np.inf
            rows.append(row)
        return pd.DataFrame(rows, columns=COMPONENT_COLUMNS)

    def _probe_window(self) -> np.ndarray:
        times = self.sample_times_s
        i0 = int(np.searchsorted(times, self.warmup_s - 1e-9))
        return self.probe_samples[-1] - self.probe_samples[i0]

    def caches(self) -> pd.DataFrame:
        """Per cache or CDN over the window: reads, hits, misses, hit ratio, and the hits that
        served data changed at the origin since it was cached (stale), with their mean age."""
        import pandas as pd

        d = self._probe_window()
        rows = []
        for name, (h, m, stale, age) in zip(self.cache_names, d, strict=False):
            rows.append({"cache": name, "reads": int(h + m), "hits": int(h), "misses": int(m),
                         "hit_ratio": h / (h + m) if h + m else np.nan,
                         "stale_reads": int(stale),
                         "stale_ratio": stale / (h + m) if h + m else np.nan,
                         "mean_stale_age_s": age / stale if stale else np.nan})
        return pd.DataFrame(rows, columns=["cache", "reads", "hits", "misses", "hit_ratio",
                                           "stale_reads", "stale_ratio", "mean_stale_age_s"])

    def databases(self) -> pd.DataFrame:
        """Per database over the window: reads that followed a write in the same request, and
        those a lagging replica answered with old data; with a failover, the writes refused
        while a shard had no primary and those lost with a failed primary."""
        import pandas as pd

        start = len(self.cache_names)
        d = self._probe_window()[start:start + len(self.database_names)]  # calls come after
        rows = [{"database": name, "reads_after_write": int(n), "stale_reads": int(s),
                 "stale_probability": s / n if n else np.nan, "write_errors": int(e),
                 "lost_writes": int(lost)}
                for name, (n, s, e, lost) in zip(self.database_names, d, strict=True)]
        return pd.DataFrame(rows, columns=["database", "reads_after_write", "stale_reads",
                                           "stale_probability", "write_errors",
                                           "lost_writes"])

    def failover_log(self) -> pd.DataFrame:
        """One row per primary failure over the whole run (warm-up included): which box
        failed and when, when it was detected, which replica was promoted and when
        (``recovery_s`` after the failure), when the failed box rejoined as a replica, and
        the writes the failover refused (``write_errors``), held for the new primary
        (``writes_waited``) and lost (committed, not yet replicated)."""
        import pandas as pd

        from capsim.engine.failover import FAILOVER_COLUMNS

        out = pd.DataFrame(list(self.failovers), columns=list(FAILOVER_COLUMNS))
        out.insert(7, "recovery_s", out["promoted_at_s"] - out["failed_at_s"])
        return out

    def pools(self) -> pd.DataFrame:
        """Per connection pool over the window (one per caller instance, or the system's):
        queries that asked for a connection (``requests``), got one (``acquired``), found
        none free (``waited``; ``exhausted_share`` of the requests), the mean and p99 wait
        of those served (zeros included), the ones that gave up (``timeouts``, errors), and
        the connections in use (mean, most, utilization of ``size``) and queries waiting."""
        from capsim.engine.pools import pool_table

        return pool_table(self)

    def bulkheads(self) -> pd.DataFrame:
        """Per bulkhead (an instance's, for one dependency) over the window: the calls it
        saw, admitted and rejected (failed at once: errors of their flows), and its slots in
        use (mean and most)."""
        from capsim.engine.pools import bulkhead_table

        return bulkhead_table(self)

    def pool_timeseries(self) -> pd.DataFrame:
        """Pools and bulkheads per sampling interval (the whole run): time_s (the interval's
        end), name, metric (mean_in_use, max_in_use, mean_waiting, requests, waited,
        failed), value."""
        from capsim.engine.pools import limit_timeseries

        return limit_timeseries(self)

    def timeseries(self, window_s: float | None = None) -> pd.DataFrame:
        """What a dashboard would have shown: one row per (window end, name, metric).

        Stations: utilization, mean_in_system, mean_queue_length, throughput_per_s, drops.
        Flows (by finish time): count, throughput_per_s, p50_s, p95_s, p99_s, errors.
        Windows are whole multiples of the sampling interval (``sample_interval_s`` of the
        run); the whole run is covered, warm-up included.
        """
        import pandas as pd

        times = self.sample_times_s
        step = float(np.min(np.diff(times)))
        window = step if window_s is None else max(float(window_s), step)
        edges = np.unique(np.searchsorted(times, np.arange(0.0, self.duration_s + window / 2,
                                                           window) - 1e-9))
        edges = edges[edges < times.size]
        if edges[-1] != times.size - 1:
            edges = np.append(edges, times.size - 1)
        i0, i1 = edges[:-1], edges[1:]
        span = times[i1] - times[i0]
        ends = times[i1]

        def delta(name: str) -> np.ndarray:  # (W, stations): the counter over each window
            counter = self.counter(name)
            return counter[i1] - counter[i0]

        busy, present = delta("area_busy"), delta("area_in_system")
        servers = np.asarray(self.station_servers, dtype=float)
        frames = []
        for metric, values in {
            "utilization": busy / servers / span[:, None],
            "mean_in_system": present / span[:, None],
            "mean_queue_length": (present - busy) / span[:, None],
            "throughput_per_s": delta("completions") / span[:, None],
            "drops": delta("drops"),
        }.items():
            frames.append(pd.DataFrame({
                "time_s": np.repeat(ends, len(self.station_names)),
                "name": np.tile(self.station_names, ends.size),
                "metric": metric, "value": values.ravel()}))
        bins = np.searchsorted(times[i1], self.finish_s, side="left")
        drop_bins = np.searchsorted(times[i1], self.drop_arrival_s, side="left")
        lat = self.finish_s - self.arrival_s
        flow_of = np.asarray(self.route_flow)[self.route]
        drop_flow = np.asarray(self.route_flow)[self.drop_route] if self.drop_route.size else \
            self.drop_route
        rows = []
        for f, name in enumerate(self.flows):
            sel = flow_of == f
            per_bin = [lat[sel & (bins == w)] for w in range(ends.size)]
            errors = np.bincount(drop_bins[drop_flow == f], minlength=ends.size)[:ends.size]
            for w, x in enumerate(per_bin):
                q = np.percentile(x, QUANTILES) if x.size else (np.nan,) * 3
                rows += [(ends[w], name, "count", x.size),
                         (ends[w], name, "throughput_per_s", x.size / span[w]),
                         (ends[w], name, "p50_s", q[0]), (ends[w], name, "p95_s", q[1]),
                         (ends[w], name, "p99_s", q[2]), (ends[w], name, "errors", errors[w])]
        frames.append(pd.DataFrame(rows, columns=["time_s", "name", "metric", "value"]))
        out = pd.concat(frames, ignore_index=True)
        out["value"] = out["value"].astype(float)
        return out

    def _shed_window(self) -> np.ndarray:
        """(points, 2): passed and shed over the measured window."""
        if self.shed_samples is None:
            return np.zeros((0, 2))
        i0 = int(np.searchsorted(self.sample_times_s, self.warmup_s - 1e-9))
        return self.shed_samples[-1] - self.shed_samples[i0]

    def shedding(self) -> pd.DataFrame:
        """Every point that sheds load or loses requests, over the window: rate limits
        (``kind="rate_limit"``: rejected, status 429; ``scope`` says whether it is a
        component's or a flow's), queue deadlines (``"queue_deadline"``: dropped for
        waiting too long, 503) and lossy hops (``"loss"``: lost on the wire). ``seen`` =
        ``passed`` + ``shed``; a shed request is an error of its flow unless a retry of its
        call succeeded."""
        import pandas as pd

        from capsim.engine.shedding import SHEDDING_COLUMNS

        rows = []
        for (name, scope, kind, status, _, _), (passed, shed) in zip(
                self.shedding_points, self._shed_window(), strict=True):
            seen = passed + shed
            rows.append((name, scope, kind, status, int(seen), int(passed), int(shed),
                         shed / seen if seen else np.nan, shed / self.window_s))
        return pd.DataFrame(rows, columns=list(SHEDDING_COLUMNS))

    def rate_limits(self) -> pd.DataFrame:
        """Per token bucket (a ``RateLimit`` of a component or of a flow) over the window:
        requests offered to it, admitted, rejected (429), the admitted rate (at most
        ``rate_per_s`` in the long run) and the share rejected. (``limiters`` are the
        connection pools and bulkheads.)"""
        import pandas as pd

        from capsim.engine.shedding import LIMITER_COLUMNS

        rows = []
        for (name, scope, kind, status, rate, burst), (passed, shed) in zip(
                self.shedding_points, self._shed_window(), strict=True):
            if kind != "rate_limit":
                continue
            seen = passed + shed
            rows.append((name, scope, rate, burst, int(seen), int(passed), int(shed),
                         passed / self.window_s, shed / seen if seen else np.nan, status))
        return pd.DataFrame(rows, columns=list(LIMITER_COLUMNS))

    def instances(self) -> pd.DataFrame:
        """Autoscaled services over time: instances paid for (running, booting included) and
        instances serving, at each change."""
        import pandas as pd

        return pd.DataFrame(list(self.autoscaling),
                            columns=["component", "time_s", "instances", "serving"])

    def calls(self) -> pd.DataFrame:
        """Per call with a timeout, retries or a breaker, over the window: calls, attempts
        sent to the callee (retries included), retries, timeouts, failed calls, the
        amplification attempts / calls; calls a breaker failed fast (``fast_fails``, their
        attempt never sent) and retries a budget refused (``retries_denied``), both among the
        failures; and the seconds callers waited in backoff before retrying (``backoff_s``)."""
        import pandas as pd

        start = len(self.cache_names) + len(self.database_names)
        n = len(self.call_names)
        d = self._probe_window()[start:start + 2 * n]
        base, more = d[:n], d[n:]
        if len(more) < n:  # a run from before calls had a second probe
            more = np.column_stack([np.zeros((n, 2)), base[:, 1] - base[:, 0], np.zeros(n)])
        rows = [{"call": name, "calls": int(c), "attempts": int(a), "retries": int(r),
                 "timeouts": int(t), "failures": int(f),
                 "amplification": a / c if c else np.nan, "fast_fails": int(ff),
                 "retries_denied": int(rd), "backoff_s": float(w)}
                for name, (c, a, t, f), (ff, rd, r, w) in zip(self.call_names, base, more,
                                                               strict=True)]
        return pd.DataFrame(rows, columns=["call", "calls", "attempts", "retries", "timeouts",
                                           "failures", "amplification", "fast_fails",
                                           "retries_denied", "backoff_s"])

    def breaker_log(self) -> pd.DataFrame:
        """Every circuit-breaker change over the whole run (warm-up included), by time: the
        call (as ``calls()`` names it), when, the state it left and the one it entered
        (``closed``, ``open``, ``half_open``)."""
        import pandas as pd

        from capsim.engine.resilience import BREAKER_COLUMNS

        return pd.DataFrame(list(self.breakers), columns=list(BREAKER_COLUMNS))

    def breaker_state(self, call: str) -> pd.DataFrame:
        """The state of ``call``'s breaker as a step function over the run, for a figure:
        rows (time_s, state, level) from 0 to ``duration_s``, each state holding until the
        next row (``drawstyle="steps-post"``); level 0 closed, 1 half-open, 2 open."""
        import pandas as pd

        if call not in self.call_names:
            raise fail("RunResult.breaker_state", "call", "must be one of the calls "
                       f"({', '.join(self.call_names) or 'none'})", call)
        levels = {"closed": 0, "half_open": 1, "open": 2}
        rows = [(0.0, "closed")] + [(t, to) for c, t, _, to in self.breakers if c == call]
        rows.append((self.duration_s, rows[-1][1]))
        return pd.DataFrame({"time_s": [t for t, _ in rows], "state": [s for _, s in rows],
                             "level": [levels[s] for _, s in rows]})

    def hit_ratio_timeseries(self) -> pd.DataFrame:
        """Hit ratio per sampling interval and cache (a cold cache warming up)."""
        import pandas as pd

        d = np.diff(self.probe_samples, axis=0)
        frames = []
        for k, name in enumerate(self.cache_names):
            hits, misses = d[:, k, 0], d[:, k, 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = hits / (hits + misses)
            frames.append(pd.DataFrame({"time_s": self.sample_times_s[1:], "cache": name,
                                        "reads": hits + misses, "hit_ratio": ratio}))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def trace(self) -> pd.DataFrame:
        """The event log of a run made with ``trace=True``: time_s, request, component, event."""
        import pandas as pd

        return pd.DataFrame(list(self.trace_log),
                            columns=["time_s", "request", "component", "event"])

    # -- words ------------------------------------------------------------------------------
    def summary(self) -> str:
        head = (f"{self.system} under {self.workload}: {self.duration_s:g} s simulated "
                f"({self.warmup_s:g} s warm-up), seed {self.seed}")
        if self.stable:
            lat = self.latency().set_index("flow")
            parts = [f"{f}: p99 {format_duration(lat.loc[f, 'p99_s'])}" for f in lat.index]
            shed = [s.name for s in self.stations if s.saturated]
            note = f" Saturated, shedding load: {', '.join(shed)}." if shed else ""
            return f"{head}\nSTABLE.{note} " + "; ".join(parts)
        why = "; ".join(f"{s.name}: {s.instability}" for s in self.stations if not s.stable)
        return (f"{head}\nUNSTABLE: {why}. Queues grow without bound; there is no "
                "steady-state latency (reported as inf).")

    def __repr__(self) -> str:
        state = "stable" if self.stable else f"UNSTABLE at {', '.join(self.unstable_components)}"
        return (f"<RunResult {self.system}: {self.arrival_s.size} requests finished, "
                f"{self.duration_s:g} s simulated, {state}>")


def _latency_stats(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return dict.fromkeys(("mean_s", "p50_s", "p95_s", "p99_s"), np.nan)
    p50, p95, p99 = np.percentile(x, QUANTILES)
    return {"mean_s": float(x.mean()), "p50_s": p50, "p95_s": p95, "p99_s": p99}

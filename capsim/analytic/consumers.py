"""MessageQueue consumers: single servers fed by their partitions' share of the messages.

Each queue gets its own latency row, ``"<queue> (async)"`` (message end-to-end time at the
consumer), which the pooled ``"all"`` row leaves out.
"""

from __future__ import annotations

import math

from capsim.analytic import components as comp
from capsim.analytic.percentiles import latency_percentiles
from capsim.analytic.stations import StationState, expected_count, plain_row, station_state
from capsim.dists import Exponential
from capsim.model import Visit
from capsim.model import lowering as low

__all__ = ["async_rows", "solve_consumers"]

INF = math.inf
NAN = math.nan


def solve_consumers(system, stations, message_rates: dict[str, float], ca0: float,
                  markov: bool):
    """Consumers: single servers fed by their partitions' share of a queue's messages; and
    per queue, its latency group (consumer, share of the messages it serves)."""
    states: dict[str, StationState] = {}
    groups: dict[str, tuple[float, list]] = {}
    for q in comp.message_queues(system):
        rate = message_rates.get(q.name, 0.0)
        parts = []
        for name, share in zip(low.consumer_names(q), q.partition_share(), strict=True):
            st = stations[name]
            lk, s = rate * share, st.service.mean
            exp_service = isinstance(st.service, Exponential)
            if st.max_wait_s is not None:
                r = comp.mm1_retention(lk, s, st.max_wait_s)
                states[name] = StationState(lk, lk * s, r.utilization, r.throughput,
                                      r.mean_queue_length, r.mean_queue_length + r.utilization,
                                      r.mean_wait, r.mean_wait + s, r.loss, True, r.wait_cdf(),
                                      r.wait_var, lk * s, exp_service)
            else:
                # a random partition of the published stream (Poisson if requests are)
                ca2 = share * ca0 + 1.0 - share
                eff = (s, st.service.scv, s, None, st.service.scv)
                states[name] = station_state(st, lk, eff, markov, ca2, False, False)
            parts.append((share, name))
        groups[low.async_flow_name(q)] = (rate, parts)
    return states, groups


def _served(parts, states):
    """A queue's latency mixture: each consumer weighted by the messages it serves."""
    served = [(share * (1.0 - states[n].blocking), (Visit(n),)) for share, n in parts]
    total = sum(p for p, _ in served)
    return [(p / total, calls) for p, calls in served if p > 0]


def async_rows(async_groups, stations, states, duration_s) -> list[tuple]:
    summary, stable_groups = {}, {}
    for label, (rate, parts) in async_groups.items():
        summary[label] = _async_summary(rate, parts, stations, states)
        if summary[label][3] and summary[label][0] > 0:
            stable_groups[label] = _served(parts, states)
    pct = latency_percentiles(stable_groups, stations, states)
    rows = []
    for label, (thr, mean, err, stable, offered_rate) in summary.items():
        p50, p95, p99 = pct.get(label, (INF, INF, INF) if not stable else (NAN, NAN, NAN))
        errors = expected_count(offered_rate * err, duration_s, can_drop=err > 0)
        rows.append(plain_row((label, NAN, thr, mean, p50, p95, p99, errors, err, stable)))
    return rows


def _async_summary(rate, parts, stations, states):
    """A queue's messages: served ones' latency is their consumer's wait + service."""
    stable = all(states[n].stable for _, n in parts)
    served = sum(share * (1.0 - states[n].blocking) for share, n in parts)
    loss = sum(share * states[n].blocking for share, n in parts)
    if not stable:
        return NAN, INF, loss, False, rate
    if rate <= 0 or served <= 0:
        return 0.0, NAN, loss, True, rate
    mean = sum(share * (1.0 - states[n].blocking) * (states[n].wq + stations[n].service.mean)
               for share, n in parts) / served
    return rate * served, mean, loss, True, rate

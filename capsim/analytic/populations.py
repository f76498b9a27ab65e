"""Workloads of several populations, or of one running some flows: solved as the classes
they are.

A population that runs only some flows is the system with those flows (``with_flows``): the
single-class solvers answer it unchanged. Open populations together are one superposed
stream (Poisson streams superpose to Poisson: exact; otherwise QNA's rate-weighted scv), with
each flow weighted by the requests all populations send it; per-population rows mix their
flows' routes. Closed or mixed open-and-closed populations go to multi-class MVA
(``capsim.analytic.multiclass_network``, on ``capsim.analytic.multiclass``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from capsim.analytic.closed_network import solve_closed
from capsim.analytic.open_network import solve_open
from capsim.analytic.result import AnalyticResult
from capsim.analytic.stations import build_stations
from capsim.dists import Exponential, Gamma
from capsim.model import MixedWorkload, OpenWorkload, shares
from capsim.model.workload import weighted_system
from capsim.schema import ALL_FLOWS

__all__ = ["solve_populations"]


def solve_populations(system, workload, duration_s) -> AnalyticResult:
    parts = shares(system, workload)
    if not isinstance(workload, MixedWorkload):  # one population, some of the flows
        (part,) = parts
        view = system.with_flows(part.flows, part.probabilities)
        w = part.workload
        solve = solve_open if isinstance(w, OpenWorkload) else solve_closed
        res = solve(view, w, build_stations(view), duration_s)
        # its one population row is its requests pooled (the only flow's, or "all")
        rows = {r[0]: r for r in res.latency_rows}
        pooled = rows.get(ALL_FLOWS, rows.get(part.flows[0]))
        return replace(res, population_rows=((part.name, *pooled[1:]),))
    if all(isinstance(p.workload, OpenWorkload) for p in parts):
        return _solve_open_mix(system, parts, duration_s)
    from capsim.analytic.multiclass_network import solve_multiclass

    return solve_multiclass(system, workload, parts, duration_s)


def _solve_open_mix(system, parts, duration_s) -> AnalyticResult:
    rates = [p.workload.judged_rate_per_s(duration_s) for p in parts]
    view, total = weighted_system(system, parts, rates)
    scv = math.fsum(r * p.workload.interarrival.scv for r, p in zip(rates, parts, strict=True))
    scv /= total
    gaps = Exponential() if abs(scv - 1.0) < 1e-12 else Gamma(1.0, math.sqrt(scv))
    merged = OpenWorkload(total, 1.0, gaps)
    mixes = {}
    for rate, p in zip(rates, parts, strict=True):
        mixes[p.name] = {f: rate * q / total for f, q in zip(p.flows, p.probabilities,
                                                             strict=True)}
    # a population's row: its flows' routes, weighted by its share of all requests
    return solve_open(view, merged, build_stations(view), duration_s, populations=mixes)

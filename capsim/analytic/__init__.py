"""The analytic twin: closed forms and MVA for the same models the engine simulates.

``solve(system, workload)`` (``network``: open networks in ``open_network``, closed ones in
``closed_network``, percentiles, caveats in ``notes``) answers with the simulation's table
layout (``AnalyticResult``), so the two can be laid side by side; the single-station formulas
and MVA are also the engine's test oracle. This package never imports SimPy.
"""

from capsim.analytic.mva import Bounds, MVAResult, bounds, mva
from capsim.analytic.network import solve
from capsim.analytic.queues import (
    MMcKResult,
    MMcResult,
    departure_scv,
    erlang_b,
    erlang_c,
    ggc_wait,
    mg1_wait,
    mmc,
    mmc_response_quantile,
    mmck,
    mmck_probabilities,
)
from capsim.analytic.result import AnalyticResult

__all__ = [
    "AnalyticResult",
    "Bounds",
    "MMcKResult",
    "MMcResult",
    "MVAResult",
    "bounds",
    "departure_scv",
    "erlang_b",
    "erlang_c",
    "ggc_wait",
    "mg1_wait",
    "mmc",
    "mmc_response_quantile",
    "mmck",
    "mmck_probabilities",
    "mva",
    "solve",
]

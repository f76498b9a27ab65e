"""The analytic twin: closed forms and MVA for the same models the engine simulates.

``solve(system, workload)`` (``network``: open networks in ``open_network``, closed ones in
``closed_network``, several populations in ``populations`` and ``multiclass_network``,
processor sharing, priorities and shared hosts in ``disciplines``, percentiles, caveats in
``notes``) answers with the simulation's table layout (``AnalyticResult``), so the two can be
laid side by side; the single-station formulas and (multi-class) MVA are also the engine's
test oracle. This package never imports SimPy.
"""

from capsim.analytic.multiclass import MixedResult, MultiClassMVA, mixed_network, mva_multiclass
from capsim.analytic.mva import Bounds, MVAResult, bounds, mva
from capsim.analytic.network import solve
from capsim.analytic.queues import (
    MMcKResult,
    MMcResult,
    departure_scv,
    erlang_b,
    erlang_c,
    ggc_wait,
    mg1_priority_nonpreemptive,
    mg1_priority_preemptive,
    mg1_wait,
    mmc,
    mmc_priority_nonpreemptive,
    mmc_ps_response,
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
    "MixedResult",
    "MultiClassMVA",
    "bounds",
    "departure_scv",
    "erlang_b",
    "erlang_c",
    "ggc_wait",
    "mg1_priority_nonpreemptive",
    "mg1_priority_preemptive",
    "mg1_wait",
    "mixed_network",
    "mmc",
    "mmc_priority_nonpreemptive",
    "mmc_ps_response",
    "mmc_response_quantile",
    "mmck",
    "mmck_probabilities",
    "mva",
    "mva_multiclass",
    "solve",
]

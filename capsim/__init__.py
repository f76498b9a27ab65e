"""capsim: capacity planning for web systems by simulation, with an analytic twin.

Names are imported on first use (PEP 562), so ``import capsim`` costs next to nothing: the
command line answers at once, and pandas, scipy and matplotlib load only when something
needs them.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {  # public name -> the module that defines it
    **dict.fromkeys([
        "Deterministic", "Distribution", "Empirical", "Erlang", "Exponential", "Gamma",
        "HyperExponential", "LogNormal", "Count", "Poisson", "Geometric",
    ], "capsim.dists"),
    **dict.fromkeys([
        "Network", "RunResult", "simulate",
    ], "capsim.engine"),
    **dict.fromkeys([
        "MeasurementWarning", "ModelError", "RunLengthWarning",
    ], "capsim.errors"),
    **dict.fromkeys([
        "Replications", "ResultStore", "SweepResult", "find_saturation", "growth", "replicate",
        "sweep",
    ], "capsim.experiment"),
    **dict.fromkeys([
        "Autoscaler", "Branch", "Budget", "CDN", "Cache", "Call", "ClosedWorkload", "Component",
        "Database", "Delay", "Diurnal", "Flow", "Growth", "MessageQueue", "OpenWorkload", "Outage",
        "Piecewise", "Profile", "Publish", "Read", "Service", "Spike", "System", "Workload",
        "Write", "Host", "MixedWorkload", "Failover",
    ], "capsim.model"),
    **dict.fromkeys([
        "Pool",
    ], "capsim.model"),
    **dict.fromkeys([
        "Backoff", "CircuitBreaker", "RetryBudget",
    ], "capsim.model"),
    **dict.fromkeys([
        "retry_storm",
    ], "capsim.experiment"),
    **dict.fromkeys([
        "DelaySpike", "RateLimit",
    ], "capsim.model"),
}
_SUBPACKAGES = ("analytic", "calibrate", "engine", "experiment", "model", "monitor", "report",
                "scaling", "scenario")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"capsim.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'capsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBPACKAGES})


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from capsim import analytic, monitor
    from capsim.dists import (
        Count,
        Deterministic,
        Distribution,
        Empirical,
        Erlang,
        Exponential,
        Gamma,
        Geometric,
        HyperExponential,
        LogNormal,
        Poisson,
    )
    from capsim.engine import Network, RunResult, simulate
    from capsim.errors import MeasurementWarning, ModelError, RunLengthWarning
    from capsim.experiment import (
        Replications,
        ResultStore,
        SweepResult,
        find_saturation,
        growth,
        replicate,
        retry_storm,
        sweep,
    )
    from capsim.model import (
        CDN,
        Autoscaler,
        Backoff,
        Branch,
        Budget,
        Cache,
        Call,
        CircuitBreaker,
        ClosedWorkload,
        Component,
        Database,
        Delay,
        DelaySpike,
        Diurnal,
        Failover,
        Flow,
        Growth,
        Host,
        MessageQueue,
        MixedWorkload,
        OpenWorkload,
        Outage,
        Piecewise,
        Pool,
        Profile,
        Publish,
        RateLimit,
        Read,
        RetryBudget,
        Service,
        Spike,
        System,
        Workload,
        Write,
    )

__all__ = [
    "Autoscaler", "Branch", "Budget", "CDN", "Cache", "Call", "ClosedWorkload", "Component",
    "Count", "Geometric", "Host", "MixedWorkload", "Poisson",
    "Database", "Delay", "Deterministic", "Distribution", "Diurnal", "Empirical", "Erlang",
    "Exponential", "Failover", "Flow", "Gamma", "Growth", "HyperExponential", "LogNormal",
    "MessageQueue",
    "MeasurementWarning", "ModelError", "Network", "OpenWorkload", "Outage", "Piecewise",
    "Profile", "Publish", "Read",
    "Replications", "ResultStore", "RunLengthWarning", "RunResult", "Service", "Spike",
    "SweepResult", "System", "Workload", "Write", "find_saturation", "growth", "replace",
    "replicate", "simulate", "sweep", "analytic", "monitor",
    "Backoff", "CircuitBreaker", "RetryBudget", "retry_storm",
    "DelaySpike", "RateLimit",
    "Pool",
]

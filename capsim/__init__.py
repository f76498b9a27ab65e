"""capsim: capacity planning for web systems by simulation, with an analytic twin."""

from dataclasses import replace

from capsim import analytic
from capsim.dists import (
    Deterministic,
    Distribution,
    Empirical,
    Erlang,
    Exponential,
    Gamma,
    HyperExponential,
    LogNormal,
)
from capsim.engine import Network, RunResult, simulate
from capsim.errors import ModelError
from capsim.experiment import (
    Budget,
    Replications,
    ResultStore,
    SweepResult,
    find_saturation,
    growth,
    replicate,
    sweep,
)
from capsim.model import (
    CDN,
    Branch,
    Cache,
    Call,
    ClosedWorkload,
    Component,
    Database,
    Delay,
    Flow,
    MessageQueue,
    OpenWorkload,
    Outage,
    Publish,
    Read,
    Service,
    System,
    Workload,
    Write,
)

__version__ = "0.1.0"

__all__ = [
    "CDN",
    "Branch",
    "Cache",
    "Database",
    "Delay",
    "MessageQueue",
    "Outage",
    "Publish",
    "Read",
    "Write",
    "Budget",
    "analytic",
    "Call",
    "ClosedWorkload",
    "Component",
    "Deterministic",
    "Distribution",
    "Empirical",
    "Erlang",
    "Exponential",
    "Flow",
    "Gamma",
    "HyperExponential",
    "LogNormal",
    "ModelError",
    "Network",
    "Replications",
    "ResultStore",
    "RunResult",
    "OpenWorkload",
    "Service",
    "SweepResult",
    "System",
    "Workload",
    "find_saturation",
    "growth",
    "replace",
    "replicate",
    "simulate",
    "sweep",
]

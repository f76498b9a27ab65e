"""The declarative model: frozen, validated, and free of SimPy."""

from capsim.model.budget import Budget
from capsim.model.components import (
    CDN,
    Autoscaler,
    Cache,
    Component,
    Database,
    Delay,
    DelaySpike,
    Failover,
    Host,
    MessageQueue,
    Outage,
    RateLimit,
    Service,
)
from capsim.model.demands import averaged, demand_table
from capsim.model.flows import Branch, Call, Flow, Publish, Read, Route, Write
from capsim.model.lowering import StationSpec, Visit
from capsim.model.pools import Pool
from capsim.model.profiles import (
    Constant,
    Diurnal,
    Growth,
    Piecewise,
    Product,
    Profile,
    Spike,
    Step,
)
from capsim.model.resilience import Backoff, CircuitBreaker, RetryBudget
from capsim.model.system import System
from capsim.model.workload import (
    ClosedWorkload,
    MixedWorkload,
    OpenWorkload,
    Population,
    Share,
    Workload,
    shares,
)

__all__ = [
    "averaged",
    "demand_table",
    "Autoscaler",
    "Budget",
    "Constant",
    "Diurnal",
    "Growth",
    "Piecewise",
    "Product",
    "Profile",
    "Spike",
    "Step",
    "CDN",
    "Branch",
    "Cache",
    "Database",
    "Delay",
    "DelaySpike",
    "RateLimit",
    "Host",
    "MixedWorkload",
    "Population",
    "Share",
    "shares",
    "MessageQueue",
    "Failover",
    "Outage",
    "Pool",
    "Publish",
    "Read",
    "StationSpec",
    "Visit",
    "Write",
    "Call",
    "Backoff",
    "CircuitBreaker",
    "RetryBudget",
    "ClosedWorkload",
    "Component",
    "Flow",
    "OpenWorkload",
    "Route",
    "Service",
    "System",
    "Workload",
]

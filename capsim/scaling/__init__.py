"""Vertical vs horizontal scaling: an instance catalogue, scaling options with the USL's
contention penalty, their comparison (capacity, p99, cost, one box down), the cheapest plan
that meets a budget, and autoscaling over a day."""

from capsim.scaling.autoscale import AutoscaleResult, simulate_autoscaling, tier_alone
from capsim.scaling.catalogue import Catalogue, Instance, load_catalogue
from capsim.scaling.cheapest import CheapestResult, cheapest
from capsim.scaling.compare import (
    ComparisonResult,
    budget_text,
    compare,
    twin_saturation_users,
    twin_view,
)
from capsim.scaling.failover import FailoverResult, simulate_failover, twin_states
from capsim.scaling.options import (
    SDM91_KAPPA,
    SDM91_SIGMA,
    DatabaseOptions,
    Failure,
    Horizontal,
    Option,
    Vertical,
    after_failover,
    apply,
    capacity_per_s,
    deploy,
    effective_capacity,
    one_down,
    plot_effective_capacity,
    usl_capacity,
)

__all__ = [
    "SDM91_KAPPA",
    "SDM91_SIGMA",
    "AutoscaleResult",
    "Catalogue",
    "CheapestResult",
    "ComparisonResult",
    "DatabaseOptions",
    "FailoverResult",
    "Failure",
    "Horizontal",
    "Instance",
    "Option",
    "Vertical",
    "after_failover",
    "apply",
    "budget_text",
    "capacity_per_s",
    "cheapest",
    "compare",
    "deploy",
    "effective_capacity",
    "load_catalogue",
    "one_down",
    "plot_effective_capacity",
    "simulate_autoscaling",
    "simulate_failover",
    "tier_alone",
    "twin_saturation_users",
    "twin_states",
    "twin_view",
    "usl_capacity",
]

"""The declarative model: frozen, validated, and free of SimPy."""

from capsim.model.components import Component, Service
from capsim.model.flows import Branch, Call, Flow, Route
from capsim.model.system import System
from capsim.model.workload import ClosedWorkload, OpenWorkload, Workload

__all__ = [
    "Branch",
    "Call",
    "ClosedWorkload",
    "Component",
    "Flow",
    "OpenWorkload",
    "Route",
    "Service",
    "System",
    "Workload",
]

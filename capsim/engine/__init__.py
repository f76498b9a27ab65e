"""The SimPy engine: the only part of capsim that imports simpy."""

from capsim.engine.network import Network
from capsim.engine.result import RunResult, StationStats
from capsim.engine.simulate import simulate
from capsim.engine.station import Station, StationRequest

__all__ = ["Network", "RunResult", "Station", "StationRequest", "StationStats", "simulate"]

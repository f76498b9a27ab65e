"""Scenario files (YAML) that mirror the Python API, and their JSON Schema."""

from capsim.scenario.loader import RunSettings, Scenario, ScenarioError, load_scenario

__all__ = ["RunSettings", "Scenario", "ScenarioError", "load_scenario"]

"""Scenario files: YAML that mirrors the Python API one to one, loaded safely.

Only names capsim defines can be built (no arbitrary objects: yaml.safe_load's node tree is
walked and each mapping is turned into a known class by its key), and every error names the
path, the value, what was expected, and the line it came from:
``components[2].servers (line 14): must be >= 1, got 0``.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from capsim import dists
from capsim.errors import ModelError, did_you_mean
from capsim.model import Budget
from capsim.model import components as comp_mod
from capsim.model import flows as flow_mod
from capsim.model import profiles as profile_mod
from capsim.model import resilience as res_mod
from capsim.model.pools import POOL_PER, Pool
from capsim.model.system import System
from capsim.model.workload import ClosedWorkload, MixedWorkload, OpenWorkload

DISTRIBUTIONS = {c.__name__: c for c in (dists.Exponential, dists.Deterministic, dists.Erlang,
                                          dists.Gamma, dists.LogNormal, dists.HyperExponential,
                                          dists.Empirical)}
COUNTS = {c.__name__: c for c in (dists.Poisson, dists.Geometric)}  # a step's ``visits``
COMPONENTS = {c.__name__: c for c in (comp_mod.Service, comp_mod.Delay, comp_mod.Cache,
                                       comp_mod.CDN, comp_mod.Database, comp_mod.MessageQueue)}
STEPS = {c.__name__: c for c in (flow_mod.Call, flow_mod.Read, flow_mod.Write,
                                  flow_mod.Publish, flow_mod.Branch)}
PROFILES = {c.__name__: c for c in (profile_mod.Constant, profile_mod.Diurnal, profile_mod.Step,
                                     profile_mod.Spike, profile_mod.Growth,
                                     profile_mod.Piecewise)}
POPULATIONS = {c.__name__: c for c in (OpenWorkload, ClosedWorkload)}
WORKLOADS = {**POPULATIONS, "MixedWorkload": MixedWorkload}
# a Call's breaker, backoff and retry budget: mappings of their fields
RESILIENCE = {"breaker": res_mod.CircuitBreaker, "backoff": res_mod.Backoff,
              "retry_budget": res_mod.RetryBudget}
# fields with a fixed set of values, checked here so a typo gets a "did you mean"
CHOICES = {"discipline": comp_mod.DISCIPLINES, "balancing": comp_mod.BALANCING,
           "read_policy": comp_mod.BALANCING, "writes": comp_mod.FAILOVER_WRITES,
           "per": POOL_PER}
SAFE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq",
                                                  "map")}
DISTRIBUTION_FIELDS = {"service_time", "latency", "edge_latency", "think_time", "interarrival",
                       "replication_lag", "publish_latency"}
STEP_FIELDS = {"steps", "calls", "on_miss"}
TOP_LEVEL = ("name", "components", "flows", "workload", "hosts", "outages", "autoscalers",
             "budget", "run", "description", "spikes")
# a model error's owner: ``Flow('browse').priority: ...``, ``Service('app').host: ...``
_OWNER = re.compile(r"^(?:(?P<kind>\w+)\((?P<name>'[^']*'|\"[^\"]*\")\)|System)\."
                    r"(?P<field>[^:\s]+): (?P<detail>.*)$", re.S)
_LAST_PART = re.compile(r"(\.[^.\[]+|\[\d+\])$")  # ``.servers`` or ``[2]`` at a path's end


class ScenarioError(ModelError):
    """A scenario file that cannot be built; the message says where and why."""


@dataclass(frozen=True)
class RunSettings:
    duration_s: float = 300.0
    warmup_s: float | None = None
    replications: int = 5
    seed: int = 0


@dataclass(frozen=True)
class Scenario:
    """What a scenario file describes: the system, its workload, and optionally a budget."""

    name: str
    system: System
    workload: OpenWorkload | ClosedWorkload | MixedWorkload
    budget: Budget | None = None
    run: RunSettings = field(default_factory=RunSettings)
    description: str = ""
    source: str = ""


# ----------------------------------------------------------------------------- YAML nodes


def _plain(node: yaml.Node, path: str, lines: dict[str, int]) -> Any:
    """The node's value as plain Python (dict/list/scalars), recording the line of each path."""
    lines.setdefault(path, node.start_mark.line + 1)
    if node.tag not in SAFE_TAGS:
        raise ScenarioError(f"{path or 'scenario'} (line {node.start_mark.line + 1}): the tag "
                            f"{node.tag!r} is not allowed in a scenario (plain YAML only)")
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise ScenarioError(f"{path or 'scenario'} (line {key_node.start_mark.line + 1}):"
                                    f" duplicate key {key!r}")
            lines[_join(path, key)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, _join(path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, f"{path}[{i}]", lines) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))  # a scalar, resolved the safe way


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Builder:
    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines

    def where(self, path: str) -> str:
        """``path (line N)``, with the line of the nearest enclosing entry that has one (a
        value the model made up, such as ``flows[0]`` of ``flows: browse``)."""
        probe = path
        while probe and probe not in self.lines:
            parent = _LAST_PART.sub("", probe)
            probe = parent if parent != probe else ""
        line = self.lines.get(probe)
        return f"{path} (line {line})" if line else path

    def fail(self, path: str, expected: str, value: Any) -> ScenarioError:
        return ScenarioError(f"{self.where(path)}: {expected}, got {value!r}")

    def build(self, cls: type, data: Any, path: str, *, extra: dict | None = None) -> Any:
        """``cls(**data)`` with each field converted by its type; errors get the path."""
        if not isinstance(data, dict):
            raise self.fail(path, f"must be a mapping of {cls.__name__} fields", data)
        init_names = list(inspect.signature(cls).parameters)
        unknown = [k for k in data if k not in init_names]
        if unknown:
            did_you = did_you_mean(unknown[0], init_names)
            raise self.fail(_join(path, unknown[0]), f"is not a field of {cls.__name__}{did_you};"
                            f" fields: {', '.join(init_names)}", data[unknown[0]])
        if cls in COMPONENTS.values() or cls in (comp_mod.Failover, Pool):
            for k, choices in CHOICES.items():
                if k in data:
                    self.choice(k, data[k], choices, _join(path, k))
        kwargs = {k: self.convert(k, v, _join(path, k)) for k, v in data.items()}
        kwargs.update(extra or {})
        try:
            return cls(**kwargs)
        except ModelError as exc:
            raise ScenarioError(self._locate(path, kwargs, str(exc))) from None
        except TypeError as exc:
            raise self.fail(path, f"cannot build {cls.__name__} ({exc})", data) from None

    def _locate(self, path: str, kwargs: dict, message: str) -> str:
        """Point a model error at the field it names, when it names one."""
        field_part = message.split(":", 1)[0].rsplit(".", 1)[-1]
        field_name = field_part.split("[", 1)[0]
        detail = message.split(": ", 1)[1] if ": " in message else message
        if field_name in kwargs:
            return f"{self.where(_join(path, field_part))}: {detail}"
        return f"{self.where(path)}: {message}"

    def choice(self, name: str, value: Any, choices: tuple[str, ...], path: str) -> None:
        if value not in choices:
            did_you = did_you_mean(str(value), choices)
            raise self.fail(path, f"unknown {name}{did_you}; known: {', '.join(choices)}",
                            value)

    def convert(self, name: str, value: Any, path: str) -> Any:
        """A field's YAML value as the object the constructor expects, by the field's name."""
        if name in DISTRIBUTION_FIELDS and isinstance(value, (dict, str)):
            return self.tagged(DISTRIBUTIONS, value, path, "a distribution")
        if name == "visits" and isinstance(value, (dict, str)):
            return self.tagged(COUNTS, value, path, "a count distribution")
        if name == "populations" and isinstance(value, list):
            return [self.tagged(POPULATIONS, v, f"{path}[{i}]", "a population")
                    for i, v in enumerate(value)]
        if name == "profile" and isinstance(value, (dict, str, list)):
            return self.profile(value, path)
        if name == "failover" and isinstance(value, dict):
            return self.build(comp_mod.Failover, value, path)
        if name == "pool" and isinstance(value, dict):
            return self.build(Pool, value, path)
        if name == "rate_limit" and isinstance(value, dict):  # a Service's or a Flow's
            return self.build(comp_mod.RateLimit, value, path)
        if name in RESILIENCE and isinstance(value, dict):
            if name == "backoff" and "jitter" in value:
                self.choice("jitter", value["jitter"], res_mod.JITTERS, _join(path, "jitter"))
            return self.build(RESILIENCE[name], value, path)
        if name == "consumer" and isinstance(value, dict):
            return self.tagged(COMPONENTS, value, path, "a component") if len(value) == 1 \
                and next(iter(value)) in COMPONENTS else self.build(comp_mod.Service, value, path)
        if name in STEP_FIELDS and isinstance(value, list):
            return [self.step(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if name == "options" and isinstance(value, list):
            return [self.option(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, list):
            return tuple(value)
        return value

    def tagged(self, table: dict[str, type], value: Any, path: str, what: str) -> Any:
        """``{Exponential: {mean: 0.01}}``, ``{kind: Exponential, mean: 0.01}`` or a bare name."""
        if isinstance(value, str):
            kind, args = value, {}
        elif isinstance(value, dict) and "kind" in value:
            kind, args = value["kind"], {k: v for k, v in value.items() if k != "kind"}
        elif isinstance(value, dict) and len(value) == 1:
            (kind, args), = value.items()
            self._alias(_join(path, kind), path)
        else:
            raise self.fail(path, f"must be {what} such as {{{next(iter(table))}: {{...}}}}",
                            value)
        if kind not in table:
            did_you = did_you_mean(str(kind), table)
            raise self.fail(path, f"unknown {what.removeprefix('a ')}{did_you}; known: "
                            f"{', '.join(table)}", kind)
        if kind == "Empirical" and isinstance(args, list):
            args = {"samples": args}
        return self.build(table[kind], args or {}, path)

    def _alias(self, tagged: str, plain: str) -> None:
        """Lines recorded under ``x.Service.servers`` also answer for ``x.servers``."""
        for p, line in list(self.lines.items()):
            if p == tagged or p.startswith((tagged + ".", tagged + "[")):
                self.lines.setdefault(plain + p[len(tagged):], line)

    def profile(self, value: Any, path: str):
        if isinstance(value, list):  # a product
            parts = [self.profile(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return profile_mod.Product(tuple(parts))
        return self.tagged(PROFILES, value, path, "a profile")

    def step(self, value: Any, path: str):
        if isinstance(value, dict) and len(value) == 1:
            (kind, args), = value.items()
            if kind in STEPS and isinstance(args, str) and kind != "Branch":
                return STEPS[kind](args)  # shorthand: {Call: app}
            if kind == "Branch" and isinstance(args, list):
                return self.build(flow_mod.Branch, {"options": args}, _join(path, kind))
        return self.tagged(STEPS, value, path, "a step")

    def option(self, value: Any, path: str):
        if not isinstance(value, dict) or set(value) - {"probability", "steps"}:
            raise self.fail(path, "must be {probability: p, steps: [...]}", value)
        steps = [self.step(v, f"{path}.steps[{i}]")
                 for i, v in enumerate(value.get("steps", []))]
        return (value.get("probability"), steps)


# ----------------------------------------------------------------------------- scenario


def load_scenario(source: str | Path) -> Scenario:
    """Read a scenario from a path, or from YAML text."""
    text, where = _read(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where}: not valid YAML: {exc}") from None
    if node is None:
        raise ScenarioError(f"{where}: the file is empty")
    lines: dict[str, int] = {}
    data = _plain(node, "", lines)
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: must be a mapping with components, flows and workload")
    b = _Builder(lines)
    unknown = [k for k in data if k not in TOP_LEVEL]
    if unknown:
        did_you = did_you_mean(unknown[0], TOP_LEVEL)
        raise b.fail(unknown[0], f"is not a scenario section{did_you}; sections: "
                     f"{', '.join(TOP_LEVEL)}", data[unknown[0]])
    for required in ("components", "flows", "workload"):
        if required not in data:
            raise ScenarioError(f"{where}: missing section {required!r}")
    if not isinstance(data["components"], list):
        raise b.fail("components", "must be a list of components", data["components"])
    components = [b.tagged(COMPONENTS, c, f"components[{i}]", "a component")
                  for i, c in enumerate(data["components"])]
    if not isinstance(data["flows"], list):
        raise b.fail("flows", "must be a list of flows", data["flows"])
    flows = [b.build(flow_mod.Flow, f, f"flows[{i}]") for i, f in enumerate(data["flows"])]
    outages = [b.build(comp_mod.Outage, o, f"outages[{i}]")
               for i, o in enumerate(data.get("outages") or [])]
    scalers = [b.build(comp_mod.Autoscaler, a, f"autoscalers[{i}]")
               for i, a in enumerate(data.get("autoscalers") or [])]
    if not isinstance(data.get("hosts") or [], list):
        raise b.fail("hosts", "must be a list of hosts ({name, cores, speed})", data["hosts"])
    hosts = [b.build(comp_mod.Host, h, f"hosts[{i}]")
             for i, h in enumerate(data.get("hosts") or [])]
    if not isinstance(data.get("spikes") or [], list):
        raise b.fail("spikes", "must be a list of latency spikes ({component, start_s, "
                     "duration_s, factor, extra_s})", data["spikes"])
    spikes = [b.build(comp_mod.DelaySpike, s, f"spikes[{i}]")
              for i, s in enumerate(data.get("spikes") or [])]
    name = str(data.get("name") or Path(where).stem)
    try:
        system = System(tuple(components), tuple(flows), name=name, outages=tuple(outages),
                        autoscalers=tuple(scalers), hosts=tuple(hosts), spikes=tuple(spikes))
    except ModelError as exc:
        raise ScenarioError(_system_error(b, str(exc), components, flows, where)) from None
    workload = b.tagged(WORKLOADS, data["workload"], "workload", "a workload")
    _check_population_flows(b, workload, [f.name for f in flows])
    budget = b.build(Budget, data["budget"], "budget") if data.get("budget") else None
    run = b.build(RunSettings, data["run"], "run") if data.get("run") else RunSettings()
    return Scenario(name, system, workload, budget, run, str(data.get("description", "")),
                    where)


def _system_error(b: _Builder, message: str, components, flows, where: str) -> str:
    """A System error at the entry it names: ``Flow('browse').priority: ...`` becomes
    ``flows[0].priority (line 12): ...``; ``System.hosts: ...`` becomes ``hosts (line 3)``."""
    m = _OWNER.match(message)
    if m is None:
        return f"{where}: {message}"
    field_path, detail = m["field"], m["detail"]
    if m["kind"] is None:  # System.<field>
        return f"{b.where(field_path)}: {detail}"
    name = ast.literal_eval(m["name"])
    if m["kind"] == "Flow":
        section, names = "flows", [f.name for f in flows]
    else:
        section = "components"
        names = [c.name if type(c).__name__ == m["kind"] else None for c in components]
    if name not in names:
        return f"{where}: {message}"
    return f"{b.where(f'{section}[{names.index(name)}].{field_path}')}: {detail}"


def _check_population_flows(b: _Builder, workload, known: list[str]) -> None:
    """Every flow a population names is one of the system's flows (``did you mean``)."""
    mixed = isinstance(workload, MixedWorkload)
    pops = workload.populations if mixed else (workload,)
    for i, w in enumerate(pops):
        base = f"workload.populations[{i}]" if mixed else "workload"
        for j, flow in enumerate(w.flows or ()):
            if flow not in known:
                did_you = did_you_mean(flow, known)
                raise b.fail(f"{base}.flows[{j}]", f"unknown flow{did_you}; the system's "
                             f"flows: {', '.join(known)}", flow)


def _read(source: str | Path) -> tuple[str, str]:
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        path = Path(source)
        if not path.exists():
            raise ScenarioError(f"{path}: no such scenario file")
        return path.read_text(), str(path)
    return str(source), "<scenario>"

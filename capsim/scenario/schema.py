"""A JSON Schema of scenario files, generated from the same classes the loader builds, so an
editor can complete and check a scenario as it is typed (``capsim schema > capsim.json``)."""

from __future__ import annotations

import dataclasses
import inspect
import typing

from capsim.model.resilience import JITTERS
from capsim.scenario.loader import (
    CHOICES,
    COMPONENTS,
    COUNTS,
    DISTRIBUTION_FIELDS,
    DISTRIBUTIONS,
    POPULATIONS,
    PROFILES,
    RESILIENCE,
    STEP_FIELDS,
    STEPS,
    WORKLOADS,
    RunSettings,
)

_SCALARS = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
            bool: {"type": "boolean"}}


def _field_schema(cls: type, name: str, annotation) -> dict:
    if name in DISTRIBUTION_FIELDS:
        return {"$ref": "#/$defs/distribution"}
    if name in STEP_FIELDS:
        return {"type": "array", "items": {"$ref": "#/$defs/step"}}
    if name == "profile":
        return {"$ref": "#/$defs/profile"}
    if name == "consumer":
        return {"$ref": "#/$defs/Service"}
    if name == "failover":
        return {"$ref": "#/$defs/Failover"}
    if name == "pool":
        return {"$ref": "#/$defs/Pool"}
    if name == "rate_limit":  # a Service's or a Flow's token bucket
        return {"$ref": "#/$defs/RateLimit"}
    if name == "bulkheads":  # dependency -> most workers of an instance in calls to it
        return {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}
    if name in RESILIENCE:
        return {"$ref": f"#/$defs/{RESILIENCE[name].__name__}"}
    if name == "visits":
        return {"oneOf": [{"type": "integer", "minimum": 0}, {"$ref": "#/$defs/count"}]}
    if name == "populations":
        return {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/population"}}
    if name in CHOICES and (cls in COMPONENTS.values() or name in ("writes", "per")):
        return {"type": "string", "enum": list(CHOICES[name])}
    if name == "options":
        return {"type": "array", "items": {
            "type": "object", "required": ["probability", "steps"], "additionalProperties": False,
            "properties": {"probability": {"type": "number", "minimum": 0},
                           "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}}}}}
    text = str(annotation)
    if "tuple[str" in text:  # flow names, population names
        return {"type": "array", "items": {"type": "string"}}
    if "tuple" in text:
        return {"type": "array", "items": {"type": "number"}}
    for py, js in _SCALARS.items():
        if annotation is py or text in (py.__name__, f"{py.__name__} | None"):
            return dict(js)
    return {}


def _object(cls: type) -> dict:
    sig = inspect.signature(cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - forward references a schema can do without
        hints = {}
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    props, required = {}, []
    for name, param in sig.parameters.items():
        ann = hints.get(name, fields[name].type if name in fields else param.annotation)
        props[name] = _field_schema(cls, name, ann)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        if doc and name == "name":
            props[name]["description"] = doc
        if param.default is inspect.Parameter.empty and not (
                name in fields and fields[name].default_factory is not dataclasses.MISSING):
            required.append(name)
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _tagged(table: dict[str, type]) -> dict:
    return {"oneOf": [{"type": "object", "required": [k], "additionalProperties": False,
                       "properties": {k: {"$ref": f"#/$defs/{k}"}}} for k in table]}


def json_schema() -> dict:
    defs = {name: _object(cls) for table in (DISTRIBUTIONS, COUNTS, COMPONENTS, PROFILES,
                                             WORKLOADS)
            for name, cls in table.items()}
    defs.update({name: _object(cls) for name, cls in STEPS.items() if name != "Branch"})
    defs["Branch"] = _field_schema(None, "options", None)
    defs["distribution"] = _tagged(DISTRIBUTIONS)
    defs["component"] = _tagged(COMPONENTS)
    defs["count"] = _tagged(COUNTS)
    defs["workload"] = _tagged(WORKLOADS)
    defs["population"] = _tagged(POPULATIONS)
    defs["profile"] = {"oneOf": [_tagged(PROFILES),
                                 {"type": "array", "items": _tagged(PROFILES)}]}
    shorthand = [{"type": "object", "required": [k], "additionalProperties": False,
                  "properties": {k: {"type": "string", "description": f"{k} this component"}}}
                 for k in STEPS if k != "Branch"]
    defs["step"] = {"oneOf": [*_tagged(STEPS)["oneOf"], *shorthand]}
    from capsim.model.budget import BOUNDS, Budget
    from capsim.model.components import Autoscaler, Failover, Host, Outage
    from capsim.model.flows import Flow
    from capsim.model.pools import Pool

    defs["Flow"] = _object(Flow)
    for cls in (Host, Outage, Autoscaler, Failover, Pool, Budget, RunSettings):
        defs[cls.__name__] = _object(cls)
    defs["Budget"]["properties"]["bound"]["enum"] = list(BOUNDS)
    for cls in RESILIENCE.values():  # a Call's breaker, backoff, retry_budget
        defs[cls.__name__] = _object(cls)
    defs["Backoff"]["properties"]["jitter"]["enum"] = list(JITTERS)
    from capsim.model.components import DelaySpike, RateLimit

    for cls in (RateLimit, DelaySpike):  # load shedding, latency spikes on hops
        defs[cls.__name__] = _object(cls)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "capsim scenario",
        "type": "object",
        "required": ["components", "flows", "workload"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "components": {"type": "array", "items": {"$ref": "#/$defs/component"}},
            "flows": {"type": "array", "items": {"$ref": "#/$defs/Flow"}},
            "workload": {"$ref": "#/$defs/workload"},
            "hosts": {"type": "array", "items": {"$ref": "#/$defs/Host"}},
            "outages": {"type": "array", "items": {"$ref": "#/$defs/Outage"}},
            "autoscalers": {"type": "array", "items": {"$ref": "#/$defs/Autoscaler"}},
            "spikes": {"type": "array", "items": {"$ref": "#/$defs/DelaySpike"}},
            "budget": {"$ref": "#/$defs/Budget"},
            "run": {"$ref": "#/$defs/RunSettings"},
        },
        "$defs": defs,
    }

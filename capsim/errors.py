"""Validation helpers: every bad input names its field and its value.

Models are checked when they are built, not when they run, so a typo in a sweep of a thousand
points fails at once with a message a person can act on.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


class ModelError(ValueError):
    """A model, workload or distribution was given a value it cannot hold."""


class RunLengthWarning(UserWarning):
    """A run is too short for what it reports: near saturation a tail estimate needs many
    relaxation times of the slowest queue (see ``capsim.engine.stability``)."""


class MeasurementWarning(UserWarning):
    """A measurement file cannot give some of what is asked of it (Locust's default CSV has
    no per-step percentiles, say): the numbers it cannot give are NaN, and this says why."""


def did_you_mean(name: Any, known) -> str:
    """`` (did you mean 'search'?)`` for the closest of ``known``, or "" when none is close:
    the hint every unknown-name error gives."""
    import difflib

    hint = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def fail(owner: str, field: str, expected: str, value: Any) -> ModelError:
    """Build the house-style error: ``Service('web').servers: must be >= 1, got 0``."""
    return ModelError(f"{owner}.{field}: {expected}, got {value!r}")


def check_number(
    owner: str, field: str, value: Any, *, minimum: float = 0.0, strict: bool = True
) -> float:
    """Return ``value`` as a finite float above ``minimum`` (or at least it, if not strict)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise fail(owner, field, "must be a number", value)
    x = float(value)
    if not math.isfinite(x):
        raise fail(owner, field, "must be finite", value)
    if strict and not x > minimum:
        raise fail(owner, field, f"must be > {minimum:g}", value)
    if not strict and not x >= minimum:
        raise fail(owner, field, f"must be >= {minimum:g}", value)
    return x


def check_int(owner: str, field: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` as an int of at least ``minimum``; floats like 2.0 are refused."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise fail(owner, field, f"must be an integer >= {minimum}", value)
    if value < minimum:
        raise fail(owner, field, f"must be >= {minimum}", value)
    return int(value)


def check_name(owner: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(owner, field, "must be a non-empty string", value)
    return value

"""User growth: the list of workloads a sweep walks through."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from capsim.errors import ModelError, check_int, check_number
from capsim.model import ClosedWorkload, MixedWorkload
from capsim.model.workload import Workload


def growth_curve(start_users: float, monthly_growth: float, months: int) -> np.ndarray:
    """Users at the start of each month 0..months under compound growth (0.08 = +8%/month)."""
    check_number("growth_curve", "start_users", start_users)
    check_number("growth_curve", "monthly_growth", monthly_growth, minimum=-1.0)
    check_int("growth_curve", "months", months, minimum=0)
    return start_users * (1.0 + monthly_growth) ** np.arange(months + 1)


def growth(workload: Workload, users: Iterable[float] | None = None, *,
           monthly_growth: float | None = None, months: int | None = None,
           population: str | None = None) -> list[Workload]:
    """Copies of ``workload`` at each user count: given directly, or from a growth curve
    starting at ``workload.users`` (``monthly_growth=0.08, months=24``). A MixedWorkload
    grows every population together (``users`` is the total), or only ``population``."""
    if population is not None and not isinstance(workload, MixedWorkload):
        raise ModelError(f"growth.population: needs a MixedWorkload, got {population!r} for "
                         f"a {type(workload).__name__}")
    grown = workload.population(population) if population is not None else workload
    if users is None:
        if monthly_growth is None or months is None:
            raise ValueError("growth: give users=..., or monthly_growth=... and months=...")
        users = growth_curve(grown.users, monthly_growth, months)
        if isinstance(grown, ClosedWorkload):
            users = np.rint(users).astype(int)
    users = [u.item() if hasattr(u, "item") else u for u in users]
    if population is not None:
        out = [workload.with_users(u, population=population) for u in users]
    else:
        out = [workload.with_users(u) for u in users]
    if not out:
        raise ValueError("growth: users is empty")
    return out

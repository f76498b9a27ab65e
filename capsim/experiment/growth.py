"""User growth: the list of workloads a sweep walks through."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from capsim.errors import check_int, check_number
from capsim.model import ClosedWorkload, OpenWorkload

Workload = OpenWorkload | ClosedWorkload


def growth_curve(start_users: float, monthly_growth: float, months: int) -> np.ndarray:
    """Users at the start of each month 0..months under compound growth (0.08 = +8%/month)."""
    check_number("growth_curve", "start_users", start_users)
    check_number("growth_curve", "monthly_growth", monthly_growth, minimum=-1.0)
    check_int("growth_curve", "months", months, minimum=0)
    return start_users * (1.0 + monthly_growth) ** np.arange(months + 1)


def growth(workload: Workload, users: Iterable[float] | None = None, *,
           monthly_growth: float | None = None, months: int | None = None) -> list[Workload]:
    """Copies of ``workload`` at each user count: given directly, or from a growth curve
    starting at ``workload.users`` (``monthly_growth=0.08, months=24``)."""
    if users is None:
        if monthly_growth is None or months is None:
            raise ValueError("growth: give users=..., or monthly_growth=... and months=...")
        users = growth_curve(workload.users, monthly_growth, months)
        if isinstance(workload, ClosedWorkload):
            users = np.rint(users).astype(int)
    out = [workload.with_users(u.item() if hasattr(u, "item") else u) for u in users]
    if not out:
        raise ValueError("growth: users is empty")
    return out

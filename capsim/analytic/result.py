"""What the analytic twin answers: ``AnalyticResult``, laid out like a simulation run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from capsim.analytic.mva import Bounds
from capsim.schema import COMPONENT_COLUMNS, LATENCY_COLUMNS, SIMULATION_ONLY

__all__ = ["AnalyticResult"]

# the twin's rows: the shared columns less what only a run can know
_TWIN_LATENCY = [c for c in LATENCY_COLUMNS if c not in SIMULATION_ONLY]
_TWIN_COMPONENTS = [c for c in COMPONENT_COLUMNS if c not in SIMULATION_ONLY]


@dataclass(frozen=True)
class AnalyticResult:
    """The twin's answer, laid out like a simulation run (``latency()``, ``components()``).

    Frozen and picklable (rows are plain tuples). ``notes`` says which numbers are exact and
    which approximate for this model.
    """

    system: str
    workload: str
    closed: bool
    latency_rows: tuple[tuple, ...]
    component_rows: tuple[tuple, ...]
    bottleneck: str
    unstable_components: tuple[str, ...]
    notes: tuple[str, ...]
    closed_bounds: Bounds | None = None
    population_rows: tuple[tuple, ...] = ()  # one per population of a mixed workload


    @property
    def stable(self) -> bool:
        """True when every component and every flow has a steady state."""
        return not self.unstable_components and all(r[-1] for r in self.latency_rows)

    def latency(self, by: str = "flow") -> pd.DataFrame:
        """Per flow, then one ``"<queue> (async)"`` row per MessageQueue, then ``ALL_FLOWS``
        (the request flows pooled) when there are several flows: schema.LATENCY_COLUMNS,
        count = NaN. ``by="population"``: one row per population of a mixed workload (the
        ``flow`` column names it), as ``RunResult.latency(by="population")``."""
        if by not in ("flow", "population"):
            raise ValueError(f"AnalyticResult.latency.by: must be 'flow' or 'population', "
                             f"got {by!r}")
        if by == "population" and not self.population_rows:
            raise ValueError("AnalyticResult.latency.by: 'population' needs a workload with "
                             "several populations (a MixedWorkload, or one running some flows)")
        rows = self.population_rows if by == "population" else self.latency_rows
        df = pd.DataFrame(list(rows), columns=_TWIN_LATENCY)
        return df.astype({"stable": bool}).reindex(columns=LATENCY_COLUMNS)

    def components(self) -> pd.DataFrame:
        """Per component: schema.COMPONENT_COLUMNS (``instability`` from the offered load)."""
        df = pd.DataFrame(list(self.component_rows), columns=_TWIN_COMPONENTS)
        df = df.astype({"stable": bool})
        df["instability"] = [
            "" if ok else f"offered load {rho:.2f} >= 1 (twin)"
            for ok, rho in zip(df["stable"], df["offered_load"], strict=True)]
        if np.isfinite(df["servers"]).all():  # a delay has servers = inf, as in the engine
            df = df.astype({"servers": int})
        return df

    def bounds(self) -> Bounds:
        """Asymptotic bounds (throughput ceiling, response floor, knee N*); closed only."""
        if self.closed_bounds is None:
            raise ValueError("bounds() needs one closed population (a ClosedWorkload); an open "
                             "workload's ceiling is the bottleneck's capacity "
                             "(components().offered_load reaching 1), and several populations "
                             "have a bound per mix, not one")
        return self.closed_bounds

    def summary(self) -> str:
        """A few lines for a person: stability, bottleneck, tables, and the caveats."""
        state = "stable" if self.stable else (
            "UNSTABLE (no steady state at: " + ", ".join(self.unstable_components or ("?",)) + ")")
        lines = [f"Analytic twin of {self.system!r} under {self.workload}: {state}",
                 f"bottleneck: {self.bottleneck}"]
        if self.closed_bounds is not None:
            b = self.closed_bounds
            lines.append(f"bounds: X <= {b.throughput_upper:.6g}/s, R >= {b.response_lower:.6g} s,"
                         f" N* = {b.n_star:.4g}")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            lines += ["", self.latency().to_string(index=False), "",
                      self.components().to_string(index=False)]
        lines += ["", *(f"note: {n}" for n in self.notes)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        flows = "; ".join(f"{r[0]}: mean={r[3]:.4g}s p99={r[6]:.4g}s" for r in self.latency_rows)
        return (f"AnalyticResult(system={self.system!r}, workload={self.workload}, "
                f"stable={self.stable}, bottleneck={self.bottleneck!r}, {flows})")

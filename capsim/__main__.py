"""``python -m capsim`` (and ``make run``): the capacity table of the bundled example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from capsim.examples import ecommerce_monolith
from capsim.experiment import Budget
from capsim.experiment.capacity import capacity_table
from capsim.report.capacity import plot_capacity

BUDGET_P99_S = 0.200


def main(out: Path = Path("reports")) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    system, workload = ecommerce_monolith()
    table, result = capacity_table(system, workload, users=np.arange(2_000, 26_001, 2_000),
                                   store="results")  # a rerun reuses finished runs
    table.to_csv(out / "capacity.csv", index=False)
    figure = out / "capacity.png"
    plot_capacity(table, budget_p99_s=BUDGET_P99_S).savefig(figure, dpi=120,
                                                              bbox_inches="tight")
    shown = table.assign(
        p99_twin_ms=(table["p99_twin_s"] * 1e3).round(1),
        p99_sim_ms=(table["p99_sim_s"] * 1e3).round(1),
        ci_ms=(table["p99_sim_ci_s"] * 1e3).round(1),
    ).drop(columns=["p99_twin_s", "p99_sim_s", "p99_sim_ci_s"])
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(f"Capacity of {system.name} (p99 budget {BUDGET_P99_S * 1e3:.0f} ms)\n")
        print(shown.round(3).to_string(index=False))
    print("\n" + str(result.saturation(Budget(p99_s=BUDGET_P99_S))))
    print(f"\nWrote {out / 'capacity.csv'} and {figure}")
    return figure


if __name__ == "__main__":
    main()

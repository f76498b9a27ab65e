"""The full testbed run: predict the real shop, measure it with k6, check the issue's targets.

Usage::

    .venv/bin/python bench/testbed.py                  # every stage (about 15 minutes)
    .venv/bin/python bench/testbed.py --out DIR        # keep every k6 file in DIR
    .venv/bin/python bench/testbed.py --commit         # refresh data/testbed/ from the run

Run it on a quiet machine: the shop, PostgreSQL, Redis and k6 share its cores, and anything
else running shifts both the calibration and the measurement. It prints the comparison table
and, per target, the worst stage:

* predicted saturation throughput within 15 % of the measured one, every stage;
* predicted p99 at 80 % of the measured capacity within 30 % of the measured one;
* the stages ranked the same way by predicted and by measured capacity.

``--commit`` copies what notebook 11 reads into ``data/testbed/``: the calibration, the tables,
the report, the step tests' k6 summaries and the monolith's step-test point stream (the one
small enough to keep, so a test can re-read it with capsim's reader).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "testbed"
KEPT = ("calibration.json", "results.json", "predicted.csv", "measured.csv", "report.html",
        "testbed.png", "monolith_steps.points.json.gz")


def targets(table) -> list[tuple[str, bool, str]]:
    """(target, met, the worst stage's figure)."""
    cap = table["capacity_error"].abs()
    p99 = table["p99_error_at_80pct"].abs()
    reached = bool(table["capacity_reached"].all())
    rank_pred = list(table.sort_values("predicted_capacity_rps")["name"])
    rank_meas = list(table.sort_values("measured_capacity_rps")["name"])
    worst_cap = table.loc[cap.idxmax()]
    worst_p99 = table.loc[p99.idxmax()]
    return [
        ("capacity within 15 %", bool(cap.max() <= 0.15) and reached,
         f"worst {worst_cap['name']}: {worst_cap['capacity_error']:+.1%}"
         + ("" if reached else " (a stage never saturated: its capacity is a lower bound)")),
        ("p99 at 80 % within 30 %", bool(p99.max() <= 0.30),
         f"worst {worst_p99['name']}: {worst_p99['p99_error_at_80pct']:+.1%}"),
        ("same ranking", rank_pred == rank_meas,
         f"predicted {rank_pred}, measured {rank_meas}"),
    ]


def main(argv: list[str] | None = None) -> int:
    from capsim.report.testbed import comparison_table, write_testbed_report
    from capsim.testbed.run import run_testbed

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="keep the run here (default: a temporary folder)")
    p.add_argument("--commit", action="store_true", help="refresh data/testbed/ from the run")
    p.add_argument("--quick", action="store_true", help="the smoke version (three stages)")
    a = p.parse_args(argv)
    out = a.out or Path(tempfile.mkdtemp(prefix="capsim-testbed-"))
    result = run_testbed(out, quick=a.quick,
                         progress=lambda m: print(m, file=sys.stderr, flush=True))
    write_testbed_report(result.table(), result.predicted, result.measured, result.versions,
                         out)
    table = result.table()
    print(comparison_table(table).to_string(index=False))
    print()
    for name, met, detail in targets(table):
        print(f"* {name}: {'met' if met else 'MISSED'} ({detail})")
    print(f"\nwall time {result.versions.get('wall_s', float('nan')):.0f} s; "
          f"{json.dumps(result.versions)}")
    if a.commit:
        DATA.mkdir(parents=True, exist_ok=True)
        for name in KEPT + tuple(f.name for f in out.glob("*_steps.summary.json")):
            if (out / name).exists():
                shutil.copy2(out / name, DATA / name)
        print(f"copied the run into {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

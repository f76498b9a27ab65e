"""The benchmark script still runs (a tiny smoke run; speed is never asserted in tests)."""

import importlib.util
import sys
from pathlib import Path


def test_bench_smoke(capsys):
    path = Path(__file__).resolve().parents[1] / "bench" / "engine.py"
    spec = importlib.util.spec_from_file_location("bench_engine", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    assert bench.main(["--customers", "1000", "--rounds", "1"]) == 0
    table = capsys.readouterr().out
    for workload in ("mm1", "mm4", "tandem3", "web"):
        for simulator in ("capsim", "simpy", "ciw"):
            assert f"| {workload} | {simulator} |" in table

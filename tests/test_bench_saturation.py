"""The saturation benchmark still runs (a tiny smoke run on the M/M/4, whose answer is exact; the
e-commerce system costs its twin most of the time and runs the same code; speed is never
asserted in tests)."""

import pytest


def test_bench_saturation_quick(capsys, load_bench):
    bench = load_bench("saturation")
    assert bench.main(["--quick", "--systems", "mm4"]) == 0
    table = capsys.readouterr().out
    assert "| mm4 | grid (6 points) |" in table
    assert "| mm4 | adaptive, rel_tol 12.0%, reps 2..4 |" in table
    assert "| mm4 | adaptive, rel_tol 6.0%, reps 2..4 |" in table
    assert "| mm4 | adaptive, rel_tol 6.0%, reps 2 |" in table
    # the exact M/M/4 answer is computed, and shown next to every mm4 row
    exact = bench.mm4_exact_users()
    assert f"{exact:,.0f} (" in table
    assert table.count(f"{exact:,.0f} (") == 4
    # at the exact answer, the M/M/4 p99 is the budget
    lam = exact * bench.RATE
    p99 = bench.mmc_response_quantile(0.99, lam, bench.MM4_SERVICE_S, bench.MM4_SERVERS)
    assert p99 == pytest.approx(bench.MM4_BUDGET_S, rel=1e-9)

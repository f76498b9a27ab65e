"""The benchmark script still runs (a tiny smoke run; speed is never asserted in tests)."""

def test_bench_smoke(capsys, load_bench):
    bench = load_bench("engine")
    assert bench.main(["--customers", "1000", "--rounds", "1"]) == 0
    table = capsys.readouterr().out
    for workload in ("mm1", "mm4", "tandem3", "web"):
        for simulator in ("capsim", "simpy", "ciw"):
            assert f"| {workload} | {simulator} |" in table

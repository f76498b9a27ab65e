"""The component benchmark still runs (a tiny smoke run; speed is never asserted in tests)."""

import pytest


def test_bench_components_quick(capsys, load_bench):
    bench = load_bench("components")
    assert bench.main(["--quick"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| variant | what | requests/s | us/request | marginal us |")
    for v in bench.VARIANTS:
        assert f"| {v.key} | {v.title} |" in table
    assert "| base | Service(16 workers) |" in table and "| +0.00 |" in table


def test_bench_components_variants_are_valid_models_that_use_what_they_say(load_bench):
    bench = load_bench("components")
    kinds = {v.key: {type(c).__name__ for c in v.build().components} for v in bench.VARIANTS}
    assert kinds["web"] == {"Delay", "CDN", "Service", "Cache", "Database", "MessageQueue"}
    assert kinds["cache_lru"] == {"Service", "Cache"} and kinds["publish"] == {
        "Service", "MessageQueue"}
    holding = bench.VARIANTS[[v.key for v in bench.VARIANTS].index("holding")].build()
    assert holding.routes()[0].calls[0].holds == 1


def test_bench_components_rejects_unknown_variants(load_bench):
    bench = load_bench("components")
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--only", "base,nosuch"])

"""The one judgement every validation test makes: does theory lie inside the simulation's CI?

The interval comes from independent replications (never one seed's point estimate), and a
test that cannot decide (a wide interval) fails too, so a too-short run cannot pass by luck.
"""

from __future__ import annotations

from capsim.experiment import mean_ci

CONFIDENCE = 0.99


def assert_agrees(samples, theory: float, label: str, *, max_rel_half_width: float = 0.05,
                  confidence: float = CONFIDENCE) -> None:
    mean, half = mean_ci(samples, confidence)
    assert half <= max_rel_half_width * abs(theory), (
        f"{label}: {confidence:.0%} CI half-width {half:.4g} is wider than "
        f"{max_rel_half_width:.0%} of theory {theory:.4g}; the run cannot decide"
    )
    assert abs(mean - theory) <= half, (
        f"{label}: simulated {mean:.5g} +- {half:.3g} ({confidence:.0%} CI) excludes theory "
        f"{theory:.5g} (off by {100 * (mean / theory - 1):+.2f}%)"
    )


def column(table, key_col: str, key: str, metric: str):
    """Per-replication values of ``metric`` in the row ``key_col == key``."""
    return table.loc[table[key_col] == key, metric].to_numpy()

"""capsim.report: analytic curves against closed forms, tables from runs, plots that draw."""

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

import capsim as cs
from capsim import report

matplotlib.use("Agg")  # no display in tests; switching before any figure is drawn is enough

S = 0.010


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def one_queue(servers=1, service=None):
    svc = cs.Service("q", servers, service or cs.Exponential(S))
    return cs.System([svc], [cs.Flow("f", 1.0, [cs.Call("q")])])


@pytest.fixture(scope="module")
def small_reps():
    """Two tiny replicated runs of M/M/1 at 50% and 80% (fast; only shapes are checked)."""
    out = {}
    for rho in (0.5, 0.8):
        rate = rho / S
        out[rho] = cs.replicate(one_queue(), cs.OpenWorkload(1, rate), 3, seed=5,
                                duration_s=2_000 / rate, warmup_s=5, processes=1)
    return out


# -- station_curve ----------------------------------------------------------------------------

def test_mm1_curve_matches_closed_forms():
    rhos = np.array([0.0, 0.25, 0.5, 0.8, 0.95])
    c = report.station_curve(rhos, mean_service_s=S)
    np.testing.assert_allclose(c["mean_s"], S / (1 - rhos), rtol=1e-12)
    np.testing.assert_allclose(c["mean_wait_s"], rhos * S / (1 - rhos), rtol=1e-12, atol=1e-15)
    # M/M/1 sojourn is Exp(mu - lambda): p99 = ln(100) / (mu - lambda)
    np.testing.assert_allclose(c["p99_s"], math.log(100) * S / (1 - rhos), rtol=1e-9)
    np.testing.assert_allclose(c["arrival_rate_per_s"], rhos / S)
    assert c["exact"].all() and c["stable"].all()


def test_md1_and_bursty_mg1_follow_pollaczek_khinchine():
    rhos = np.array([0.5, 0.8])
    for cv in (0.0, 2.0):
        c = report.station_curve(rhos, mean_service_s=S, cv=cv)
        wq = rhos * S / (1 - rhos) * (1 + cv**2) / 2
        np.testing.assert_allclose(c["mean_wait_s"], wq, rtol=1e-12)
        np.testing.assert_allclose(c["mean_s"], wq + S, rtol=1e-12)
        assert c["p99_s"].isna().all()  # no closed form: not invented
        assert c["exact"].all()


def test_mm2_curve_matches_closed_form():
    # M/M/2: Wq = rho^2 S / (1 - rho^2)
    rhos = np.array([0.3, 0.6, 0.9])
    c = report.station_curve(rhos, servers=2, mean_service_s=S)
    np.testing.assert_allclose(c["mean_wait_s"], rhos**2 * S / (1 - rhos**2), rtol=1e-10)


def test_multi_server_non_exponential_is_flagged_approximate():
    c = report.station_curve([0.5], servers=4, mean_service_s=S, cv=2.0)
    exp = report.station_curve([0.5], servers=4, mean_service_s=S)
    assert not c["exact"].iloc[0]
    assert c["mean_wait_s"].iloc[0] == pytest.approx(2.5 * exp["mean_wait_s"].iloc[0])


def test_unstable_utilization_is_infinite_not_finite():
    c = report.station_curve([1.0, 1.2], mean_service_s=S)
    assert np.isinf(c[["mean_wait_s", "mean_s", "p99_s"]].to_numpy()).all()
    assert not c["stable"].any()


@pytest.mark.parametrize("bad", [{"servers": 0}, {"mean_service_s": 0.0}, {"cv": -1.0}])
def test_curve_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        report.station_curve([0.5], **bad)


def test_curve_rejects_negative_or_nan_utilization():
    for rho in (-0.1, float("nan")):
        with pytest.raises(ValueError):
            report.station_curve([rho])


# -- burst_headroom ---------------------------------------------------------------------------

def test_burst_headroom_mm1_closed_forms():
    rhos = np.array([0.5, 0.7, 0.8, 0.9])
    h = report.burst_headroom(rhos, burst=0.2, mean_service_s=S)
    np.testing.assert_allclose(h["after_burst"], 1.2 * rhos)
    np.testing.assert_allclose(h["headroom_used"], 0.2 * rhos / (1 - rhos))
    # d/drho S / (1 - rho) = S / (1 - rho)^2, per percentage point
    np.testing.assert_allclose(h["slope_s_per_point"], S / (1 - rhos) ** 2 / 100, rtol=1e-5)
    stable = h["stable_after"].to_numpy()
    np.testing.assert_array_equal(stable, [True, True, True, False])
    np.testing.assert_allclose(h["slowdown"][stable], (1 - rhos[stable]) / (1 - 1.2 * rhos[stable]),
                               rtol=1e-12)
    assert np.isinf(h["mean_after_s"].iloc[-1]) and np.isinf(h["slowdown"].iloc[-1])


def test_burst_headroom_zero_burst_changes_nothing():
    h = report.burst_headroom([0.6], burst=0.0, mean_service_s=S)
    assert h["slowdown"].iloc[0] == pytest.approx(1.0)
    assert h["headroom_used"].iloc[0] == 0.0
    with pytest.raises(ValueError):
        report.burst_headroom([0.6], burst=-0.1)


# -- tables from runs ---------------------------------------------------------------------------

def test_replication_points_and_compare_to_theory(small_reps):
    pts = report.replication_points(small_reps)
    assert list(pts.columns) == ["utilization", "metric", "mean", "half_width", "ci_low",
                                 "ci_high"]
    assert sorted(pts["utilization"].unique()) == [0.5, 0.8]
    assert set(pts["metric"]) == {"mean_s", "p99_s"}
    np.testing.assert_allclose(pts["ci_high"] - pts["mean"], pts["half_width"])

    wait = report.replication_points(small_reps, ["mean_wait_s"], table="components")
    assert set(wait["metric"]) == {"mean_wait_s"} and len(wait) == 2

    # 0.8 built as 160 / 200 must still match the simulated point at 0.8
    curve = report.station_curve([i / 200 for i in range(191)], mean_service_s=S)
    cmp = report.compare_to_theory(pts, curve)
    assert cmp["theory"].notna().all()
    row = cmp[(cmp["utilization"] == 0.8) & (cmp["metric"] == "mean_s")].iloc[0]
    assert row["theory"] == pytest.approx(S / 0.2)
    assert row["rel_error"] == pytest.approx(row["mean"] / row["theory"] - 1)
    assert row["inside_ci"] == (row["ci_low"] <= row["theory"] <= row["ci_high"])


def test_replication_points_needs_a_name_when_ambiguous():
    two = cs.System([cs.Service("a", 1, cs.Exponential(S)), cs.Service("b", 1, cs.Exponential(S))],
                    [cs.Flow("f", 1.0, [cs.Call("a"), cs.Call("b")])])
    reps = cs.replicate(two, cs.OpenWorkload(1, 20), 2, seed=1, duration_s=50, processes=1)
    with pytest.raises(ValueError, match="name="):
        report.replication_points({0.2: reps}, ["mean_wait_s"], table="components")
    pts = report.replication_points({0.2: reps}, ["mean_wait_s"], table="components", name="b")
    assert len(pts) == 1


def test_littles_law_table_on_a_run():
    system = cs.System(
        [cs.Service("web", 2, cs.Exponential(0.02)), cs.Service("db", 1, cs.Exponential(0.005))],
        [cs.Flow("read", 0.7, [cs.Call("web")]),
         cs.Flow("write", 0.3, [cs.Call("web"), cs.Call("db")])],
    )
    run = cs.simulate(system, cs.OpenWorkload(1, 50), duration_s=400, warmup_s=20, seed=3)
    t = report.littles_law_table(run)
    assert list(t["name"]) == ["web", "db", "whole system"]
    np.testing.assert_allclose(t["lambda_w"], t["throughput_per_s"] * t["mean_time_s"])
    comp = run.components().set_index("component")
    assert t["L"].iloc[-1] == pytest.approx(comp["mean_in_system"].sum())
    # Little's law: measured independently, agree up to window-edge effects
    assert (t["rel_diff"].abs() < 0.02).all()


# -- plots ------------------------------------------------------------------------------------

def _errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_latency_vs_utilization_draws_lines_points_and_alarm(small_reps):
    curve = report.station_curve([i / 100 for i in range(96)], mean_service_s=S)
    pts = report.replication_points(small_reps)
    ax = report.latency_vs_utilization(curve, pts, alarm=0.8)
    # two analytic lines + the alarm line; two sets of points with error bars
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]) == 2
    assert len(_errorbars(ax)) == 2
    assert len(ax.patches) == 1  # the shaded region past the alarm
    assert "ms" in ax.get_ylabel()
    # plotted in ms: the curve at 50% is 20 ms
    line = ax.get_lines()[0]
    assert np.interp(0.5, line.get_xdata(), line.get_ydata()) == pytest.approx(20.0)
    assert len(ax.get_legend().get_texts()) == 5


def test_latency_vs_utilization_uses_given_axes_and_skips_alarm():
    fig, (a, b) = plt.subplots(1, 2)
    curve = report.station_curve([0.1, 0.5, 0.9], mean_service_s=S)
    out = report.latency_vs_utilization(curve, metrics=["mean_s"], alarm=None, ax=b, unit="s")
    assert out is b and not a.get_lines()
    assert len(b.get_lines()) == 1 and not b.patches
    assert b.get_lines()[0].get_ydata()[1] == pytest.approx(0.02)


def test_compare_curves_one_line_per_label_and_matching_points(small_reps):
    grid = [i / 100 for i in range(96)]
    curves = {f"cv = {cv}": report.station_curve(grid, mean_service_s=S, cv=cv)
              for cv in (0.0, 1.0, 2.0)}
    pts = {"cv = 1.0": report.replication_points(small_reps, ["mean_wait_s"], table="components")}
    ax = report.compare_curves(curves, pts, y="mean_wait_s", alarm=0.8)
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]) == 3
    bars = [c for c in _errorbars(ax) if len(c.lines[0].get_xdata())]
    assert len(bars) == 1
    assert bars[0].lines[0].get_color() == ax.get_lines()[1].get_color()  # same colour as cv=1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == list(curves) and "simulated (95% CI)" in labels
    assert ax.get_ylabel() == "mean wait (ms)"


def test_compare_curves_skips_infinite_values():
    curves = {"a": report.station_curve([0.5, 0.9, 1.0, 1.1], mean_service_s=S)}
    ax = report.compare_curves(curves)
    assert np.isfinite(ax.get_lines()[0].get_ydata()).all()
    assert len(ax.get_lines()[0].get_xdata()) == 2


def test_littles_law_plot_two_bars_per_row():
    t = pd.DataFrame({"name": ["web", "db", "whole system"], "L": [3.0, 1.0, 4.0],
                      "lambda_w": [3.01, 0.99, 4.0]})
    ax = report.littles_law_plot(t)
    assert len(ax.patches) == 6
    assert [x.get_text() for x in ax.get_xticklabels()] == list(t["name"])


def test_burst_headroom_plot_one_stretch_per_start_and_unstable_label():
    curve = report.station_curve([i / 100 for i in range(97)], mean_service_s=S)
    h = report.burst_headroom([0.5, 0.8, 0.9], mean_service_s=S)
    ax = report.burst_headroom_plot(curve, h)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "mean latency, theory"
    assert labels[1:4] == ["50% → 60%: 20 → 25 ms (×1.2)", "80% → 96%: 50 → 250 ms (×5.0)",
                           "90% → 108%: past capacity, unstable"]
    stretch = next(ln for ln in ax.get_lines() if ln.get_label().startswith("80%"))
    assert stretch.get_xdata()[0] == 0.8 and stretch.get_xdata()[-1] == pytest.approx(0.96)
    assert stretch.get_ydata()[-1] == pytest.approx(250.0)
    assert len([t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]) == 1
    assert ax.get_ylim()[1] == pytest.approx(300.0)  # the unstable burst does not blow it up


def test_unknown_unit_is_rejected():
    with pytest.raises(ValueError, match="unit"):
        report.latency_vs_utilization(report.station_curve([0.5]), unit="min")

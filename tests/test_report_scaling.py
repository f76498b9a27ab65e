"""capsim.report's scaling figures (autoscaling, effective capacity) and the budget words, drawn
from finished results by the thin ``plot`` methods of capsim.scaling."""

import matplotlib
import matplotlib.pyplot as plt
import pytest

import capsim as cs
from capsim import scaling as sc
from capsim.report.scaling import budget_text

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_budget_words_are_the_same_from_scaling_and_report():
    budget = cs.Budget(p99_s=0.2, error_rate=0.01)
    assert sc.budget_text(budget) == budget_text(budget) == "p99 \u2264 200 ms, errors \u2264 1.0%"


def test_effective_capacity_figure_has_a_line_per_family():
    cat = sc.load_catalogue()
    fig = sc.plot_effective_capacity(sc.effective_capacity(cat))
    left, right = fig.axes
    families = {line.get_label() for line in right.get_lines()}
    assert families == set(cat.families)
    assert "linear (no contention)" in {line.get_label() for line in left.get_lines()}


def test_autoscale_figure_shades_the_boot_and_labels_the_clock():
    box = sc.Instance("box-4", "test", 4, 1.0, 8.0, 0.36)
    system = cs.System([cs.Service("web", servers=1, service_time=cs.Exponential(0.1))],
                       [cs.Flow("page", 1.0, [cs.Call("web")])])
    scaler = cs.Autoscaler("web", target_utilization=0.6, min_instances=2, max_instances=6,
                           interval_s=60, provision_s=120, cooldown_s=180)
    load = cs.OpenWorkload(1, 30.0, profile=cs.Spike(600, 600, 3.0))
    res = sc.simulate_autoscaling(system, "web", sc.Horizontal(box, 2, sigma=0.0, kappa=0.0),
                                  scaler, load, duration_s=1800, seed=3, window_s=300,
                                  budget=cs.Budget(p99_s=1.0))
    fig = res.plot(start_hour=9.0)
    instances, p99, cost = fig.axes[:3]
    labels = instances.get_legend_handles_labels()[1]
    assert "instances paid for" in labels and "scale-out lag (detect + boot)" in labels
    assert "budget 1000 ms" in p99.get_legend_handles_labels()[1]
    assert cost.get_xlabel() == "time of day"
    assert cost.xaxis.get_major_formatter()(9.5, 0) == "09:30"

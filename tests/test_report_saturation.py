"""capsim.report.saturation: the hockey stick and the utilization wall draw what they claim."""

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

import capsim as cs
from capsim import report

matplotlib.use("Agg")

E = cs.Exponential
RATE = 0.05  # requests per user per second
# db (1 server, 10 ms) is full at 100 requests/s = 2,000 users; app (4 x 20 ms) at 4,000
USERS = [500, 1000, 1500, 1800, 2500]
BUDGET = cs.Budget(p99_s=0.250)  # M/M/1 db p99: ~61 ms at 500 users, ~460 ms at 1,800


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def small_sweep():
    system = cs.System([cs.Service("app", 4, E(0.02)), cs.Service("db", 1, E(0.01))],
                       [cs.Flow("f", 1.0, [cs.Call("app"), cs.Call("db")])])
    loads = cs.growth(cs.OpenWorkload(users=500, requests_per_user_s=RATE), users=USERS)
    return cs.sweep(system, loads, replications=3, seed=3, duration_s=60, warmup_s=5,
                    processes=1, store=None, progress=False)


def _line(ax, label_start: str):
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith(label_start)]
    assert len(lines) == 1, [ln.get_label() for ln in ax.get_lines()]
    return lines[0]


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_hockey_stick_draws_percentiles_bands_budget_saturation_and_unstable(small_sweep):
    sat = small_sweep.saturation(BUDGET)
    assert 500 < sat.users < 1800  # the fixture is built so the budget breaks inside

    ax = report.hockey_stick(small_sweep, BUDGET, sat)

    # one line and one CI band per percentile; unstable points never drawn as numbers
    for name in ("p50 (", "p95 (", "p99 ("):
        x, y = _line(ax, name).get_data()
        assert list(x) == USERS[:-1]
        assert np.all(np.isfinite(y)) and np.all(y > 0)
    assert len(_bands(ax)) == 3
    p99 = small_sweep.metric("p99_s")
    x, y = _line(ax, "p99 (").get_data()
    assert np.allclose(y, p99["mean"][:-1] * 1e3)  # milliseconds
    # the bands are the CIs: their vertical extent spans ci_low..ci_high of each point
    band = _bands(ax)[2].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(p99["ci_low"][:-1].min() * 1e3)

    budget = _line(ax, "p99 budget")
    assert np.allclose(budget.get_ydata(), 250.0)
    marker = _line(ax, "budget breaks")
    assert np.allclose(marker.get_xdata(), sat.users)
    spans = [p for p in ax.patches if isinstance(p, Rectangle)
             and math.isclose(p.get_x(), sat.users_low)]
    assert len(spans) == 1 and spans[0].get_width() == pytest.approx(
        sat.users_high - sat.users_low)

    unstable = _line(ax, "no steady state")
    assert list(unstable.get_xdata()) == [2500]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 250


def test_hockey_stick_without_budget_or_saturation(small_sweep):
    ax = report.hockey_stick(small_sweep)
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert not any("budget" in lab for lab in labels)
    assert len(_bands(ax)) == 3


def test_utilization_vs_users_shows_the_wall_and_who_hits_it_first(small_sweep):
    ax = report.utilization_vs_users(small_sweep)

    db, app = _line(ax, "db"), _line(ax, "app")
    # busiest first, and each names the users at which it reaches 100%: 2,000 and 4,000
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.index(db.get_label()) < labels.index(app.get_label())
    assert "100% at 2,000 users" in db.get_label()
    assert "100% at 4,000 users" in app.get_label()
    # measured utilization (%) at the stable points only, near offered load
    x, y = db.get_data()
    assert list(x) == USERS[:-1]
    assert np.allclose(y, np.array(USERS[:-1]) * RATE * 0.01 * 100, rtol=0.1)
    assert len(_bands(ax)) == 2  # one CI band per component

    assert np.allclose(_line(ax, "100%").get_ydata(), 100)
    assert np.allclose(_line(ax, "80%").get_ydata(), 80)
    assert list(_line(ax, "no steady state").get_xdata()) == [2500]
    # offered load (dotted) runs on past the wall at the unstable point: 125% for db
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"
              and ln.get_color() == db.get_color()]
    assert len(dotted) == 1 and dotted[0].get_ydata()[-1] == pytest.approx(125.0)
    assert ax.get_ylim()[1] > 125


def test_axes_are_reused_when_given(small_sweep):
    fig, (a, b) = plt.subplots(1, 2)
    assert report.hockey_stick(small_sweep, BUDGET, ax=a) is a
    assert report.utilization_vs_users(small_sweep, ax=b) is b
    assert len(fig.axes) == 2


def test_hockey_stick_says_when_there_is_no_ci():
    system = cs.System([cs.Service("app", 4, E(0.02)), cs.Service("db", 1, E(0.01))],
                       [cs.Flow("f", 1.0, [cs.Call("app"), cs.Call("db")])])
    loads = cs.growth(cs.OpenWorkload(users=500, requests_per_user_s=RATE), users=USERS)
    one = cs.sweep(system, loads, replications=1, seed=3, duration_s=60, warmup_s=5,
                   processes=1, store=None, progress=False)
    sat = one.saturation(BUDGET)
    assert 500 < sat.users < 1800
    label = _line(report.hockey_stick(one, BUDGET, sat), "budget breaks").get_label()
    assert "no CI from one replication" in label and "95% CI" not in label

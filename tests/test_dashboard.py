"""The Grafana-like dashboard: one panel per metric, thresholds, firing spans (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import capsim as cs  # noqa: E402
from capsim.monitor import Alert  # noqa: E402
from capsim.report.dashboard import dashboard  # noqa: E402

T = 60.0 * np.arange(1, 11)


def rows(name, metric, values):
    return pd.DataFrame({"time_s": T, "name": name, "metric": metric, "value": values})


TS = pd.concat([
    rows("db", "utilization", [0.5, 0.9, 0.9, 0.9, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9]),
    rows("app", "utilization", [0.3] * 10),
    rows("browse", "p99_s", [0.1, 0.1, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    rows("checkout", "p99_s", [0.1] * 10),
], ignore_index=True)
CPU = Alert("utilization", "db", ">", 0.8, for_s=60)  # fires 180-300 and 480-end
SLOW = [Alert("p99_s", f, ">", 0.2, for_s=0, name="slow") for f in ("browse", "checkout")]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _hlines(ax):
    return [ln for ln in ax.get_lines() if np.ptp(ln.get_ydata()) == 0 and
            len(ln.get_ydata()) == 2 and ln.get_xdata()[0] == 0]


def test_one_panel_per_metric_with_lines_thresholds_and_spans():
    fig = dashboard(TS, [("db", "utilization"), (["browse", "checkout"], "p99_s"),
                         ("app", "utilization", "the app tier")],
                    alerts=[CPU, SLOW], thresholds={"utilization": 1.0,
                                                    ("browse", "p99_s"): [0.15, 0.25]})
    db, p99, app = fig.axes
    assert len(fig.axes) == 3
    # db: its series, the 100% reference line, CPU's threshold (80%)
    assert len(db.get_lines()) == 3 and len(_hlines(db)) == 2
    assert sorted(ln.get_ydata()[0] for ln in _hlines(db)) == [80.0, 100.0]
    # p99: two series, two reference lines, one threshold per slow instance (in ms)
    assert len(p99.get_lines()) == 6
    assert sorted(ln.get_ydata()[0] for ln in _hlines(p99)) == [150, 200, 200, 250]
    assert app.get_title(loc="left") == "the app tier" and len(app.get_lines()) == 2
    # spans on every panel: CPU fired twice, "slow" once
    for ax in fig.axes:
        assert len(ax.patches) == 3
    # the series are drawn in display units
    assert max(db.get_lines()[0].get_ydata()) == pytest.approx(90.0)
    assert max(p99.get_lines()[0].get_ydata()) == pytest.approx(300.0)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["firing: db utilization > 0.8 for 1 min", "firing: slow"]
    assert [t.get_text() for t in p99.get_legend().get_texts()] == ["browse", "checkout"]


def test_firing_span_reaches_the_end_when_unresolved():
    fig = dashboard(TS, [("db", "utilization")], alerts=[CPU])
    (ax,) = fig.axes
    spans = sorted(p.get_x() for p in ax.patches)
    assert spans == [180.0, 480.0]
    last = max(ax.patches, key=lambda p: p.get_x())
    assert last.get_x() + last.get_width() == pytest.approx(600.0)
    assert ax.get_xlim() == (0.0, 600.0)  # from the start of the first window
    assert ax.xaxis.get_major_formatter()(3600 + 5 * 60) == "1:05"


def test_no_alerts_no_spans_and_a_clock():
    fig = dashboard(TS, [("db", "utilization")], clock=lambda s: f"{s / 60:.0f}'")
    (ax,) = fig.axes
    assert not ax.patches and not fig.legends and len(ax.get_lines()) == 1
    assert ax.xaxis.get_major_formatter()(120) == "2'"
    assert all(isinstance(ln, Line2D) for ln in ax.get_lines())


def test_bad_panels_say_what_exists():
    with pytest.raises(cs.ModelError, match=r"no station or flow \['pg'\].*it has: db, app"):
        dashboard(TS, [("pg", "utilization")])
    with pytest.raises(cs.ModelError, match="'db' has no metric 'p99_s'; it has: utilization"):
        dashboard(TS, [("db", "p99_s")])
    with pytest.raises(cs.ModelError, match="at least one"):
        dashboard(TS, [])
    with pytest.raises(cs.ModelError, match="must be an Alert or a non-empty list"):
        dashboard(TS, [("db", "utilization")], alerts=["cpu"])

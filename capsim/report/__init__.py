"""Reporting: the tables and figures that turn runs and formulas into answers.

``tables`` computes (analytic curves, simulated points with CIs, Little's-law checks);
``plots`` draws them with matplotlib and returns the Axes; ``saturation`` draws sweeps
(hockey stick, utilization against users); ``review`` renders a finished capacity review
(``capsim.experiment.review.capacity_review`` runs it); ``scaling``, ``autoscaling`` and
``usl`` draw the figures behind ``ComparisonResult.plot``, ``AutoscaleResult.plot``,
``plot_effective_capacity`` and ``USLFit.plot``. Reporting is given finished results: it
imports nothing from ``capsim.experiment``.
"""

from capsim.report.plots import (
    burst_headroom_plot,
    compare_curves,
    latency_vs_utilization,
    littles_law_plot,
    shade_alarm,
)
from capsim.report.tables import (
    burst_headroom,
    compare_to_theory,
    littles_law_table,
    replication_points,
    station_curve,
)

__all__ = [
    "burst_headroom",
    "burst_headroom_plot",
    "compare_curves",
    "compare_to_theory",
    "latency_vs_utilization",
    "littles_law_plot",
    "littles_law_table",
    "replication_points",
    "shade_alarm",
    "station_curve",
]
from capsim.report.saturation import hockey_stick, utilization_vs_users  # noqa: E402

__all__ += ["hockey_stick", "utilization_vs_users"]
from capsim.report.dashboard import dashboard  # noqa: E402

__all__ += ["dashboard"]

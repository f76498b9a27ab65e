"""Calibration: turn real measurements into model inputs.

* :func:`fit_service_time` fits exponential, gamma, log-normal and Weibull service times to
  measured durations and hands back the best as a capsim distribution, with the comparison table;
  :func:`read_durations` loads the durations from a CSV file.
* :func:`read_k6_summary`, :func:`read_k6_stream` and :func:`read_locust_history` read the
  outputs of real load tests (k6's summaries, k6's ``--out json`` point stream, Locust's
  ``--csv`` stats history) into one tidy table: one row per load step with concurrency, offered
  arrival rate (open loops), throughput, latency percentiles and error rate, ready for
  :func:`fit_usl`; :func:`read_load_test` tells the formats apart by content.
* :func:`fit_usl` fits the Universal Scalability Law to throughput measured at several
  concurrencies (:class:`USLFit`: sigma, kappa, lambda with intervals, the peak); the law itself
  is :mod:`capsim.analytic.usl`. ``capsim.analytic.usl.fit`` is the same function.
* :mod:`capsim.calibrate.testbed` builds the testbed shop's model from what its calibration
  runs measured (CPU per process group, statements, hit counters): service demands by the
  utilization law, the cores as a shared ``Host``.
"""

from capsim.calibrate.fit import FAMILIES, FIT_COLUMNS, FitReport, fit_service_time, read_durations
from capsim.calibrate.k6 import read_k6_stream, read_k6_summary
from capsim.calibrate.loadtest import LOADTEST_COLUMNS, read_load_test
from capsim.calibrate.locust import read_locust_history
from capsim.calibrate.usl import USLFit
from capsim.calibrate.usl import fit as fit_usl
from capsim.calibrate.weibull import Weibull

__all__ = [
    "FAMILIES",
    "FIT_COLUMNS",
    "LOADTEST_COLUMNS",
    "FitReport",
    "USLFit",
    "Weibull",
    "fit_service_time",
    "fit_usl",
    "read_durations",
    "read_k6_stream",
    "read_k6_summary",
    "read_load_test",
    "read_locust_history",
]

"""Real systems to measure on 127.0.0.1, for the real load tools.

* :class:`StubServer`: an HTTP service with ``workers`` parallel workers, a FIFO queue of known
  capacity and service times drawn from a capsim distribution, so that what k6 and Locust
  measure on it can be checked against the M/G/c/K model of the same numbers.
* The testbed shop (``capsim testbed``): ``servers`` starts PostgreSQL, Redis and gunicorn from
  their wheels and always stops them; ``shop`` is the WSGI app (product page, search,
  checkout; an index and a cache-aside switched per stage); ``load`` writes and runs the k6
  scripts; ``run`` calibrates, predicts and measures each stage (the model itself is built by
  ``capsim.calibrate.testbed``; the report is drawn by ``capsim.report.testbed``).
"""

from capsim.testbed.stub import StubServer

__all__ = ["StubServer"]

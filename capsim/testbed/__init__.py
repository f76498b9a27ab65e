"""Real systems to measure: servers on 127.0.0.1 whose truth is known, for the real load tools.

* :class:`StubServer`: an HTTP service with ``workers`` parallel workers, a FIFO queue of known
  capacity and service times drawn from a capsim distribution, so that what k6 and Locust
  measure on it can be checked against the M/G/c/K model of the same numbers.
"""

from capsim.testbed.stub import StubServer

__all__ = ["StubServer"]

"""Re-record ``service_times.csv``: 2,000 service times of the stub service, measured alone.

One client sends one request at a time to a ``capsim.testbed.StubServer`` with the
configuration the load-test files were recorded on (8 workers, LogNormal(20 ms, cv 1), queue of
48), so no request ever waits: each duration is the time a worker was held, measured by the
server around its work (``StubServer.service_times_s``), as an APM agent or a database's own
statement statistics would measure it. Takes about a minute::

    .venv/bin/python data/measurements/record_service_times.py
"""

from __future__ import annotations

import platform
import urllib.request
from datetime import date
from pathlib import Path

import capsim as cs
from capsim.testbed import StubServer

HERE = Path(__file__).resolve().parent
N = 2000
SEED = 20261201


def main() -> None:
    with StubServer(workers=8, service_time=cs.LogNormal(0.020, 1.0), queue_capacity=48,
                    seed=SEED) as stub:
        for _ in range(N):
            with urllib.request.urlopen(f"{stub.url}/items", timeout=10) as answer:
                answer.read()
        times_ms = [t * 1e3 for t in stub.service_times_s[:N]]
    lines = [
        f"# MEASURED on {date.today()} by data/measurements/record_service_times.py: {N} "
        "service times of capsim.testbed.StubServer(workers=8, service_time=LogNormal(0.020, "
        f"1.0), queue_capacity=48, seed={SEED}) on 127.0.0.1, one request at a time, timed by "
        "the server around each request's work (Python "
        f"{platform.python_version()}); in ms. See data/measurements/README.md.",
        "duration_ms",
        *(f"{t:.3f}" for t in times_ms),
    ]
    (HERE / "service_times.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

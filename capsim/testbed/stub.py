"""A real HTTP server on 127.0.0.1 whose queueing is known.

Real load-test tools (k6, Locust) need something real to load. A service whose truth is known
lets their files be checked against theory: ``workers`` requests are served at once, each
holding its worker for a service time drawn from a capsim distribution (a sleep: the server
waits, it does not burn the CPU, so the load generator on the same machine is not slowed); at
most ``queue_capacity`` more wait for a worker, first come first served (a freed worker is
handed straight to the oldest waiting request, never taken by a newcomer); one more is refused
at once with ``503``, a fast failure. That is the M/G/c/K station capsim models as
``Service(servers=workers, queue_capacity=queue_capacity)``.

Every path answers ``200 ok`` after its service; ``/health`` answers at once. The server keeps
connections alive (HTTP/1.1), as browsers and load tools expect, and records each request's
own service time, measured around the sleep, in :attr:`StubServer.service_times_s`.

Run it alone: ``python -m capsim.testbed.stub --workers 8 --mean-ms 20 --cv 1 --queue 48``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from capsim.errors import check_number, fail

__all__ = ["StubServer"]


class StubServer:
    """``workers`` parallel workers, FIFO queue of ``queue_capacity`` (``None``: unbounded).

    Use as a context manager (the server runs in a background thread and is stopped on exit)::

        with StubServer(workers=4, service_time=cs.LogNormal(0.02, 1.0)) as stub:
            run_k6(stub.url)
    """

    def __init__(self, workers: int = 8, service_time: Any = None,
                 queue_capacity: int | None = None, seed: int = 0, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        from capsim.dists import Exponential

        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise fail("StubServer", "workers", "must be an int >= 1", workers)
        if queue_capacity is not None and (isinstance(queue_capacity, bool)
                                           or not isinstance(queue_capacity, int)
                                           or queue_capacity < 0):
            raise fail("StubServer", "queue_capacity", "must be an int >= 0 or None",
                       queue_capacity)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise fail("StubServer", "host", "must be a loopback address", host)
        check_number("StubServer", "port", port, strict=False)
        self.workers = workers
        self.service_time = service_time if service_time is not None else Exponential(0.01)
        if not hasattr(self.service_time, "sample"):
            raise fail("StubServer", "service_time", "must be a capsim distribution",
                       service_time)
        self.queue_capacity = queue_capacity
        self.service_times_s: list[float] = []
        self.served = 0
        self.rejected = 0
        self._rng = np.random.default_rng(seed)
        self._draws = iter(())
        self._lock = threading.Lock()
        self._free = workers  # idle workers
        self._waiting: deque[threading.Event] = deque()  # requests queued for one, oldest first
        self._present = 0  # requests in service or waiting
        self._server = _QuietServer((host, int(port)), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StubServer:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- one request ----------------------------------------------------------------------------
    def _draw(self) -> float:
        with self._lock:
            try:
                return next(self._draws)
            except StopIteration:
                self._draws = iter(self.service_time.sample(self._rng, 4096).tolist())
                return next(self._draws)

    def admit(self) -> bool:
        """Take a place in service or in the queue; ``False``: the queue is full."""
        with self._lock:
            limit = None if self.queue_capacity is None else self.workers + self.queue_capacity
            if limit is not None and self._present >= limit:
                self.rejected += 1
                return False
            self._present += 1
            return True

    def serve(self) -> None:
        """Wait for a worker (first come, first served), hold it for one service time, hand
        it to the oldest waiting request."""
        demand = self._draw()
        with self._lock:
            turn = None
            if self._free > 0 and not self._waiting:
                self._free -= 1
            else:
                turn = threading.Event()
                self._waiting.append(turn)
        if turn is not None:
            turn.wait()  # set by the request that hands its worker over
        try:
            start = time.perf_counter()
            time.sleep(demand)
            took = time.perf_counter() - start
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().set()  # the worker goes straight to the next
                else:
                    self._free += 1
                self._present -= 1
                self.served += 1
                self.service_times_s.append(took)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a load tool stopping) is normal, not an error; a
    load tool opens many connections at once (the default backlog of 5 made some wait 1 s)."""

    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (the http.server hook's name)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.startswith("/health"):
                self._answer(200, b"ok\n")
            elif not stub.admit():
                self._answer(503, b"queue full\n")
            else:
                stub.serve()
                self._answer(200, b"ok\n")

        do_POST = do_GET  # noqa: N815
        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args) -> None:  # quiet: a load test is thousands of lines
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    from capsim.dists import LogNormal

    p = argparse.ArgumentParser(prog="python -m capsim.testbed.stub", description=__doc__)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--mean-ms", type=float, default=20.0)
    p.add_argument("--cv", type=float, default=1.0)
    p.add_argument("--queue", type=int, default=None, help="queue capacity (default unbounded)")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    stub = StubServer(a.workers, LogNormal(a.mean_ms / 1e3, a.cv), a.queue, a.seed, a.port)
    print(f"stub on {stub.url}: {a.workers} workers, LogNormal({a.mean_ms} ms, cv {a.cv}), "
          f"queue {a.queue}", flush=True)
    stub.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()

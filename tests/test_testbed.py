"""capsim.testbed.StubServer is the station it claims to be: `workers` at once, a first come,
first served queue of `queue_capacity`, a fast 503 beyond it, service times from its
distribution (timed by the server), and bad configurations refused with the field named."""

import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import capsim as cs
from capsim.testbed import StubServer


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_one_worker_serves_in_arrival_order_and_refuses_past_the_queue():
    # one worker, 250 ms a request, room for 3 waiting: 5 requests 30 ms apart -> the first is
    # served, three wait, the fifth finds 1 + 3 present and is refused at once (130 ms before
    # the first is done: margins wide enough for a machine busy with other tests)
    finished: list[tuple[int, int, float]] = []
    with StubServer(workers=1, service_time=cs.Deterministic(0.250), queue_capacity=3) as stub:
        def send(i: int) -> None:
            status = get(f"{stub.url}/r{i}")
            finished.append((i, status, time.perf_counter()))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.030)
        for t in threads:
            t.join(timeout=10)
        assert (stub.served, stub.rejected) == (4, 1)
    by_time = sorted(finished, key=lambda f: f[2])
    assert [s for _, s, _ in by_time] == [503, 200, 200, 200, 200]
    assert [i for i, s, _ in by_time if s == 200] == [0, 1, 2, 3]  # first come, first served
    assert by_time[0][0] == 4


def test_service_times_follow_the_distribution_and_workers_run_in_parallel():
    with StubServer(workers=4, service_time=cs.Exponential(0.010), seed=3) as stub:
        start = time.perf_counter()
        threads = [threading.Thread(target=lambda: [get(f"{stub.url}/x") for _ in range(50)])
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        wall = time.perf_counter() - start
        times = np.array(stub.service_times_s)
    assert times.size == 200
    # 200 exponential draws of mean 10 ms: their mean within 4 standard errors (+ the sleep's
    # overshoot, a fraction of a millisecond)
    assert 0.010 * (1 - 4 / np.sqrt(200)) < times.mean() < 0.010 * (1 + 4 / np.sqrt(200)) + 0.001
    assert wall < times.sum() / 2  # four at once, not one after another


def test_health_answers_at_once_and_bad_configurations_name_the_field():
    with StubServer(workers=1, service_time=cs.Deterministic(1.0)) as stub:
        start = time.perf_counter()
        assert get(f"{stub.url}/health") == 200
        assert time.perf_counter() - start < 0.5
        assert stub.served == 0
    with pytest.raises(cs.ModelError, match=r"StubServer.workers: must be an int >= 1, got 0"):
        StubServer(workers=0)
    with pytest.raises(cs.ModelError, match=r"StubServer.queue_capacity: must be an int >= 0"):
        StubServer(queue_capacity=-1)
    with pytest.raises(cs.ModelError, match=r"StubServer.host: must be a loopback address"):
        StubServer(host="0.0.0.0")
    with pytest.raises(cs.ModelError, match=r"StubServer.service_time: must be a capsim "):
        StubServer(service_time=0.02)

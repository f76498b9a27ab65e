"""Components: the parts of a system that requests visit."""

from __future__ import annotations

from dataclasses import dataclass

from capsim.dists import Distribution
from capsim.errors import check_int, check_name, fail


@dataclass(frozen=True)
class Component:
    """Anything a flow can call; ``name`` is how flows refer to it."""

    name: str

    def __post_init__(self) -> None:
        check_name(type(self).__name__, "name", self.name)

    @property
    def label(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@dataclass(frozen=True)
class Service(Component):
    """A pool of ``servers`` identical workers in front of one FIFO queue.

    ``queue_capacity=None`` is an unbounded queue; a finite one drops arrivals that find it
    full (counted as errors of their flow), which is how a saturated pool sheds load.
    """

    servers: int = 1
    service_time: Distribution | None = None
    queue_capacity: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.label, "servers", self.servers, minimum=1)
        if not isinstance(self.service_time, Distribution):
            raise fail(
                self.label,
                "service_time",
                "must be a distribution such as Exponential(mean=0.01)",
                self.service_time,
            )
        if self.queue_capacity is not None:
            check_int(self.label, "queue_capacity", self.queue_capacity, minimum=0)

    @property
    def capacity_per_s(self) -> float:
        """Requests per second the pool completes when every worker is busy."""
        return self.servers / self.service_time.mean

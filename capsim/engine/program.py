"""Compile a flow's steps into a program: a tuple of step callables the request walks through.

A request holds its program and its position. Each step is called with the request when the
request reaches it; a station step calls the next one when its service ends, and a control step
(a branch, a cache decision) jumps at once by setting the position and calling the step there.
Random choices happen when the request gets to them, from their own buffered stream, so the
same flow gives the same program in every run and the hot path stays one call per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from capsim.engine.customer import Customer
from capsim.engine.steps import BranchChoice, Jump, OwnService, Release, RepeatEnd, RepeatStart
from capsim.engine.streams import Draws
from capsim.model import Branch, Call, Flow, Publish, Read, Write

if TYPE_CHECKING:
    from capsim.engine.network import Network

Step = Callable[[Customer], None]


class Compiler:
    """Turns steps into a flat program, asking the network for each visit's callables (the
    network is passed in, not imported: it builds the compiler)."""

    def __init__(self, net: Network, rng_for: Callable[[str], object]) -> None:
        self.net = net
        self.rng_for = rng_for

    def compile(self, flow: Flow, finish: Step) -> tuple[Step, ...]:
        return self.compile_steps(flow.steps, finish, f"flow:{flow.name}")

    def compile_steps(self, steps, finish: Step, where: str) -> tuple[Step, ...]:
        program: list[Step] = []
        self._emit(steps, program, where)
        program.append(finish)
        return tuple(program)

    def _emit(self, steps, program: list[Step], where: str) -> None:
        for i, step in enumerate(steps):
            here = f"{where}/{i}"
            visits = getattr(step, "visits", 1)
            if visits == 1:
                self._emit_step(step, program, here)
                continue
            # a repeated step is one loop in the program, however many repeats a request
            # draws: the block runs, and each repeat queues at its stations on its own
            start = RepeatStart(visits, self.rng_for(f"visits:{here}"))
            program.append(start)
            block = len(program)
            self._emit_step(step, program, here)
            program.append(RepeatEnd(block))
            start.skip_to = len(program)

    def _own_service(self, step, program: list[Step], here: str) -> None:
        """A step's own demand: the next service is drawn from its own distribution."""
        if getattr(step, "service_time", None) is not None:
            program.append(OwnService(Draws(step.service_time,
                                            self.rng_for(f"own-service:{here}"))))

    def _emit_step(self, step, program: list[Step], here: str) -> None:
        before, after = self.net.limits(step, here)  # a pool's, a bulkhead's (mostly none)
        program.extend(before)
        if isinstance(step, Call) and step.guarded:
            # each attempt is a child request: its own service is set inside the attempt
            program.append(self.net.timed_call(step, here, self, len(program) + 1))
        elif isinstance(step, Call):
            self._own_service(step, program, here)
            program.append(self.net.call(step, here, holding=bool(step.calls)))
            if step.calls:
                self._emit(step.calls, program, f"{here}/calls")
                program.append(Release())
        elif isinstance(step, Read):
            self._own_service(step, program, here)
            visit, decision = self.net.read(step, here)
            program.append(visit)
            program.extend(after)  # a cache's slot is for its own visit, not the miss steps
            after = []
            if decision is not None:
                program.append(decision)
                self._emit(step.on_miss, program, f"{here}/miss")
                decision.skip_to = len(program)
        elif isinstance(step, Write):
            self._own_service(step, program, here)
            program.extend(self.net.write(step, here))
        elif isinstance(step, Publish):
            program.extend(self.net.publish(step, here))
        elif isinstance(step, Branch):
            node = BranchChoice([p for p, _ in step.options], self.rng_for(f"branch:{here}"))
            program.append(node)
            jumps = []
            for k, (_, sub) in enumerate(step.options):
                node.targets.append(len(program))
                self._emit(sub, program, f"{here}/{k}")
                jump = Jump()
                jumps.append(jump)
                program.append(jump)
            for jump in jumps:
                jump.target = len(program)
        else:  # pragma: no cover - the model validates step types
            raise TypeError(f"cannot compile step {step!r}")
        program.extend(after)

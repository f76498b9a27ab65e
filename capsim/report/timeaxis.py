"""Time axes of runs: seconds since the start, labelled as a person reads a clock.

A run's figures put simulated seconds on the x axis. These helpers label them the way the
rest of capsim writes time (:mod:`capsim.units`), so an axis, a table and a sentence agree:

* :func:`clock_axis` - ``h:mm`` ticks at whole minutes or hours (the dashboard's axis);
* :func:`minutes_axis` - the seconds shown as minutes, one tick a minute (short incidents);
* :class:`DayClock` - a run that plays out a day, possibly compressed: each tick shows the
  simulated ``h:mm`` and, under it, the hour of the day it stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MultipleLocator

from capsim.errors import check_number
from capsim.units import format_clock

__all__ = ["DayClock", "clock_axis", "clock_ticks_s", "minutes_axis"]

_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


def clock_ticks_s(span_s: float, most: int = 12) -> float:
    """A tick spacing of whole minutes or hours giving at most about ``most`` ticks."""
    for step in _STEPS_S:
        if span_s / step <= most:
            return float(step)
    return 86400.0 * max(1, round(span_s / 86400 / most))


def clock_axis(ax: Axes, start_s: float, end_s: float,
               clock: Callable[[float], str] | None = None) -> Axes:
    """Show ``[start_s, end_s]`` on ``ax``'s x axis with ticks at whole minutes or hours,
    labelled ``h:mm`` (or by ``clock``, seconds -> label)."""
    label = clock if clock is not None else (lambda s: format_clock(s, with_seconds=False))
    ax.set_xlim(start_s, end_s)
    ax.xaxis.set_major_locator(MultipleLocator(clock_ticks_s(end_s - start_s)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos=None: label(x)))
    return ax


def minutes_axis(ax: Axes, every_s: float = 60.0) -> Axes:
    """Label ``ax``'s x axis (seconds) in minutes, a tick every ``every_s`` seconds."""
    check_number("minutes_axis", "every_s", every_s)
    ax.xaxis.set_major_locator(MultipleLocator(every_s))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos=None: f"{x / 60:g}"))
    return ax


@dataclass(frozen=True)
class DayClock:
    """The clock of a run that plays out one day in ``period_s`` simulated seconds (86,400:
    a real day; less: compressed, as ``Diurnal(period_s=...)``), starting at ``start_hour``.

    Called with simulated seconds it gives a two-line tick label, ``0:45`` over ``(12:00)``;
    :meth:`time_of_day` gives the second line alone. Hours past midnight keep counting
    (``24:00``), so a run that ends at midnight reads as one day.
    """

    period_s: float = 86_400.0
    start_hour: float = 0.0

    def __post_init__(self) -> None:
        check_number("DayClock", "period_s", self.period_s)
        check_number("DayClock", "start_hour", self.start_hour, strict=False)

    def time_of_day(self, seconds: float) -> str:
        """The hour of the day simulated time ``seconds`` stands for, to the minute."""
        day_s = seconds * 86_400.0 / self.period_s + self.start_hour * 3600.0
        return format_clock(day_s, with_seconds=False)

    def __call__(self, seconds: float) -> str:
        return f"{format_clock(seconds, with_seconds=False)}\n({self.time_of_day(seconds)})"

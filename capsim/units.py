"""Seconds as people read them: one formatter for spans of time, one for clock readings.

Every table, sentence and axis of capsim speaks of time in seconds; these two functions are the
only places that turn them into words, so a latency, a lead time and a tick label read alike:

* :func:`format_duration` - how long: ``850 us``, ``12.3 ms``, ``4.2 s``, ``6 min 30 s``,
  ``2 h 05 min``;
* :func:`format_clock` - when, in seconds since the start: ``1:20:05``, or ``1:20`` to the
  minute.

It imports nothing from capsim, so any layer (the engine's summaries, the monitor's sentences,
the report's axes) may use it.
"""

from __future__ import annotations

import math

__all__ = ["format_clock", "format_duration"]


def _half_up(x: float) -> int:
    """``x >= 0`` to the nearest whole number, halves up (``round`` rounds them to even)."""
    return math.floor(x + 0.5)


def _three_digits(x: float) -> str:
    """``x`` to three significant digits, without a trailing ``.0`` (12.3, 250, 4.2)."""
    return f"{x:.3g}"


def format_duration(seconds: float) -> str:
    """A span of time in the unit that reads best.

    Under a minute, three significant digits in us, ms or s (``850 us``, ``12.3 ms``,
    ``250 ms``, ``4.2 s``, ``45 s``); from a minute, whole seconds as ``6 min 30 s`` or
    ``1 min``; from an hour, whole minutes as ``2 h 05 min``. Negative spans keep their sign
    (``-1 min 30 s``); ``inf`` and ``nan`` are written as such.
    """
    x = float(seconds)
    if not math.isfinite(x):
        return str(x)
    sign = "-" if x < 0 else ""
    a = float(f"{abs(x):.3g}")  # rounded first, so 0.9996 s is "1 s", not "1e+03 ms"
    if a == 0:
        return "0 s"
    if a < 1e-3:
        return f"{sign}{_three_digits(a * 1e6)} us"
    if a < 1:
        return f"{sign}{_three_digits(a * 1e3)} ms"
    if a < 60:
        return f"{sign}{_three_digits(a)} s"
    s = _half_up(abs(x))
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{sign}{m} min" + (f" {r} s" if r else "")
    h, r = divmod(s, 3600)
    return f"{sign}{h} h {r // 60:02d} min"


def format_clock(seconds: float, *, with_seconds: bool = True) -> str:
    """Seconds since the start as a clock reading, rounded: ``1:20:05``, or with
    ``with_seconds=False`` to the nearest minute, ``1:20``. Hours keep counting past 24."""
    x = float(seconds)
    if not math.isfinite(x):
        return str(x)
    unit = 1 if with_seconds else 60
    n = _half_up(abs(x) / unit) * unit
    sign = "-" if x < 0 and n else ""
    h, r = divmod(n, 3600)
    m, s = divmod(r, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if with_seconds else f"{sign}{h}:{m:02d}"

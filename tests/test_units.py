"""capsim.units: the one way seconds are written for people, spans and clock readings."""

import math

import pytest

from capsim.units import format_clock, format_duration


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "0 s"), (850e-6, "850 us"), (1.5e-6, "1.5 us"), (0.0123, "12.3 ms"), (0.25, "250 ms"),
    (0.9996, "1 s"), (4.2, "4.2 s"), (45, "45 s"), (59.96, "1 min"), (60, "1 min"),
    (390, "6 min 30 s"), (3599.6, "1 h 00 min"), (3600, "1 h 00 min"), (7500, "2 h 05 min"),
    (-90, "-1 min 30 s"), (-0.002, "-2 ms"), (90.5, "1 min 31 s"),
])
def test_format_duration_picks_the_unit_that_reads_best(seconds, words):
    assert format_duration(seconds) == words


def test_format_duration_of_what_is_not_a_number():
    assert format_duration(math.inf) == "inf"
    assert format_duration(-math.inf) == "-inf"
    assert format_duration(math.nan) == "nan"


@pytest.mark.parametrize(("seconds", "with_seconds", "reading"), [
    (0, True, "0:00:00"), (240, True, "0:04:00"), (4805, True, "1:20:05"),
    (4805, False, "1:20"), (4830, False, "1:21"), (86_400, False, "24:00"),
    (-300, False, "-0:05"), (-10, False, "0:00"), (0.4, True, "0:00:00"),
])
def test_format_clock(seconds, with_seconds, reading):
    assert format_clock(seconds, with_seconds=with_seconds) == reading

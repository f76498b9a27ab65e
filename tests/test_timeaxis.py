"""capsim.report.timeaxis: time axes labelled as capsim writes time (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import capsim as cs  # noqa: E402
from capsim.report.timeaxis import DayClock, clock_axis, clock_ticks_s, minutes_axis  # noqa: E402


def test_clock_ticks_are_whole_minutes_or_hours():
    assert clock_ticks_s(600) == 60
    assert clock_ticks_s(3 * 3600) == 900
    assert clock_ticks_s(24 * 86400) == 2 * 86400


def test_clock_axis_and_minutes_axis_label_seconds():
    fig, (ax, bx) = plt.subplots(2)
    clock_axis(ax, 0, 7200)
    assert ax.get_xlim() == (0, 7200)
    assert ax.xaxis.get_major_formatter()(3900) == "1:05"
    minutes_axis(bx)
    assert bx.xaxis.get_major_formatter()(150) == "2.5"
    ticks = bx.xaxis.get_major_locator().tick_values(0, 180)
    assert [t for t in ticks if 0 <= t <= 180] == [0, 60, 120, 180]
    plt.close(fig)


def test_a_compressed_day_clock():
    # a day in 3 h of simulated time, from 06:00: 7.5 simulated minutes per hour of the day
    clock = DayClock(period_s=10_800, start_hour=6)
    assert clock.time_of_day(0) == "6:00"
    assert clock.time_of_day(450 * 2.8) == "8:48"
    assert clock.time_of_day(18 * 450) == "24:00"
    assert clock(900) == "0:15\n(8:00)"
    assert DayClock().time_of_day(3600 * 13 + 60) == "13:01"
    with pytest.raises(cs.ModelError):
        DayClock(period_s=0)

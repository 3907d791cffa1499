"""Date formats: moment/dayjs tokens and strftime, in local time, and their errors."""

from __future__ import annotations

import time

import pytest

from corral.datefmt import date_formatter, date_reader, iso_timestamp, line_date_format
from corral.errors import OptionError

# 2023-11-14 22:13:20.123456 UTC, a Tuesday
T = 1700000000.123456


@pytest.fixture
def tz(monkeypatch):
    """Set the local time zone for the test, with a POSIX TZ string (no tzdata needed)."""

    def set_tz(value: str) -> None:
        monkeypatch.setenv("TZ", value)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("YYYY-MM-DD HH:mm:ss Z", "2023-11-14 22:13:20 +00:00"),
        ("YYYY-MM-DDTHH:mm:ss.SSS ZZ", "2023-11-14T22:13:20.123 +0000"),
        ("YY M D H m s", "23 11 14 22 13 20"),
        ("hh:mm A h a", "10:13 PM 10 pm"),
        ("[at] HH [o'clock on] dddd, MMMM Do", "at 22 o'clock on Tuesday, November 14th"),
        ("ddd dd d MMM Q DDD DDDD k", "Tue Tu 2 Nov 4 318 318 22"),
        ("ss.S ss.SS ss.SSSSSS", "20.1 20.12 20.123456"),
        ("x|X", "1700000000123|1700000000"),
        (r"\Y\M YYYY", "YM 2023"),
        ("%Y-%m-%d %H:%M:%S.%f %z", "2023-11-14 22:13:20.123456 +0000"),
        ("%d/%m %%", "14/11 %"),
        ("", ""),
    ],
)
def test_date_formats(tz, fmt, expected):
    tz("UTC0")
    assert date_formatter(fmt)(T) == expected


def test_date_uses_local_time(tz):
    tz("IST-5:30")
    assert date_formatter("YYYY-MM-DD HH:mm Z ZZ")(T) == "2023-11-15 03:43 +05:30 +0530"
    assert date_formatter("%H:%M %z")(T) == "03:43 +0530"
    tz("EST5")
    assert date_formatter("HH:mm Z")(T) == "17:13 -05:00"


@pytest.mark.parametrize(
    ("fmt", "token"),
    [
        ("yyyy-MM-dd", "yyyy"),
        ("YYYYY", "YYYYY"),
        ("Mo", "Mo"),
        ("gggg-ww", "gggg"),
        ("HH zz", "zz"),
        ("YYYY [unclosed", "[unclosed"),
        ("%Y-%Q", "%Q"),
        ("%Y %", "%"),
    ],
)
def test_bad_date_format(fmt, token):
    with pytest.raises(OptionError) as raised:
        date_formatter(fmt)
    assert raised.value.field == "log_date_format"
    assert repr(token) in str(raised.value)
    assert "YYYY-MM-DD" in str(raised.value)


def test_date_formatter_is_cached():
    assert date_formatter("HH:mm:ss") is date_formatter("HH:mm:ss")


def test_iso_timestamp_is_utc_with_milliseconds(tz):
    tz("IST-5:30")
    assert iso_timestamp(T) == "2023-11-14T22:13:20.123Z"


@pytest.mark.parametrize(
    ("fmt", "exact"),
    [
        ("YYYY-MM-DD HH:mm:ss.SSS Z", T),
        ("YYYY-MM-DDTHH:mm:ss", 1700000000.0),  # the date of `time: true`
        ("[at] HH:mm:ss [on] DD/MM/YYYY ZZ", 1700000000.0),
        ("%Y-%m-%d %H:%M:%S.%f %z", T),
        ("X", 1700000000.0),
        ("x", 1700000000.123),
    ],
)
def test_date_reader_reads_back_what_date_formatter_wrote(tz, fmt, exact):
    tz("CET-1")
    line = f"{date_formatter(fmt)(T)}: a line"
    assert date_reader(fmt)(line) == pytest.approx(exact, abs=1e-3)
    assert date_reader(fmt)("a line without its date") is None


def test_line_date_format_is_the_one_the_daemon_writes():
    assert line_date_format({"log_date_format": "HH:mm", "time": True}) == "HH:mm"
    assert line_date_format({"time": True}) == "YYYY-MM-DDTHH:mm:ss"
    assert line_date_format({"log_date_format": ""}) is None
    assert line_date_format({}) is None

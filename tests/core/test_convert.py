"""Value converters called directly: milliseconds and bytes as PM2 writes them."""

from __future__ import annotations

import pytest

from corral.errors import OptionError
from corral.options.convert import parse_bytes, parse_ms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5000, 5000),
        ("5000", 5000),
        ("10s", 10_000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("250ms", 250),
        ("1.5s", 1500),
        (2500.4, 2500),
    ],
)
def test_ms(value, expected):
    assert parse_ms(value) == expected


@pytest.mark.parametrize("value", ["soon", "-5", -5, "10 minutes", "s", True, [], "10S"])
def test_ms_rejects(value):
    with pytest.raises(
        OptionError, match=r"kill_timeout must be milliseconds \(an integer or '10s'\)"
    ):
        parse_ms(value, "kill_timeout")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1024, 1024),
        ("1024", 1024),
        ("512K", 512 * 1024),
        ("150M", 150 * 1024**2),
        ("1G", 1024**3),
        (2048.0, 2048),
        ("0", 0),
    ],
)
def test_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["150m", "1.5G", "1.5", "10MB", "G", "-1", -1, "1 G", True, 1.5])
def test_bytes_rejects_what_pm2_rejects(value):
    with pytest.raises(OptionError) as info:
        parse_bytes(value, "max_memory_restart")
    message = str(info.value)
    assert message.startswith("max_memory_restart must be bytes")
    assert "uppercase, no decimals" in message
    assert info.value.field == "max_memory_restart"

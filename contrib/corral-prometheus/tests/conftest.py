"""The prometheus plugin's tests use corral.testing's ``corral_home``, on a free port."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def corral_home(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """corral.testing's private home, with /metrics on a port the system picks."""
    monkeypatch.setenv("CORRAL_PROMETHEUS_ADDR", "127.0.0.1:0")
    return corral_home

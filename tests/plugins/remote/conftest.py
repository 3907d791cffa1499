"""The remote tests run with the remote plugin, and only it, loaded by its entry point."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def remote_plugin(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``CORRAL_PLUGINS=remote`` for the daemon and the client (corral_home sets it empty)."""
    monkeypatch.setenv("CORRAL_PLUGINS", "remote")

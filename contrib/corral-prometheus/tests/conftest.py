"""The prometheus plugin's tests use corral.testing's ``corral_home``, on a free port."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.testing import kill_tree


@pytest.fixture
def corral_home(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """corral.testing's private home, with /metrics on a port the system picks."""
    monkeypatch.setenv("CORRAL_PROMETHEUS_ADDR", "127.0.0.1:0")
    return corral_home


@pytest.fixture
def second_home() -> Iterator[Path]:
    """Another private home, for a second daemon in this process; its apps killed by pid."""
    home = Path(tempfile.mkdtemp(prefix="corral-b-", dir="/tmp"))
    yield home
    with contextlib.suppress(OSError, ValueError):
        for app in json.loads((home / "state.json").read_text()).get("apps", []):
            if isinstance(app, dict) and app.get("pid"):
                kill_tree(int(app["pid"]))
    shutil.rmtree(home, ignore_errors=True)

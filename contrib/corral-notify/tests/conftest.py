"""The notify plugin's tests use corral.testing's ``corral_home``, and a second home."""

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
def second_home() -> Iterator[Path]:
    """Another private home, for a second daemon in this process; its apps killed by pid."""
    home = Path(tempfile.mkdtemp(prefix="corral-b-", dir="/tmp"))
    yield home
    with contextlib.suppress(OSError, ValueError):
        for app in json.loads((home / "state.json").read_text()).get("apps", []):
            if isinstance(app, dict) and app.get("pid"):
                kill_tree(int(app["pid"]))
    shutil.rmtree(home, ignore_errors=True)

"""Fixtures for the notify plugin's tests: a private CORRAL_HOME, cleanup by pid."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest


def _kill_tree(pid: int) -> None:
    try:
        proc = psutil.Process(pid)
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(family, timeout=5)


@pytest.fixture
def corral_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private home (unix socket paths are limited); every child left is killed."""
    home = Path(tempfile.mkdtemp(prefix="corral-notify-", dir="/tmp"))
    monkeypatch.setenv("CORRAL_HOME", str(home))
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield home
    for child in psutil.Process().children(recursive=True):
        if child.pid not in before:
            _kill_tree(child.pid)
    shutil.rmtree(home, ignore_errors=True)

"""Fixtures of the startup tests: the six plugins, a context for a user who need not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.hooks import PluginManager, load_plugins
from corral.plugins.startup import PLUGINS, StartupContext

SHELL_SCRIPTS = ("upstart", "systemv", "openrc", "rcd")


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    """The startup plugin and its six generators, loaded by their entry points."""
    return load_plugins(["startup", *PLUGINS.values()])


@pytest.fixture
def no_corral_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRAL_HOME", raising=False)


@pytest.fixture
def alice(tmp_path: Path, no_corral_home: None) -> StartupContext:
    """alice, whose home is given (--hp), so she needs no account here."""
    return StartupContext.build(user="alice", hp=tmp_path / "home" / "alice")


class Recorder:
    """Stands in for the command runner: records, and fails the commands it is told to."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.commands: list[list[str]] = []
        self.failing = failing

    def __call__(self, argv: list[str]) -> None:
        from corral.errors import StateError

        self.commands.append(list(argv))
        if set(argv) & set(self.failing):
            raise StateError(f"`{' '.join(argv)}` failed (exit 1): not running")


@pytest.fixture
def runner() -> Recorder:
    return Recorder()

"""The entry-point cache (corral.entrypoints): fresh while sys.path's directories are
unchanged, scanned again when a distribution comes or goes, never trusted from others."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from corral import entrypoints


def install(site: Path, name: str, version: str = "1.0") -> None:
    """A distribution ``name`` with one ``corral`` entry point, as pip leaves it."""
    (site / f"{name}.py").write_text("VALUE = 42\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[corral]\n{name} = {name}:VALUE\n")


def uninstall(site: Path, name: str, version: str = "1.0") -> None:
    info = site / f"{name}-{version}.dist-info"
    for path in info.iterdir():
        path.unlink()
    info.rmdir()


def settle(site: Path, minutes_ago: int) -> None:
    """The directory as an install some minutes ago left it: a scan of a directory
    changed in the last seconds is not cached (its next change may keep its time)."""
    when = time.time() - 60 * minutes_ago
    os.utime(site, (when, when))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_the_cache_answers_until_a_distribution_comes_or_goes(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "entrypoints.json"
    install(site, "plug_a")
    assert "plug_a" in entrypoints.entry_points("corral", cache)
    assert not cache.exists()  # the directory changed a moment ago: not cached yet
    settle(site, 30)
    scanned = entrypoints.entry_points("corral", cache)
    assert "plug_a" in scanned and cache.exists()
    assert not isinstance(scanned["plug_a"], entrypoints.Entry)  # importlib.metadata's
    assert cache.stat().st_mode & 0o777 == 0o600

    cached = entrypoints.entry_points("corral", cache)
    entry = cached["plug_a"]
    assert isinstance(entry, entrypoints.Entry)  # read from the file, not scanned
    assert entry.load() == 42
    assert (entry.dist.name, entry.dist.version) == ("plug_a", "1.0")
    assert sorted(cached) == sorted(scanned)

    install(site, "plug_b")  # a new .dist-info changes the directory's time
    settle(site, 20)
    assert {"plug_a", "plug_b"} <= set(entrypoints.entry_points("corral", cache))
    uninstall(site, "plug_a")
    settle(site, 10)
    found = entrypoints.entry_points("corral", cache)
    assert "plug_a" not in found and "plug_b" in found


def test_a_cache_others_may_write_is_not_read(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "entrypoints.json"
    install(site, "plug_c")
    settle(site, 30)
    entrypoints.entry_points("corral", cache)
    os.chmod(cache, 0o666)
    again = entrypoints.entry_points("corral", cache)
    assert not isinstance(again["plug_c"], entrypoints.Entry)  # scanned again


def test_a_broken_cache_is_scanned_again(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "entrypoints.json"
    install(site, "plug_d")
    settle(site, 30)
    cache.write_text("{not json")
    os.chmod(cache, 0o600)
    assert entrypoints.entry_points("corral", cache)["plug_d"].load() == 42
    assert isinstance(entrypoints.entry_points("corral", cache)["plug_d"], entrypoints.Entry)


def test_an_unwritable_cache_is_no_error(site: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    install(site, "plug_e")
    found = entrypoints.entry_points("corral", blocker / "sub" / "entrypoints.json")
    assert "plug_e" in found
    assert sys.path[0] == str(site)

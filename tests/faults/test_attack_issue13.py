"""Issue 13's new CLI attacked as a stranger would, as root, on a temporary CORRAL_HOME.

- `corral ecosystem --force` never writes through a symbolic link planted where its
  temporary file goes, and a FILE that is a directory is one error line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli as corral

# `corral ecosystem --force` as another user would see it run: the attacker guessed the
# pid (they are sequential) and planted a link at the temporary file's name.
PLANT_AND_RUN = """
import os, sys
from corral.cli import main
for name in (".ecosystem.config.js.%d.tmp" % os.getpid(), ".ecosystem.config.js.tmp"):
    os.symlink(sys.argv[1], name)
sys.argv = ["corral", "ecosystem", "--force"]
main()
"""


def test_ecosystem_force_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root:x:0:0\n")
    work = tmp_path / "shared"
    work.mkdir()
    (work / "ecosystem.config.js").write_text("old\n")
    result = subprocess.run(
        [sys.executable, "-c", PLANT_AND_RUN, str(victim)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "root:x:0:0\n"  # failed before the fix: the template
    assert "module.exports" in (work / "ecosystem.config.js").read_text()
    assert not (work / "ecosystem.config.js").is_symlink()


def test_ecosystem_replaces_a_link_at_its_name_and_leaves_the_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    work = tmp_path / "w"
    work.mkdir()
    os.symlink(victim, work / "ecosystem.config.js")
    refused = corral("ecosystem", cwd=work, check=False)
    assert refused.returncode == 1 and "pass --force" in refused.stderr
    corral("ecosystem", "--force", cwd=work)
    assert victim.read_text() == "secret\n"
    assert not (work / "ecosystem.config.js").is_symlink()


def test_ecosystem_of_a_directory_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "x.config.js").mkdir()
    for force in ([], ["--force"]):
        result = corral("ecosystem", "x.config.js", *force, cwd=tmp_path, check=False)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # was a traceback with --force
        assert "is a directory" in result.stderr
        assert result.stdout == ""
    assert list((tmp_path / "x.config.js").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.config.js"]  # no temp left

"""A stranger's attacks on the hardened corral (branch h/attack2).

Each test is one finding: it failed on the merged main before its fix, or is
marked xfail(strict=True) with what is still wrong.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import corral

FIVE = "\uff15"  # FULLWIDTH DIGIT FIVE: str.isdigit() is true, it is no pm_id
SLEEP = shutil.which("sleep") or "/bin/sleep"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60
    )


# -- names that look like digits --------------------------------------------------------


def test_a_name_of_non_ascii_digits_is_a_name_on_the_command_line(corral_home):
    """`check_name` accepts "\\uff15" (a fullwidth digit: not a pm_id), but the CLI turned the
    target "\\uff15" into pm_id 5 (``int("\\uff15") == 5``), so the app could not be reached by its
    name: the shadowing check_name exists to prevent."""
    pm = corral.connect()
    try:
        for i in range(6):  # pm_ids 0..5; pm_id 0 is named FIVE
            pm.start(SLEEP, {"name": f"app-{i}" if i else FIVE, "args": ["3600"]})
        result = cli("stop", FIVE)
        assert result.returncode == 0, result.stderr
        assert pm.describe(FIVE)[0].status == "stopped"
        assert pm.describe(5)[0].status == "online"  # pm_id 5 was stopped instead
    finally:
        pm.kill_daemon()

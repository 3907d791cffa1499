"""Docs generated from the code stay current."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_option_table_is_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_options.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout

"""Every code block of the README marked ``<!-- runnable -->`` runs as shown.

``<!-- runnable: NAME -->`` before a block writes it to the file NAME; a plain
``<!-- runnable -->`` block runs (python or sh), in README order, in one temporary
directory, against a real daemon on a temporary CORRAL_HOME. A snippet copied
from the README must not crash-loop (it did: the child of the cluster example
exited at once).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(
    r"<!-- runnable(?:: (?P<file>[\w./-]+))? -->\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)


def runnable_blocks() -> list[tuple[str | None, str, str]]:
    return [(m["file"], m["lang"], m["code"]) for m in BLOCK.finditer(README.read_text())]


def _run(lang: str, code: str, cwd: Path) -> None:
    command = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euc", code]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{lang} block failed:\n{code}\n{result.stdout}{result.stderr}"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_marks_its_cluster_example_runnable() -> None:
    blocks = runnable_blocks()
    assert [name for name, _, _ in blocks if name] == ["web.py"]
    assert any('pm.start("web.py"' in code for name, _, code in blocks if not name)


def test_the_runnable_readme_blocks_run_as_shown(pm: object, tmp_path: Path) -> None:
    if not _port_free(8000):
        pytest.skip("the README's example listens on 127.0.0.1:8000, which is taken here")
    for name, lang, code in runnable_blocks():
        if name:
            (tmp_path / name).write_text(code)
        else:
            _run(lang, code, tmp_path)
    # the cluster example: 8 instances that stay up and answer, no crash loop
    infos = wait_for(
        lambda: (
            [i for i in pm.list() if i.name == "web" and i.status == "online"]  # type: ignore[attr-defined]
            if len([i for i in pm.list() if i.status == "online"]) == 8  # type: ignore[attr-defined]
            else None
        ),
        timeout=30,
    )
    with urllib.request.urlopen("http://127.0.0.1:8000/", timeout=10) as reply:
        assert reply.read().startswith(b"hello from instance ")
    assert all(i.pm2_env["unstable_restarts"] == 0 for i in infos)
    assert all(i.pm2_env.get("exit_code") in (None, 0) for i in infos)

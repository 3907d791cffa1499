"""PM2 test/e2e/cli/binary.sh: the interpreter chosen for binaries, extension-less
scripts, .js, .py and a command on PATH."""

from __future__ import annotations

import shutil

import pytest

from tests.pm2_e2e.conftest import Corral


def _interpreter(cli: Corral) -> str:
    procs = cli.jlist()
    assert len(procs) == 1, procs
    return procs[0]["pm2_env"]["exec_interpreter"]


@pytest.mark.skipif(not shutil.which("watch"), reason="no `watch` binary")
def test_binary_runs_itself(cli: Corral) -> None:
    """binary.sh:15-20: an ELF binary (watch -- ls) gets interpreter none."""
    cli.kill()
    cli.run("start", str(shutil.which("watch")), "--", "ls")
    assert _interpreter(cli) == "none"


def test_extensionless_node_script(cli: Corral) -> None:
    """binary.sh:23-29: a node script with no extension.

    Deliberate difference: PM2 runs a file with an unknown extension with node (its check
    here, `[ $OUT="node" ]`, is true whatever OUT is); corral guesses no interpreter for
    a file it cannot tell: a non-executable one is refused in one line naming both fixes
    (chmod +x, or the interpreter option), an executable one runs by its shebang."""
    cli.kill()
    proc = cli.run("start", "binary-js-file", ok=False)
    assert "chmod +x" in proc.stderr and "interpreter" in proc.stderr
    assert cli.jlist() == []
    (cli.workdir / "binary-js-file").chmod(0o755)
    cli.run("start", "binary-js-file")
    assert _interpreter(cli) == "none"
    cli.should("status", "online", 1)


def test_js_gets_node(cli: Corral) -> None:
    """binary.sh:32-36: a .js file gets node."""
    cli.kill()
    cli.run("start", "binary-js-file.js")
    assert _interpreter(cli) == "node"


def test_py_gets_python(cli: Corral) -> None:
    """binary.sh:39-43: a .py file gets python."""
    cli.kill()
    cli.run("start", "binary-py-file.py")
    assert "python" in _interpreter(cli)


def test_command_on_path(cli: Corral) -> None:
    """binary.sh:50-57: `start ls` finds ls on PATH: interpreter none, script its path.
    (`--no-wait`: corral's start watches the app for min_uptime and exits 1 when it
    dies at once, README "a start that fails"; PM2 exits 0.)
    """
    cli.kill()
    cli.run("start", "--no-wait", "ls")
    assert _interpreter(cli) == "none"
    script = cli.jlist()[0]["pm2_env"]["pm_exec_path"]
    assert script == shutil.which("ls"), script
    cli.kill()

"""The sourcemap plugin: a compiled node app whose crash is reported at its TypeScript line.

``tsapp/app.js`` is ``tsapp/src/app.ts`` compiled by hand, and ``tsapp/app.js.map``
a hand-written v3 source map between them: the ``throw`` on line 3 of app.js
is line 7 of src/app.ts, the call on line 6 is line 11.
"""

from __future__ import annotations

import shlex
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import corral
from corral import hookspecs_lifecycle
from corral.plugins import sourcemap
from tests.conftest import APPS, PY, python_app, wait_for

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")

TSAPP = Path(__file__).parent / "tsapp"
MAPPED = ("src/app.ts:7:9", "src/app.ts:11:1")
COMPILED = ("app.js:3:11", "app.js:6:1")
needs_validate_hook = pytest.mark.skipif(
    not hasattr(hookspecs_lifecycle, "corral_validate_app"),
    reason="the lead adds the corral_validate_app hook to corral.hookspecs",
)


@pytest.fixture
def pm(corral_home: Path) -> Iterator[corral.Client]:
    with corral.connect(no_daemon=True, plugins=[sourcemap]) as client:
        yield client


def crash_log(pm: corral.Client, **options: Any) -> str:
    """Run the compiled app once; its error log once the whole stack trace is in."""
    info = pm.start(str(TSAPP / "app.js"), {"name": "ts", "autorestart": False, **options})[0]
    path = Path(info.err_log)

    def trace() -> str:
        text = path.read_text() if path.exists() else ""
        return text if "at Object.<anonymous>" in text else ""

    return str(wait_for(trace, what="the stack trace in the error log"))


def running_cmdline(pm: corral.Client, name: str) -> list[str]:
    """The app's argv once it runs node (not yet the daemon's fork, nor the bash wrapper)."""
    info = wait_for(lambda: next((i for i in pm.list() if i.name == name and i.pid), None))
    process = psutil.Process(info.pid)
    server = str(APPS / "server.js")

    def node_argv() -> list[str] | None:
        argv = process.cmdline()  # the bash wrapper's argv names server.js too
        return argv if server in argv and Path(argv[0]).name.startswith("node") else None

    return wait_for(node_argv, what="exec node")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the error log -----------------------------------------------------------------


def test_on_by_default_for_node(pm):
    log = crash_log(pm)
    assert "Error: job 7 failed" in log
    for where in MAPPED:
        assert str(TSAPP / where) in log
    assert "app.js:3" not in log


@pytest.mark.parametrize(
    "options",
    [
        {"disable_source_map_support": True},
        {"disableSourceMapSupport": True},
        {"source_map_support": False},
        {"source_map_support": True, "disable_source_map_support": True},
    ],
)
def test_off_when_disabled(pm, options):
    log = crash_log(pm, **options)
    for where in COMPILED:
        assert str(TSAPP / where) in log
    assert "app.ts" not in log


def test_explicitly_on(pm):
    log = crash_log(pm, sourceMapSupport=True)
    assert str(TSAPP / MAPPED[0]) in log


def test_without_the_plugin_the_options_are_refused(corral_home):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        with pytest.raises(corral.PluginError, match="needs the plugin 'sourcemap'"):
            client.start(str(TSAPP / "app.js"), {"source_map_support": True})


# -- where the flag goes --------------------------------------------------------------


def test_flag_follows_the_interpreter(pm):
    pm.start(str(APPS / "server.js"), {"name": "srv", "args": ["--enable-source-maps-arg"]})
    argv = running_cmdline(pm, "srv")
    assert Path(argv[0]).name.startswith("node")
    assert argv[1] == "--enable-source-maps"
    assert argv.count("--enable-source-maps") == 1


def test_flag_through_the_shared_socket_wrapper(pm):
    # the daemon wraps argv in `bash -c ... node ...` to put the socket at fd 3
    pm.start(
        str(APPS / "server.js"),
        {"name": "cl", "exec_mode": "cluster", "listen": f"127.0.0.1:{free_port()}"},
    )
    argv = running_cmdline(pm, "cl")
    assert Path(argv[0]).name.startswith("node")  # bash exec'd into node
    assert argv[1] == "--enable-source-maps"
    assert "--require" in argv  # the cluster preload is still there


@pytest.mark.parametrize("given", ["--enable-source-maps", "--no-enable-source-maps"])
def test_node_args_decide(pm, given):
    pm.start(str(APPS / "server.js"), {"name": "srv", "node_args": [given]})
    argv = running_cmdline(pm, "srv")
    assert argv[1:2] == [given]
    assert argv.count("--enable-source-maps") == (given == "--enable-source-maps")


def test_disabled_leaves_argv_alone(pm):
    pm.start(str(APPS / "server.js"), {"name": "srv", "disable_source_map_support": True})
    assert "--enable-source-maps" not in running_cmdline(pm, "srv")


class HideArgv:
    """A plugin that runs the command through `sh -c '...'`, so node is not an argv item."""

    @corral.hookimpl(tryfirst=True)
    def corral_before_spawn(self, app: Any, spawn: Any) -> None:
        spawn.argv = ["/bin/sh", "-c", "exec " + shlex.join(spawn.argv)]


def test_node_options_when_argv_is_hidden(corral_home):
    with corral.connect(no_daemon=True, plugins=[sourcemap, HideArgv()]) as pm:
        pm.start(
            str(APPS / "server.js"),
            {"name": "srv", "env": {"NODE_OPTIONS": "--max-old-space-size=64"}},
        )
        argv = running_cmdline(pm, "srv")
        process = psutil.Process(next(i.pid for i in pm.list()))
        assert "--enable-source-maps" not in argv
        assert process.environ()["NODE_OPTIONS"] == "--max-old-space-size=64 --enable-source-maps"
        assert "src/app.ts:7:9" in crash_log(pm)


# -- other interpreters ----------------------------------------------------------------


def test_python_app_untouched(pm, tmp_path):
    script = python_app(tmp_path, "idle.py", "import time\nwhile True: time.sleep(60)\n")
    [info] = pm.start(script, {"name": "py"})
    process = psutil.Process(info.pid)
    assert wait_for(lambda: script in process.cmdline() and process.cmdline()) == [PY, script]
    assert "NODE_OPTIONS" not in process.environ()


def test_disable_on_a_python_app_is_harmless(pm, tmp_path):
    script = python_app(tmp_path, "idle.py", "import time\nwhile True: time.sleep(60)\n")
    [info] = pm.start(script, {"name": "py", "disable_source_map_support": True})
    assert info.name == "py"


@needs_validate_hook
@pytest.mark.parametrize("kind", ["python", "none"])
def test_refused_on_a_non_node_app(pm, tmp_path, kind):
    if kind == "python":
        script, runner = python_app(tmp_path, "idle.py", "import time\ntime.sleep(60)\n"), "python"
    else:
        script, runner = python_app(tmp_path, "idle", "#!/bin/sh\nsleep 60\n"), "no interpreter"
        Path(script).chmod(0o755)
    with pytest.raises(corral.OptionError, match=f"source_map_support is for node apps.*{runner}"):
        pm.start(script, {"name": "idle", "source_map_support": True})
    assert pm.list() == []


@needs_validate_hook
def test_restart_that_sets_it_on_a_python_app_is_refused(pm, tmp_path):
    script = python_app(tmp_path, "idle.py", "import time\nwhile True: time.sleep(60)\n")
    [before] = pm.start(script, {"name": "py"})
    with pytest.raises(corral.OptionError, match="source_map_support is for node apps"):
        pm.restart("py", options={"source_map_support": True})
    [after] = pm.describe("py")
    assert (after.pid, after.status) == (before.pid, "online")


def test_check_app_directly():
    sourcemap.check_app({"source_map_support": True}, "/usr/bin/node")
    sourcemap.check_app({"source_map_support": True}, "/usr/local/bin/bun")
    sourcemap.check_app({"source_map_support": None}, PY)
    with pytest.raises(corral.OptionError, match="py runs under python") as error:
        sourcemap.check_app({"name": "py", "source_map_support": True}, "/usr/bin/python3")
    assert error.value.field == "source_map_support"
    assert "set interpreter to node" in str(error.value)

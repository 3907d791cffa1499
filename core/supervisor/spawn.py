"""How an app becomes an argv, an environment and a running child.

Interpreter inference follows PM2's table (``lib/API/interpreter.json``),
except that ``.py`` runs under the daemon's own Python unless told otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import ScriptError, shorten
from corral.options.table import INTERPRETERS
from corral.supervisor.readygate import ReadyGate

NODE_PRELOAD = Path(__file__).parent / "node" / "preload.js"


def own_preload(home: Path) -> Path:
    """A copy of :data:`NODE_PRELOAD` that the daemon of ``home`` owns, made now, at its
    start: ``HOME/node/preload-<hash>.js`` (0644 in a 0755 directory of ours, never
    through a link). A reinstall that removes or replaces the package under a running
    daemon then leaves its node children's ``--require`` working. Falls back to the
    package's file when the copy cannot be made."""
    import hashlib
    import stat

    try:
        data = NODE_PRELOAD.read_bytes()
        directory = home / "node"
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o755)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return NODE_PRELOAD  # not a directory of ours: not written through
        os.chmod(directory, 0o755)
        path = directory / f"preload-{hashlib.sha256(data).hexdigest()[:12]}.js"
        tmp = directory / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        return NODE_PRELOAD
    return path


# Puts the listening socket at fd 3 and sets LISTEN_PID to the program's own pid
# (the shell execs into it, so the pid stays): systemd socket activation.
_ACTIVATE = 'exec 3<&{fd} {fd}<&-; export LISTEN_PID=$$; exec "$0" "$@"'
_ACTIVATE_PY = (
    "import os, sys; os.dup2({fd}, 3); os.close({fd}); "
    "os.environ['LISTEN_PID'] = str(os.getpid()); os.execvp(sys.argv[1], sys.argv[1:])"
)


def socket_activation_argv(fd: int, argv: list[str]) -> list[str]:
    """``argv`` run so that inherited ``fd`` becomes fd 3 and ``LISTEN_PID`` is right."""
    bash = shutil.which("bash")
    if fd == 3:
        return [bash or "/bin/sh", "-c", 'export LISTEN_PID=$$; exec "$0" "$@"', *argv]
    if bash:  # dash takes only one-digit fds in redirections
        return [bash, "-c", _ACTIVATE.format(fd=fd), *argv]
    return [sys.executable, "-c", _ACTIVATE_PY.format(fd=fd), *argv]


def is_node(interpreter: str) -> bool:
    return interpreter != "none" and Path(interpreter).name.startswith(("node", "bun"))


@dataclass
class SpawnSpec:
    """What will be executed; ``corral_before_spawn`` may change any field."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    pass_fds: list[int] = field(default_factory=list)
    ready_gates: list[ReadyGate] = field(default_factory=list)
    spawned: list[Callable[[int], None]] = field(default_factory=list)

    def hold_ready(self, name: str, bound: float) -> ReadyGate:
        """Make the child's readiness wait, besides its own signal, for a gate this
        plugin opens (``gate.open()`` on the loop), at most ``bound`` seconds (or
        ``listen_timeout`` if longer). ``name`` shows in the child's ``ready_by``."""
        gate = ReadyGate(name, bound)
        self.ready_gates.append(gate)
        return gate

    def when_spawned(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(pid)`` on the loop right after the fork, before any event of
        the new child; not at all if the spawn fails."""
        self.spawned.append(callback)


def resolve_script(script: str, cwd: str) -> tuple[str, bool]:
    """The absolute script path, and whether it is a shell command line.

    A script with a space that is not a file is a command for ``bash -c``, as PM2.
    """
    candidate = Path(script).expanduser()
    if not candidate.is_absolute():
        candidate = Path(cwd) / candidate
    if candidate.is_file():
        return str(candidate), False
    if " " in script.strip():
        return script, True
    found = shutil.which(script)
    if found:
        return found, False
    if candidate.is_dir():
        raise ScriptError(
            f"script {shorten(script)} is a directory ({shorten(str(candidate))}), not a file "
            "to run: fix the option script (give the file in it, e.g. app.py or index.js)"
        )
    where = "no such file" if Path(script).expanduser().is_absolute() else f"no such file in {cwd}"
    raise ScriptError(
        f"script {shorten(script)} not found: {where} and no command of that name on PATH: "
        "fix the option script (a relative path starts from the app's cwd)"
    )


def resolve_interpreter(script: str, interpreter: str | None, is_command: bool) -> str:
    """The interpreter path, or ``"none"`` to execute the script itself."""
    if is_command:
        return shutil.which("bash") or "/bin/sh"
    if interpreter is None:
        interpreter = INTERPRETERS.get(Path(script).suffix.lower())
        if interpreter is None:
            return "none"
    if interpreter == "none":
        return "none"
    if interpreter in ("python", "python3") and Path(script).suffix.lower() == ".py":
        return sys.executable
    found = shutil.which(interpreter)
    if not found and os.sep in interpreter:
        raise ScriptError(
            f"interpreter {shorten(interpreter)} for {script} does not exist or is not "
            "executable: create it (a venv: python3 -m venv) or fix the option interpreter"
        )
    if not found:
        raise ScriptError(
            f"interpreter '{interpreter}' for {script} is not on PATH: install it, "
            "or set the option interpreter to its full path"
        )
    return found


def check_executable(script: str, interpreter: str) -> None:
    if interpreter == "none" and not os.access(script, os.X_OK):
        raise ScriptError(
            f"script '{script}' is not executable and has no known interpreter: "
            f"run `chmod +x {script}` or set the option interpreter"
        )


def interpreter_name(interpreter: str) -> str:
    """PM2 shows the interpreter's name (``node``, ``python3``), not its path."""
    if interpreter == "none":
        return "none"
    name = Path(interpreter).name
    return name


def build_argv(
    script: str, interpreter: str, is_command: bool, node_args: list[str], args: list[str]
) -> list[str]:
    if is_command:
        if not args:
            return [interpreter, "-c", script]
        # the arguments follow the command line, each one word as given (`-- a b`)
        return [interpreter, "-c", script + ' "$@"', script.split()[0], *args]
    if interpreter == "none":
        return [script, *args]
    return [interpreter, *node_args, script, *args]


def filter_environment(base: dict[str, str], filter_env: Any) -> dict[str, str]:
    """PM2's ``filter_env``: true drops the caller's environment, a list drops matching keys."""
    if filter_env is True:
        return {}
    if not filter_env:
        return dict(base)
    needles = [filter_env] if isinstance(filter_env, str) else list(filter_env)
    return {k: v for k, v in base.items() if not any(n in k for n in needles)}


def merge_env(base: dict[str, str], *layers: dict[str, Any] | None) -> dict[str, str]:
    """Later layers win; a value of ``None`` or the string ``"null"`` deletes the key."""
    env = dict(base)
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None or value == "null":
                env.pop(key, None)
            else:
                env[str(key)] = str(value)
    return env


def split_args(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]

"""Rendering a boot script through ``corral_startup_script``, installing and removing it.

``install()`` and ``uninstall()`` take a ``root`` directory that prefixes every
path and a ``run`` callable for the commands, so tests never touch the machine.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral import CorralError, PluginError, StateError, api

from .context import StartupContext, StartupScript
from .platforms import PLUGINS


def render(init_system: str, context: StartupContext, manager: Any = None) -> StartupScript:
    """The boot script of the plugin that answers ``corral_startup_script`` for ``init_system``.

    ``manager``: the plugin manager whose generators answer (default: the plugins of
    this environment, ``corral.api.load_plugins()``). The hook is ``firstresult``:
    pluggy calls the generators in its order (``tryfirst`` first) and stops at the
    first answer. A generator that fails raises PluginError naming it.
    """
    if manager is None:
        manager = api.load_plugins()
    hook = manager.pm.hook.corral_startup_script
    try:
        script = hook(init_system=init_system, context=context)
    except Exception as exc:
        culprit = _culprit(hook, exc)
        raise PluginError(f"plugin '{culprit}' failed in corral_startup_script: {exc}") from exc
    if script is None:
        plugin = PLUGINS.get(init_system, f"startup_{init_system}")
        raise PluginError(
            f"no plugin renders {init_system} boot scripts: install/enable '{plugin}'"
        )
    if not script.path.is_absolute():
        raise PluginError(f"the {init_system} boot script path {script.path} is not absolute")
    return script


def _culprit(hook: Any, exc: BaseException) -> str:
    """The plugin whose implementation ``exc`` was raised in (the innermost one)."""
    owners = {impl.function.__code__: impl.plugin_name for impl in hook.get_hookimpls()}
    found, tb = "?", exc.__traceback__
    while tb is not None:
        found = owners.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def run_command(argv: list[str]) -> None:
    """Run one enable/disable command; a failure raises StateError with its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise StateError(f"`{shlex.join(argv)}` could not run: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        detail = output[-1] if output else "no output"
        raise StateError(f"`{shlex.join(argv)}` failed (exit {done.returncode}): {detail}")


def under(root: Path | None, path: Path) -> Path:
    """``path`` inside ``root`` (a test's stand-in for ``/``), or ``path`` itself."""
    return root / path.relative_to(path.anchor) if root is not None else path


def install(
    script: StartupScript,
    *,
    root: Path | None = None,
    run: Callable[[list[str]], Any] = run_command,
    owner: tuple[int, int] | None = None,
    enable: bool = True,
) -> Path:
    """Write the file (with ``script.mode``), then run its enable commands if ``enable``.

    ``owner`` (uid, gid) is given to the file and to the directories created for it,
    for a user-level script root writes into someone's home.
    """
    dest = under(root, script.path)
    # in someone's home, every step with that user's rights: the user could have
    # planted a link at the temporary name, or swapped a directory on the way
    account = api.app_account({"uid": owner[0], "gid": owner[1]}) if owner else None
    try:
        api.as_account(account, lambda: _write(dest, script))
    except OSError as exc:
        raise StateError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    if enable:
        for argv in script.enable:
            run(argv)
    return dest


def _write(dest: Path, script: StartupScript) -> None:
    """Write ``script`` to ``dest`` through a new temporary file (never through a link)."""
    os.makedirs(dest.parent, mode=0o755, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover, or a planted link: O_EXCL below refuses either
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, script.mode)
    try:
        with open(fd, "w") as handle:
            handle.write(script.content)
            os.fchmod(handle.fileno(), script.mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def uninstall(
    script: StartupScript,
    *,
    root: Path | None = None,
    run: Callable[[list[str]], Any] = run_command,
    disable: bool = True,
) -> tuple[Path | None, list[str]]:
    """Run the disable commands (a failure is a warning: the service may be stopped
    already), then delete the file. Returns the deleted path (None if there was
    none) and the warnings."""
    warnings = []
    if disable:
        for argv in script.disable:
            try:
                run(argv)
            except CorralError as exc:
                warnings.append(str(exc))
    dest = under(root, script.path)
    try:
        dest.unlink()
    except FileNotFoundError:
        warnings.append(f"there was no file at {script.path}")
        return None, warnings
    return dest, warnings


def sudo_command(verb: str, platform: str, context: StartupContext) -> str:
    """The line a user runs as root, as PM2 prints it."""
    bindir = Path(context.python).parent
    words = ["sudo", "env", f"PATH=$PATH:{shlex.quote(str(bindir))}"]
    if os.environ.get("CORRAL_HOME"):
        words.append(shlex.quote(f"CORRAL_HOME={context.home}"))
    words += [shlex.quote(context.corral_bin), verb, shlex.quote(platform)]
    words += ["-u", shlex.quote(context.user), "--hp", shlex.quote(str(context.user_home))]
    if context.service_name:
        words += ["--service-name", shlex.quote(context.service_name)]
    return " ".join(words)

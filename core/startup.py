"""Boot scripts: ``corral startup`` / ``corral unstartup``, as ``pm2 startup``.

A platform name (PM2's: ``ubuntu``, ``centos``, ``amazon``, ``darwin``, ...) maps
to an init system (:data:`PLATFORMS`); with no name the init system is detected
the way PM2 does, from the first tool found on ``PATH`` (:data:`DETECTION`).
The plugin for that init system (``startup_systemd``, ``startup_launchd``, ...)
renders the file through the ``corral_startup_script`` hook; this module writes
it and runs the commands that enable it. Everything runs in the client process,
where the user typed the command; the daemon is only asked to dump its list.

Not root (and the script goes in a system directory), or ``print_only``: nothing
is written; the result carries the text and the one command to run as root,
``sudo env PATH=$PATH:<bindir> corral startup <platform> -u <user> --hp <home>``,
as PM2 prints it. User-level scripts (a launchd agent, a ``systemd --user`` unit)
need no root.

``install()`` and ``uninstall()`` take a ``root`` directory that prefixes every
path and a ``run`` callable for the commands, so tests never touch the machine.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import asuser, credentials, paths
from .errors import CorralError, OptionError, PluginError, StateError, shorten

if TYPE_CHECKING:
    from .client import Client
    from .hooks import PluginManager

# PM2's platform names and aliases, and the init system each means
PLATFORMS: dict[str, str] = {
    "systemd": "systemd",
    "ubuntu": "systemd",
    "centos": "systemd",
    "redhat": "systemd",
    "arch": "systemd",
    "oracle": "systemd",
    "upstart": "upstart",
    "ubuntu12": "upstart",
    "ubuntu14": "upstart",
    "systemv": "systemv",
    "sysv": "systemv",
    "amazon": "systemv",
    "centos6": "systemv",
    "launchd": "launchd",
    "darwin": "launchd",
    "macos": "launchd",
    "openrc": "openrc",
    "gentoo": "openrc",
    "rcd": "rcd",
    "freebsd": "rcd",
}

# the plugin (entry point name) that renders each init system's file
PLUGINS: dict[str, str] = {
    "systemd": "startup_systemd",
    "launchd": "startup_launchd",
    "openrc": "startup_openrc",
    "upstart": "startup_upstart",
    "systemv": "startup_sysv",
    "rcd": "startup_rcd",
}

# PM2's detection order: the first of these tools found on PATH names the init system
DETECTION: tuple[tuple[str, str], ...] = (
    ("systemctl", "systemd"),
    ("update-rc.d", "upstart"),
    ("chkconfig", "systemv"),
    ("rc-update", "openrc"),
    ("launchctl", "launchd"),
    ("sysrc", "rcd"),
)

SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@dataclass(frozen=True)
class StartupContext:
    """What a boot script needs to know; the ``corral_startup_script`` hook gets it."""

    user: str  # who the daemon runs as
    user_home: Path  # that user's HOME (``--hp``)
    home: Path  # the CORRAL_HOME the service uses
    corral_bin: str  # absolute path of the ``corral`` console script of this install
    python: str  # the interpreter of this install
    path_env: str  # PATH for the daemon: the caller's, with this install's bin dir
    service_name: str | None = None  # ``--service-name``; None: each plugin's default
    user_mode: bool = False  # a ``systemd --user`` unit instead of a system one

    @classmethod
    def build(
        cls,
        *,
        user: str | None = None,
        hp: str | os.PathLike | None = None,
        service_name: str | None = None,
        user_mode: bool = False,
        environ: dict[str, str] | None = None,
    ) -> StartupContext:
        """The context for ``user`` (default: whoever runs this) as PM2 computes it.

        CORRAL_HOME is ``$CORRAL_HOME`` when set, else ``<hp>/.corral``, where
        ``hp`` defaults to the user's home directory.
        """
        env = os.environ if environ is None else environ
        name = user or current_user()
        if not _USER_NAME.fullmatch(name):
            raise OptionError(f"{shorten(name)} is not a user name (--user)", field="user")
        if hp:
            user_home = Path(hp).expanduser().absolute()
        else:
            user_home = _home_of(name)
        home = env.get("CORRAL_HOME")
        corral_home = Path(home).expanduser().absolute() if home else user_home / ".corral"
        for what, path in (("--hp", user_home), ("CORRAL_HOME", corral_home)):
            if any(ord(c) < 32 for c in str(path)):
                raise OptionError(
                    f"{what} {shorten(str(path))} has a control character", field="hp"
                )
        if service_name is not None and not _SERVICE_NAME.fullmatch(service_name):
            raise OptionError(
                f"service name {shorten(service_name)} must be letters, digits, "
                "'.', '_', '@' or '-' "
                "(--service-name)",
                field="service_name",
            )
        bindir = Path(sys.executable).parent
        return cls(
            user=name,
            user_home=user_home,
            home=corral_home,
            corral_bin=find_corral_bin(),
            python=sys.executable,
            path_env=build_path(env.get("PATH", ""), bindir),
            service_name=service_name,
            user_mode=user_mode,
        )

    def service(self, default: str) -> str:
        """``--service-name``, else ``default``."""
        return self.service_name or default

    def command(self, *args: str, env: dict[str, str] | None = None) -> str:
        """A shell command line running ``corral args`` with the service's PATH and
        CORRAL_HOME (and ``env`` before them)."""
        settings = {**(env or {}), "PATH": self.path_env, "CORRAL_HOME": str(self.home)}
        words = [f"{key}={value}" for key, value in settings.items()]
        return shlex.join(["env", *words, self.corral_bin, *args])


_SERVICE_NAME = re.compile(r"[A-Za-z0-9_.@-]+")
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?")


@dataclass
class StartupScript:
    """A rendered boot script: where it goes, its text, and how it is switched on and off."""

    init_system: str
    path: Path  # absolute destination
    content: str
    mode: int = 0o644  # 0o755 for shell scripts
    enable: list[list[str]] = field(default_factory=list)  # run after writing it
    disable: list[list[str]] = field(default_factory=list)  # run before deleting it
    notes: list[str] = field(default_factory=list)  # things the user should know
    needs_root: bool = True  # False for a file the user may install (launchd agent, --user unit)


@dataclass
class StartupResult:
    """What ``startup()`` / ``unstartup()`` did, and what is left for someone to do."""

    platform: str  # as asked, or the detected init system
    context: StartupContext
    script: StartupScript
    written: Path | None = None  # the file written (startup) or deleted (unstartup)
    ran: list[list[str]] = field(default_factory=list)  # commands that ran
    todo: str | None = None  # the one command left to run
    todo_as: str | None = None  # who runs it: "root" or the user
    notes: list[str] = field(default_factory=list)


# -- the environment -------------------------------------------------------------


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.geteuid())


def _home_of(user: str) -> Path:
    try:
        return Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        raise OptionError(
            f"no user named {shorten(user)} on this machine (--user): create it, or give its "
            "home directory with --hp",
            field="user",
        ) from None


def find_corral_bin() -> str:
    """The ``corral`` script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "corral"
    if beside.exists():
        return str(beside)
    found = shutil.which("corral")
    return str(Path(found).absolute()) if found else str(beside)


def build_path(current: str, bindir: Path) -> str:
    """``current`` with ``bindir`` first and the usual system directories last, once each."""
    entries = [str(bindir), *current.split(os.pathsep), *SYSTEM_PATH]
    return os.pathsep.join(dict.fromkeys(e for e in entries if e))


def detect_init_system(path: str | None = None) -> str | None:
    """The init system of the first tool of :data:`DETECTION` found on ``path`` (PATH)."""
    for tool, init_system in DETECTION:
        if shutil.which(tool, path=path):
            return init_system
    return None


def resolve_platform(platform: str | None, path: str | None = None) -> tuple[str, list[str]]:
    """The init system for ``platform`` (detected when None), and notes for the user."""
    detected = detect_init_system(path)
    if platform is None:
        if detected is None:
            tools = ", ".join(tool for tool, _ in DETECTION)
            raise StateError(
                f"no init system found (none of {tools} is on PATH): "
                f"name one: corral startup <{'|'.join(PLUGINS)}>"
            )
        return detected, []
    init_system = PLATFORMS.get(platform.lower())
    if init_system is None:
        close = difflib.get_close_matches(platform.lower(), PLATFORMS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise OptionError(
            f"unknown platform {shorten(platform)}: {hint}known: {', '.join(sorted(PLATFORMS))}",
            field="platform",
        )
    notes = []
    if detected is not None and detected != init_system:
        notes.append(
            f"this machine looks like {detected}, but you chose {platform} ({init_system}): "
            "check it is your init system (`corral startup` alone detects it)"
        )
    return init_system, notes


# -- rendering, installing -----------------------------------------------------


def render(
    init_system: str, context: StartupContext, manager: PluginManager | None = None
) -> StartupScript:
    """The boot script of the plugin that answers ``corral_startup_script`` for ``init_system``."""
    if manager is None:
        from .hooks import load_plugins

        manager = load_plugins()
    script = manager.call_strict("corral_startup_script", init_system=init_system, context=context)
    if script is None:  # a firstresult hook: one answer or None
        plugin = PLUGINS.get(init_system, f"startup_{init_system}")
        raise PluginError(
            f"no plugin renders {init_system} boot scripts: install/enable '{plugin}'"
        )
    if not script.path.is_absolute():
        raise PluginError(f"the {init_system} boot script path {script.path} is not absolute")
    return script


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
    creds = credentials.resolve({"uid": owner[0], "gid": owner[1]}) if owner else None
    try:
        asuser.run_as(creds, lambda: _write(dest, script))
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


# -- the process list -----------------------------------------------------------


def save_list(context: StartupContext, client: Client | None = None) -> str:
    """Dump the list of the daemon serving ``context.home``, if it runs and is ours.

    Never starts a daemon. Returns a line saying what happened; an empty list is
    not saved (the dump from before, if any, is kept), as PM2's ``save`` does.
    """
    dump = paths.dump_file(context.home)
    kept = f" ({dump} from before is kept: boot brings it back)" if dump.exists() else ""
    own = None
    if client is None or Path(getattr(client, "home", "")) != context.home:
        client = own = _running_client(context.home)
    if client is None:
        if context.user != current_user():
            return f"run `corral dump` as {context.user} once the apps run, for boot to start them"
        return (
            f"no daemon runs in {context.home}, so no list was saved{kept}: "
            "start your apps, then `corral dump`"
        )
    try:
        saved = client.dump()
    except StateError:
        return (
            f"the process list is empty, so nothing was saved{kept}: "
            "start your apps, then `corral dump`"
        )
    finally:
        if own is not None:
            own.disconnect()
    return (
        f"saved {saved['count']} apps to {saved['path']}: boot starts them with `corral resurrect`"
    )


def _running_client(home: Path) -> Client | None:
    from .client import Client, read_daemon_pid
    from .rpc import pid_alive

    try:
        if home.stat().st_uid != os.geteuid():
            return None
    except OSError:
        return None
    pid = read_daemon_pid(home)
    if not pid_alive(pid) or not paths.rpc_path(home).exists():
        return None
    return Client(home, pid)


# -- the two commands -----------------------------------------------------------


def startup(
    platform: str | None = None,
    *,
    user: str | None = None,
    hp: str | os.PathLike | None = None,
    service_name: str | None = None,
    user_mode: bool = False,
    print_only: bool = False,
    client: Client | None = None,
    manager: PluginManager | None = None,
    run: Callable[[list[str]], Any] = run_command,
    root: Path | None = None,
    is_root: bool | None = None,
) -> StartupResult:
    """Generate the boot script and install it, or say who must run what to do so.

    ``root``, ``run`` and ``is_root`` are for tests: a directory standing for ``/``,
    the command runner, and whether to act as root.
    """
    result = _prepare(platform, user, hp, service_name, user_mode, manager)
    script, context = result.script, result.context
    is_root = os.geteuid() == 0 if is_root is None else is_root
    if print_only or (script.needs_root and not is_root):
        _leave_todo(result, "startup")
        if not print_only:
            result.notes.append(save_list(context, client))
        return result
    # a user-level file root writes for someone else: theirs, and so are its commands
    for_other = not _may_act(result, is_root)
    owner = _ids_of(context.user) if for_other and is_root else None
    result.written = install(script, root=root, run=run, owner=owner, enable=not for_other)
    if for_other:
        result.todo = " && ".join(shlex.join(argv) for argv in script.enable) or None
        result.todo_as = context.user
    else:
        result.ran = list(script.enable)
    result.notes.append(save_list(context, client))
    return result


def unstartup(
    platform: str | None = None,
    *,
    user: str | None = None,
    hp: str | os.PathLike | None = None,
    service_name: str | None = None,
    user_mode: bool = False,
    print_only: bool = False,
    manager: PluginManager | None = None,
    run: Callable[[list[str]], Any] = run_command,
    root: Path | None = None,
    is_root: bool | None = None,
) -> StartupResult:
    """Disable the service and delete its file (the same arguments as :func:`startup`).

    A user-level file of someone else is left for them to remove, with the command.
    """
    result = _prepare(platform, user, hp, service_name, user_mode, manager)
    is_root = os.geteuid() == 0 if is_root is None else is_root
    if print_only or not _may_act(result, is_root):
        _leave_todo(result, "unstartup")
        return result
    result.written, warnings = uninstall(result.script, root=root, run=run)
    result.notes.extend(warnings)
    result.ran = list(result.script.disable)
    return result


def _may_act(result: StartupResult, is_root: bool) -> bool:
    """Root for a system file; the user for a user-level one."""
    if result.script.needs_root:
        return is_root
    return result.context.user == current_user()


def _prepare(
    platform: str | None,
    user: str | None,
    hp: str | os.PathLike | None,
    service_name: str | None,
    user_mode: bool,
    manager: PluginManager | None,
) -> StartupResult:
    init_system, notes = resolve_platform(platform)
    if user_mode and init_system != "systemd":
        raise OptionError(
            f"a user-level unit (--user without a name) is a systemd feature, not {init_system}'s: "
            "drop --user, or pick systemd",
            field="user_mode",
        )
    context = StartupContext.build(user=user, hp=hp, service_name=service_name, user_mode=user_mode)
    script = render(init_system, context, manager)
    return StartupResult(
        platform=platform or init_system,
        context=context,
        script=script,
        notes=[*notes, *script.notes],
    )


def _leave_todo(result: StartupResult, verb: str) -> None:
    """``--print``: the one command that installs what was printed."""
    if result.script.needs_root:
        result.todo = sudo_command(verb, result.platform, result.context)
        result.todo_as = "root"
    else:
        words = [result.context.corral_bin, verb, result.platform]
        if result.context.user_mode:
            words.append("--user-mode")
        if result.context.service_name:
            words += ["--service-name", result.context.service_name]
        result.todo, result.todo_as = shlex.join(words), result.context.user


def _ids_of(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def report(result: StartupResult, verb: str = "startup") -> list[str]:
    """The lines ``corral startup`` prints after the file itself; the command to run is last."""
    script = result.script
    lines = [f"platform: {result.platform} ({script.init_system})"]
    if verb == "startup":
        where = f"wrote {result.written}" if result.written else f"destination: {script.path}"
    else:
        where = f"deleted {result.written}" if result.written else f"file: {script.path}"
    lines.append(where)
    lines += [f"ran: {shlex.join(argv)}" for argv in result.ran]
    lines += [f"note: {note}" for note in result.notes if note]
    if result.todo:
        goal = "remove" if verb == "unstartup" else "enable" if result.written else "install"
        lines.append(f"to {goal} it, run as {result.todo_as}:")
        lines.append(result.todo)
    elif verb == "startup":
        lines.append(f"remove it with: corral unstartup {result.platform}")
    return lines

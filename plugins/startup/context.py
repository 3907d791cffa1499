"""What a boot script is made from and of: :class:`StartupContext` (the user, homes,
executables and PATH, as PM2 computes them), :class:`StartupScript` (what a
generator returns) and :class:`StartupResult` (what ``startup()`` did).

The six generators (``corral.plugins.startup.systemd``, ...) and third-party
ones import these types from here.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corral import OptionError

ECHO_LIMIT = 200  # characters of a user's input an error message repeats


def shorten(value: object) -> str:
    """``repr(value)``, cut to about :data:`ECHO_LIMIT` characters."""
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else f"{text[:ECHO_LIMIT]}... ({len(text)} chars)"


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

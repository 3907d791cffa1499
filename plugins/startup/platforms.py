"""Which init system a platform name means, and which one this machine runs.

A platform name (PM2's: ``ubuntu``, ``centos``, ``amazon``, ``darwin``, ...) maps
to an init system (:data:`PLATFORMS`); with no name the init system is detected
the way PM2 does, from the first tool found on ``PATH`` (:data:`DETECTION`).
"""

from __future__ import annotations

import difflib
import shutil

from corral import OptionError, StateError

from .context import shorten

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

"""Who an app runs as: the ``uid``/``gid`` options resolved as ``runuser`` does.

``uid`` alone means that user's primary group and supplementary groups
(``initgroups``), not the daemon's; ``gid`` overrides the primary group only.
The environment an app of another user sees names that user (``HOME``,
``USER``, ``LOGNAME``, ``SHELL``), as ``runuser -l`` and systemd's ``User=`` set them.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
from collections.abc import Mapping
from typing import Any

from corral.errors import OptionError, shorten


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The account a child is executed as, and the one its files are opened as."""

    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, the primary one among them
    user: str  # the login name, or the number when the passwd file has none
    home: str
    shell: str

    def env(self) -> dict[str, str]:
        """The variables naming the account, for the child's environment."""
        return {"HOME": self.home, "USER": self.user, "LOGNAME": self.user, "SHELL": self.shell}


# (uid_t)-1 means "leave unchanged" to setreuid/setregid: the child would stay root
_NO_ID = 2**32 - 1


def _number(key: str, value: Any) -> int | None:
    """``value`` as an id when it is a number, after checking it is one the kernel takes."""
    if not (
        isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit())
    ):
        return None
    number = int(value)
    if not 0 <= number < _NO_ID:
        raise OptionError(
            f"{key} {value!r} is not a valid id: numeric ids go from 0 to {_NO_ID - 1}",
            field=key,
        )
    return number


def _user_entry(value: Any) -> pwd.struct_passwd | None:
    number = _number("uid", value)
    try:
        if number is not None:
            return pwd.getpwuid(number)
        return pwd.getpwnam(str(value))
    except KeyError:
        if number is not None:
            return None  # a bare number is allowed; it then needs a gid
        raise OptionError(
            f"uid {shorten(value)}: no user of that name on this system: "
            "give an existing name or a numeric id",
            field="uid",
        ) from None


def _group_id(value: Any) -> int:
    number = _number("gid", value)
    if number is not None:
        return number
    try:
        return grp.getgrnam(str(value)).gr_gid
    except KeyError:
        raise OptionError(
            f"gid {shorten(value)}: no group of that name on this system: "
            "give an existing name or a numeric id",
            field="gid",
        ) from None


def resolve(options: dict[str, Any]) -> Credentials | None:
    """The credentials ``options`` ask for, or None when the app runs as the daemon."""
    uid, gid = options.get("uid"), options.get("gid")
    if uid is None and gid is None:
        return None
    if uid is None:
        me = pwd.getpwuid(os.getuid())
        group = _group_id(gid)
        return Credentials(os.getuid(), group, (group,), me.pw_name, me.pw_dir, me.pw_shell)
    entry = _user_entry(uid)
    if entry is None:
        if gid is None:
            raise OptionError(
                f"uid {uid}: no user has that id on this system, so it has no group: give gid too",
                field="uid",
            )
        group = _group_id(gid)
        return Credentials(int(uid), group, (group,), str(uid), "/", "/bin/sh")
    group = entry.pw_gid if gid is None else _group_id(gid)
    groups = tuple(dict.fromkeys([group, *os.getgrouplist(entry.pw_name, entry.pw_gid)]))
    shell = entry.pw_shell or "/bin/sh"
    return Credentials(entry.pw_uid, group, groups, entry.pw_name, entry.pw_dir or "/", shell)


def account_env(env: dict[str, str], creds: Credentials | None, options: dict[str, Any]) -> None:
    """Name the account in ``env`` for an app run as another user than the daemon's.

    ``HOME``, ``USER``, ``LOGNAME`` and ``SHELL`` come from the user's passwd entry,
    as ``runuser`` and systemd's ``User=`` set them: the caller's (root's ``HOME``)
    never reaches the app. A value the app's ``env`` or ``env_<name>`` option gives
    (or deletes) explicitly wins.
    """
    if creds is None or creds.uid == os.getuid():
        return  # the daemon's own user: its environment already names it
    for key, value in creds.env().items():
        if not _explicit(key, env, options):
            env[key] = value


def _explicit(key: str, env: dict[str, str], options: dict[str, Any]) -> bool:
    """Whether ``env[key]`` (or its absence) is what one of the app's env options says."""
    for name, layer in options.items():
        if (name == "env" or name.startswith("env_")) and isinstance(layer, Mapping):
            if key not in layer:
                continue
            given = layer[key]
            if given is None or given == "null":
                if key not in env:
                    return True
            elif env.get(key) == str(given):
                return True
    return False

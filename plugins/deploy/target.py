"""One environment of PM2's ``deploy`` section, checked: :func:`select_target` -> :class:`Target`.

The section is read as PM2 writes it (``user``, ``host`` a string or a list, ``ref``,
``repo``, ``path``, ``port``, ``key``, ``ssh_options``, ``fetch``, the hooks, ``env``);
every problem is one line naming the field and the fix, raised before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral import ConfigError

# PM2's hook names: where each runs is in docs/plugins/deploy.md
HOOKS = ("pre-setup", "post-setup", "pre-deploy-local", "pre-deploy", "post-deploy")
ECHO_LIMIT = 80  # characters of a value an error message repeats
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")  # what a shell can export
DEPLOY_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")  # an environment: one plain word
# the deploy script's own variables are named so; no env entry may be (script.py)
RESERVED_PREFIX = "__CORRAL_DEPLOY_"
# names that change how bash runs the script itself, or that it cannot set (readonly)
BASH_NAMES = frozenset(
    (
        "IFS BASH_ENV ENV SHELLOPTS BASHOPTS CDPATH GLOBIGNORE PS4 BASH_XTRACEFD "
        "POSIXLY_CORRECT UID EUID PPID BASH_VERSINFO"
    ).split()
)


@dataclass(frozen=True)
class Target:
    """Where and how one environment deploys."""

    env_name: str
    hosts: tuple[str, ...]
    repo: str
    path: str
    ref: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    ssh_options: tuple[str, ...] = ()
    fetch: str | None = None  # "fast": shallow clones and fetches, as PM2's
    hooks: dict[str, str] = field(default_factory=dict)  # only the ones given, non-empty
    env: dict[str, str] = field(default_factory=dict)  # exported on the hosts

    @property
    def branch(self) -> str:
        """The branch ``setup`` clones: ``ref`` without its remote (``origin/main`` -> main)."""
        return self.ref.split("/", 1)[1]


def select_target(deploy: Any, env_name: str, source: str = "the config") -> Target:
    """The environment ``env_name`` of a ``deploy`` section, checked.

    ``source`` names the file in the errors. Raises ConfigError, one line, at the
    first problem: no section, a list instead of a mapping, an unknown environment
    (the known ones listed), a missing or malformed field.
    """
    if deploy is None:
        raise ConfigError(f"{source} has no deploy section: add deploy.{env_name} (see PM2's docs)")
    if not isinstance(deploy, Mapping):
        kind = "a list" if isinstance(deploy, list) else type(deploy).__name__
        raise ConfigError(
            f"{source}: deploy is {kind}: write it as a mapping of environment names "
            f"to settings (deploy: {{production: {{host: ..., repo: ...}}}})"
        )
    if not DEPLOY_NAME.match(env_name):
        raise ConfigError(
            f"deploy environment {_show(env_name)} is not one word: "
            "name it with letters, digits, _, . and -"
        )
    if env_name not in deploy:
        known = ", ".join(sorted(str(k) for k in deploy)) or "none"
        raise ConfigError(f"{source}: no deploy environment {env_name!r}: known: {known}")
    settings = deploy[env_name]
    where = f"{source}: deploy.{env_name}"
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"{where} is {type(settings).__name__}: write it as a mapping of settings"
        )
    return Target(
        env_name=env_name,
        hosts=_hosts(settings.get("host"), where),
        repo=_required(settings, "repo", where, "the git URL the hosts clone"),
        path=_path(settings, where),
        ref=_ref(settings.get("ref"), where),
        user=_user(settings, where),
        port=_port(settings.get("port"), where),
        key=_optional(settings, "key", where),
        ssh_options=_ssh_options(settings.get("ssh_options"), where),
        fetch=_optional(settings, "fetch", where),
        hooks=_hooks(settings, where),
        env=_env(settings.get("env"), where),
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "..."


def _required(settings: Mapping[str, Any], name: str, where: str, what: str) -> str:
    value = settings.get(name)
    if value is None or value == "":
        raise ConfigError(f"{where}.{name} is missing: give {what}")
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{name} is {_show(value)}: give {what} as a string")
    return value


def _path(settings: Mapping[str, Any], where: str) -> str:
    path = _required(settings, "path", where, "the directory on the hosts")
    if any(c in path for c in "\n\r\0"):
        raise ConfigError(
            f"{where}.path has a line break (or a NUL) in {_show(path)}: "
            "write the directory on one line"
        )
    return path


def _optional(settings: Mapping[str, Any], name: str, where: str) -> str | None:
    value = settings.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{name} is {_show(value)}: write it as a string")
    return value


def _ssh_word(text: str) -> bool:
    """Whether ``text`` can be ssh's destination: no blank in it, and not an option."""
    return not text.startswith("-") and text.split() == [text]


def _user(settings: Mapping[str, Any], where: str) -> str | None:
    user = _optional(settings, "user", where)
    if user is not None and not _ssh_word(user):
        raise ConfigError(f"{where}.user is {_show(user)}: a user name has no spaces or -")
    return user


def _hosts(value: Any, where: str) -> tuple[str, ...]:
    if value is None or value == "":
        raise ConfigError(f"{where}.host is missing: give a host name or a list of them")
    hosts = [value] if isinstance(value, str) else value
    if not isinstance(hosts, list):
        raise ConfigError(f"{where}.host is {_show(value)}: give a host name or a list of them")
    if not hosts:
        raise ConfigError(f"{where}.host is an empty list: give at least one host")
    for host in hosts:
        if not isinstance(host, str) or not host.strip():
            raise ConfigError(f"{where}.host has {_show(host)}: each host is a non-empty string")
        if not _ssh_word(host):
            raise ConfigError(f"{where}.host has {_show(host)}: a host name has no spaces or -")
    if len(set(hosts)) != len(hosts):
        raise ConfigError(f"{where}.host lists a host twice: list each host once")
    return tuple(hosts)


def _ref(value: Any, where: str) -> str:
    """PM2 clones the branch after the slash and resets to the whole ref after each
    fetch; a bare ``main`` would reset to the clone's own, never-updated branch."""
    if value is None or value == "":
        raise ConfigError(f"{where}.ref is missing: give the remote branch, as origin/main")
    if not isinstance(value, str):
        raise ConfigError(f"{where}.ref is {_show(value)}: give the remote branch, as origin/main")
    if value.startswith("-"):
        raise ConfigError(
            f"{where}.ref is {_show(value)}: a ref does not start with -: "
            "give the remote branch, as origin/main"
        )
    remote, _, branch = value.partition("/")
    if not remote or not branch:
        raise ConfigError(
            f"{where}.ref is {_show(value)}: give the remote and the branch, "
            f"as origin/{value or 'main'}"
        )
    return value


def _port(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    # PM2's files write it as a number or a string ("39999")
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{where}.port is {_show(value)}: give a port number from 1 to 65535")
    return int(text)


def _ssh_options(value: Any, where: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    options = [value] if isinstance(value, str) else value
    if not isinstance(options, list) or not all(isinstance(o, str) and o for o in options):
        raise ConfigError(
            f"{where}.ssh_options is {_show(value)}: "
            "give an ssh option (Name=value) or a list of them"
        )
    return tuple(options)


def _hooks(settings: Mapping[str, Any], where: str) -> dict[str, str]:
    hooks = {}
    for name in HOOKS:
        command = _optional(settings, name, where)
        if command and command.strip():  # PM2's files leave unused hooks as ''
            hooks[name] = command
    return hooks


def _env(value: Any, where: str) -> dict[str, str]:
    """PM2 exports each name upper-cased; values stay as written (true as "true")."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.env is {_show(value)}: give a mapping of names to values")
    env = {}
    for name, item in value.items():
        key = str(name).upper()
        if not ENV_NAME.match(key):
            raise ConfigError(f"{where}.env has {_show(name)}: names are letters, digits and _")
        if key.startswith(RESERVED_PREFIX):
            raise ConfigError(
                f"{where}.env has {_show(name)}: names starting with {RESERVED_PREFIX} "
                "are the deploy script's own: rename it"
            )
        if key == "SHARED":
            raise ConfigError(
                f"{where}.env has {_show(name)}: SHARED is set by the deploy (path/shared): "
                "rename it"
            )
        if key in BASH_NAMES:
            raise ConfigError(
                f"{where}.env has {_show(name)}: {key} is bash's own, it would change how "
                "the deploy script runs: set it in the hook itself"
            )
        if isinstance(item, (dict, list)) or item is None:
            raise ConfigError(f"{where}.env.{name} is {_show(item)}: give a string or a number")
        env[key] = ("true" if item else "false") if isinstance(item, bool) else str(item)
    return env


__all__ = ["DEPLOY_NAME", "HOOKS", "RESERVED_PREFIX", "Target", "select_target"]

"""``corral deploy``'s work, without the CLI: find the file, check the request, run it.

:func:`deploy` reads the file through ``corral.api.read_portable``, picks the
environment, refuses a host listed twice under two names (:func:`check_distinct`),
runs ``pre-deploy-local`` here when the command deploys, then the command's script
on every host (:mod:`.hosts`), and returns one result a host.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from corral import ConfigError, CorralError
from corral.api import read_deploy

from .hosts import HostResult, Printer, is_local, run_all
from .script import build
from .target import Target, select_target

# what `corral deploy ENV` looks for when no file is given, in this order (PM2's
# ecosystem file candidates, with corral's formats)
DEFAULT_FILES = (
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.config.json",
    "ecosystem.config.yaml",
    "ecosystem.config.yml",
    "ecosystem.config.toml",
    "ecosystem.json",
    "ecosystem.yaml",
    "ecosystem.yml",
    "ecosystem.toml",
)
# the suffixes corral's config reader takes (corral.options.config), and PM2's .json5:
# the first word is the file by its suffix alone, as PM2's isConfigFile decides
CONFIG_SUFFIXES = (".js", ".cjs", ".mjs", ".json", ".json5", ".yaml", ".yml", ".toml")
FORCE = "--force"  # PM2's: deploy with local changes; corral never looks at them

# every spelling PM2 takes -> the command of script.CALLS
COMMANDS = {
    "setup": "setup",
    "update": "update",
    "ref": "ref",
    "revert": "revert",
    "curr": "current",
    "current": "current",
    "prev": "previous",
    "previous": "previous",
    "list": "list",
    "exec": "exec",
    "run": "exec",
}
DEPLOYING = ("update", "ref", "revert")  # the commands pre-deploy-local runs before


def is_config_word(word: str) -> bool:
    """Whether the first word of ``corral deploy`` is the file (else it is ENV): by its
    suffix only, so that a file named like the environment (``production``) is not it."""
    return word.lower().endswith(CONFIG_SUFFIXES)


def split_words(words: Sequence[str]) -> tuple[str | None, str | None, list[str]]:
    """``[CONFIG] ENV [COMMAND [ARGS]]`` -> (CONFIG or None, ENV or None, the rest).

    PM2's ``--force`` may come anywhere before an ``exec`` command's own words: it
    is dropped (see :data:`FORCE`)."""
    words = list(words)
    lead = 0
    while lead < len(words) and words[lead] == FORCE:
        lead += 1
    words = words[lead:]
    path = None
    if words and is_config_word(words[0]):
        path, words = words[0], words[1:]
    words = _drop_force(words)
    if not words:
        return path, None, []
    return path, words[0], words[1:]


def _drop_force(words: list[str]) -> list[str]:
    """``words`` without ``--force``, except in what follows ``exec``/``run`` (the command's)."""
    kept: list[str] = []
    for index, word in enumerate(words):
        if COMMANDS.get(word) == "exec":
            return kept + words[index:]
        if word != FORCE:
            kept.append(word)
    return kept


def default_file(directory: Path | None = None) -> Path:
    """The first of :data:`DEFAULT_FILES` in ``directory`` (default: the current one,
    and the name is then relative, as the user would have typed it)."""
    base = directory or Path()
    for name in DEFAULT_FILES:
        if (base / name).is_file():
            return base / name
    raise ConfigError(
        f"no config file given and none in {base.absolute()}: give its path "
        f"(corral deploy FILE ENV ...) or add one of {', '.join(DEFAULT_FILES[:4])}"
    )


def load_target(path: str | os.PathLike, env_name: str) -> Target:
    """The environment ``env_name`` of the file's deploy section, with PM2's default
    post-deploy (``corral startOrRestart FILE --env ENV``) when it has none."""
    target = select_target(read_deploy(path), env_name, str(path))
    if "post-deploy" in target.hooks:
        return target
    # the file as the user named it, which is where it is in the clone too; an
    # absolute path is this machine's, so its name only
    name = Path(path).name if Path(path).is_absolute() else str(path)
    post_deploy = shlex.join(["corral", "startOrRestart", name, "--env", env_name])
    hooks = {**target.hooks, "post-deploy": post_deploy}
    return replace(target, hooks=hooks)


def parse_request(words: Sequence[str]) -> tuple[str, dict]:
    """``COMMAND [ARGS]`` -> (command, the keyword arguments of ``script.build``)."""
    words = _drop_force(list(words))
    if not words:
        return "update", {}
    word, rest = words[0], list(words[1:])
    command = COMMANDS.get(word)
    if command is None:
        known = "setup, update, revert [N], curr, prev, list, exec CMD, ref REF"
        raise ConfigError(f"unknown deploy command {word!r}: use one of {known}")
    if command == "revert":
        return command, {"steps": _steps(rest)}
    if command == "exec":
        if not rest:
            raise ConfigError("deploy exec needs a command: corral deploy ENV exec 'corral ls'")
        return command, {"exec_command": " ".join(rest)}
    if command == "ref":
        if len(rest) != 1:
            raise ConfigError("deploy ref needs one git ref: corral deploy ENV ref origin/main")
        if rest[0].startswith("-"):
            raise ConfigError(
                f"deploy ref takes a git ref, got {rest[0]!r}: a ref does not start with -"
            )
        return command, {"ref": rest[0]}
    if rest:
        raise ConfigError(f"deploy {word} takes no argument, got {' '.join(rest)!r}")
    return command, {}


def _steps(rest: list[str]) -> int:
    if not rest:
        return 1
    if len(rest) != 1 or not rest[0].isdigit() or int(rest[0]) < 1:
        raise ConfigError(
            f"deploy revert takes a count of deploys from 1 up, got {' '.join(rest)!r}"
        )
    return int(rest[0])


def _host_key(target: Target, host: str) -> tuple[str, str, int]:
    """Who and where ``host`` deploys: (user, address, port), as the duplicates check
    compares them. ``localhost`` is this user here; every loopback address is one.
    With an absolute ``path`` the user does not matter: it is one directory."""
    user, _, name = host.rpartition("@")
    if is_local(host):
        user, name = getpass.getuser(), "loopback"
    user = user or target.user or getpass.getuser()
    if target.path.startswith("/"):
        user = "*"
    return user, name.lower(), target.port or 22


def _resolve(names: set[str], timeout: float = 2.0) -> dict[str, set[str]]:
    """Each name's addresses ("loopback" for any of this machine's loopback ones), all
    looked up at once; a name that does not resolve within ``timeout`` is itself."""
    found: dict[str, set[str]] = {name: set() for name in names}

    def look_up(name: str) -> None:
        with contextlib.suppress(OSError, UnicodeError, ValueError):
            for *_, address in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP):
                ip = ipaddress.ip_address(str(address[0]).split("%")[0])
                found[name].add("loopback" if ip.is_loopback else str(ip))

    threads = {name: threading.Thread(target=look_up, args=(name,), daemon=True) for name in names}
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + timeout
    resolved = {}
    for name, thread in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        done = not thread.is_alive() and found[name]
        resolved[name] = set(found[name]) if done else {name}
    return resolved


def check_distinct(target: Target, source: str) -> None:
    """Refuse a host listed twice under two names (``localhost`` and ``127.0.0.1``,
    ``web1`` and ``deploy@web1``): the same user, port and address, after resolving
    the names (best effort: a name that does not resolve is compared as written)."""
    if len(target.hosts) < 2:
        return
    keys = {host: _host_key(target, host) for host in target.hosts}
    names = {key[1] for key in keys.values()}
    addresses = _resolve(names - {"loopback"})
    addresses["loopback"] = {"loopback"}
    seen: dict[tuple[str, str, int], str] = {}
    for host in target.hosts:
        user, name, port = keys[host]
        for address in sorted(addresses[name]):
            other = seen.setdefault((user, address, port), host)
            if other != host:
                where = "this machine" if address == "loopback" else address
                who = "" if user == "*" else f"{user}@"
                raise ConfigError(
                    f"{source}: deploy.{target.env_name}.host lists {other} and {host}, which "
                    f"are the same host ({who}{where}, port {port}): list each host once"
                )


def run_local_hook(target: Target, say: Printer) -> None:
    """``pre-deploy-local``, here in the current directory, once before every host."""
    command = target.hooks.get("pre-deploy-local")
    if not command:
        return
    say(f"local | pre-deploy-local: {command}")
    done = subprocess.run(["bash", "-c", command], check=False)
    if done.returncode != 0:
        raise CorralError(
            f"pre-deploy-local failed with status {done.returncode}: {command} (nothing deployed)"
        )


def deploy(
    path: str | os.PathLike | None,
    env_name: str,
    words: Sequence[str] = (),
    say: Printer = print,
) -> list[HostResult]:
    """Run ``corral deploy [PATH] ENV WORDS...`` and return one result a host.

    ``path`` None: the default file of the current directory. Everything is checked
    (file, environment, fields, command) before anything runs; raises ConfigError.
    """
    path = default_file() if path is None else path
    command, options = parse_request(words)
    target = load_target(path, env_name)
    check_distinct(target, str(path))
    script = build(target, command, base=Path.cwd(), **options)
    if command in DEPLOYING:
        run_local_hook(target, say)
    return run_all(target, script, say)


__all__ = [
    "COMMANDS",
    "DEFAULT_FILES",
    "check_distinct",
    "default_file",
    "deploy",
    "is_config_word",
    "load_target",
    "parse_request",
    "split_words",
]

"""``corral deploy``'s work, without the CLI: find the file, check the request, run it.

:func:`deploy` reads the file through ``corral.api.read_portable``, picks the
environment, runs ``pre-deploy-local`` here when the command deploys, then the
command's script on every host (:mod:`.hosts`), and returns one result a host.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from corral import ConfigError, CorralError
from corral.api import read_deploy

from .hosts import HostResult, Printer, run_all
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
CONFIG_SUFFIXES = (".js", ".cjs", ".mjs", ".json", ".json5", ".yaml", ".yml", ".toml")

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
    """Whether the first word of ``corral deploy`` is the file (else it is ENV)."""
    return word.lower().endswith(CONFIG_SUFFIXES) or Path(word).is_file()


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
    hooks = {**target.hooks, "post-deploy": f"corral startOrRestart {name} --env {env_name}"}
    return replace(target, hooks=hooks)


def parse_request(words: Sequence[str]) -> tuple[str, dict]:
    """``COMMAND [ARGS]`` -> (command, the keyword arguments of ``script.build``)."""
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
    script = build(target, command, base=Path.cwd(), **options)
    if command in DEPLOYING:
        run_local_hook(target, say)
    return run_all(target, script, say)


__all__ = [
    "COMMANDS",
    "DEFAULT_FILES",
    "default_file",
    "deploy",
    "is_config_word",
    "load_target",
    "parse_request",
]

"""An app file read for another machine: a container image, a Kubernetes cluster,
a systemd host.

:func:`read_portable` validates each app with the options of the installed
plugins (canonical names, every default filled in, a bad value refused with the
error ``corral start`` gives, a ``listen`` that is no address too), and resolves
what does not depend on the machine: the name, the instance count, the exec mode
and the env of ``--env NAME``. It checks nothing of this machine: the script,
the cwd, the accounts and the interpreter are the target's, and the caller's
environment is not mixed in. Exporters (``corral export``) and ``corral deploy``
read files through it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import ConfigError, OptionError, PluginError
from corral.options.address import parse_address
from corral.options.config import read_sections
from corral.options.schema import OptionSchema
from corral.options.typos import app_label

_ENV_OPTION = re.compile(r"^env_.+")


@dataclass(frozen=True)
class PortableApp:
    """One app of the file, as the target will run it."""

    name: str
    options: dict[str, Any]  # canonical, validated, defaults filled in
    env: dict[str, str]  # the app's env, with env_<name> over it; nothing of this machine's
    instances: int  # as written: 0 ("max") is one per CPU, -1 one less, as PM2 reads them
    exec_mode: str  # "fork" or "cluster"
    warnings: list[str] = field(default_factory=list)  # what the schema said of the options


@dataclass(frozen=True)
class ConfigFile:
    """A config file read by :func:`read_portable`."""

    path: Path
    apps: list[PortableApp]
    deploy: Any  # PM2's deploy section as written (environment name -> settings), or None


def read_portable(path: str | os.PathLike, *, env_name: str | None, manager: Any) -> ConfigFile:
    """Read ``path``'s apps and deploy section for another machine.

    ``env_name`` picks each app's ``env_<name>`` (PM2's ``--env``); ``manager`` is the
    plugin manager whose options validate the apps (``corral.api.read_portable``
    gives this environment's). Raises ConfigError naming the file and the app, at
    the first bad option.
    """
    schema = OptionSchema(manager.app_options())
    raw_apps, deploy = read_sections(path)
    apps = []
    for index, raw in enumerate(raw_apps):
        try:
            apps.append(_portable(schema, raw, env_name))
        except (OptionError, PluginError) as exc:
            raise ConfigError(f"{path}: {app_label(raw, index)}: {exc}") from None
    return ConfigFile(path=Path(path), apps=apps, deploy=deploy)


def _portable(schema: OptionSchema, raw: dict[str, Any], env_name: str | None) -> PortableApp:
    options, warnings = schema.normalize(raw)
    if options.get("listen"):
        check_listen(options["listen"])  # as corral start refuses it, before anything
    script = str(options["script"])
    name = options.get("name") or (script.split()[0] if " " in script else Path(script).stem)
    if env_name and raw.get("append_env_to_name", raw.get("appendEnvToName")) in (True, "true"):
        name = f"{name}-{env_name}"  # PM2's append_env_to_name
    options["name"] = name
    instances = options.get("instances")
    count = 1 if instances is None else int(instances)
    exec_mode = options.get("exec_mode") or (
        "cluster" if any(k in raw for k in ("instances", "i")) and _is_node(options) else "fork"
    )
    env: dict[str, str] = {}
    for layer in (options.get("env"), options.get(f"env_{env_name}") if env_name else None):
        for key, value in (layer or {}).items():
            if value is None or value == "null":
                env.pop(str(key), None)
            else:
                env[str(key)] = value if isinstance(value, str) else _text(value)
    return PortableApp(
        name=name,
        options=options,
        env=env,
        instances=count,
        exec_mode=str(exec_mode),
        warnings=warnings,
    )


def check_listen(value: str | int) -> None:
    """OptionError when corral start would refuse ``value`` as a ``listen`` address."""
    parse_address(value)


def _text(value: Any) -> str:
    """An env value as the child sees it (PM2 passes true as "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_node(options: dict[str, Any]) -> bool:
    interpreter = str(options.get("exec_interpreter") or "")
    if interpreter:
        return Path(interpreter.split()[0]).name.startswith(("node", "nodejs", "bun"))
    return str(options["script"]).endswith((".js", ".cjs", ".mjs"))


def env_options(options: dict[str, Any]) -> list[str]:
    """The ``env_<name>`` options an app declares (its environments)."""
    return sorted(k for k in options if _ENV_OPTION.match(k))


__all__ = ["ConfigFile", "PortableApp", "check_listen", "env_options", "read_portable"]

"""The systemd exporter's environment: an instance's variables as Environment= lines.

A secret-looking variable is withheld for an ``EnvironmentFile=`` unless
``--include-secrets`` is given.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from corral import OptionError
from corral.api import is_secret

from .systemd_command import interpreter_of
from .systemd_listen import listen_port
from .systemd_plan import AppUnits
from .systemd_quoting import env_assignment, plain_value

SECRETS_DIR = "/etc/corral"  # where the withheld secret variables are expected
# systemd's Environment= takes only these names
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def instance_env(app: Any, index: int) -> dict[str, str]:
    """The env corral gives an instance (ManagedProcess.child_env): the app's env, the
    instance index, increment_var, PORT and PYTHONUNBUFFERED."""
    options = app.options
    env = dict(app.env)
    env[str(options.get("instance_var") or "NODE_APP_INSTANCE")] = str(index)
    increment = options.get("increment_var")
    if increment:
        try:
            env[str(increment)] = str(int(app.env.get(increment, 0) or 0) + index)
        except ValueError:
            raise OptionError(
                f"increment_var {increment} must name a variable holding an integer, "
                f"got {app.env[increment]!r}: fix the env",
                field="increment_var",
            ) from None
    port = listen_port(options) or options.get("port")
    if port is not None:
        env["PORT"] = str(port)
    env["CORRAL_INSTANCE"] = str(index)
    if "python" in PurePosixPath(interpreter_of(options)).name:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def environment_lines(
    units: AppUnits, env: dict[str, str], include_secrets: bool, warnings: list[str] | None
) -> list[str]:
    """``Environment=`` lines, one variable each; a secret-looking one withheld for an
    ``EnvironmentFile=``. What is not written is said in ``warnings`` (None: said already,
    for another instance of the app)."""
    lines, withheld, bad = [], [], []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            bad.append(name)
        elif not include_secrets and is_secret(name, value):
            withheld.append(name)
        else:
            lines.append(f"Environment={env_assignment(name, value)}")
    app_name = units.app.name
    if bad and warnings is not None:
        warnings.append(
            f"{app_name}: env {', '.join(sorted(bad))}: systemd takes only names of letters, "
            "digits and _ (not starting with a digit): not exported"
        )
    if withheld:
        path = f"{SECRETS_DIR}/{units.base}.env"
        lines.append(f"EnvironmentFile={plain_value(path, 'name')}")
        if warnings is not None:
            warnings.append(
                f"{app_name}: env {', '.join(sorted(withheld))}: secret by name or value: not "
                f"written into the unit; put it in {path} (mode 0600), or pass --include-secrets"
            )
    return lines

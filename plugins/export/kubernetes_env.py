"""The Kubernetes exporter's env: an app's variables as a ConfigMap, the secret ones
as a Secret.
"""

from __future__ import annotations

import re

from corral.api import is_secret

from .kubernetes_names import metadata
from .kubernetes_settings import Settings

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # a ConfigMap key and a variable


def split_env(env: dict[str, str], notes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) variables; a name Kubernetes refuses is a note, not exported."""
    plain, secret = {}, {}
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            notes.append(f"env {key!r} is not a Kubernetes variable name: not exported")
        elif is_secret(key, value):
            secret[key] = value
        else:
            plain[key] = value
    return plain, secret


def config_map(name: str, labels: dict, settings: Settings, env: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(f"{name}-env", labels, settings),
        "data": dict(env),
    }


def secret_manifest(name: str, labels: dict, settings: Settings, env: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(f"{name}-secrets", labels, settings),
        "type": "Opaque",
        "stringData": dict(env),
    }

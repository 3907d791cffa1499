"""The Kubernetes exporter's settings: its params (--image, --namespace...), checked."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from corral import OptionError

from . import ExportRequest

# a Kubernetes namespace: a DNS-1123 label
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Settings:
    """The exporter's params, checked."""

    image: str
    namespace: str | None
    config_path: str  # the app file inside the image, as corral runtime reads it
    env_name: str | None
    include_secrets: bool


def settings_of(request: ExportRequest) -> Settings:
    """The params checked: OptionError naming the one that is wrong."""
    given = request.params
    image = str(given.get("image") or "").strip()
    if not image:
        raise OptionError(
            "--image is required: the image holding corral and the app "
            "(examples/Dockerfile builds one)",
            field="--image",
        )
    namespace = given.get("namespace")
    if namespace is not None and not _DNS_LABEL.match(namespace):
        raise OptionError(
            f"--namespace {namespace!r} is not a Kubernetes name: lowercase letters, "
            "digits and '-', at most 63",
            field="--namespace",
        )
    config_path = given.get("config_path") or f"/app/{request.config.path.name}"
    if not posixpath.isabs(config_path):
        raise OptionError(
            f"--config-path {config_path!r} must be absolute: the app file's path in the image",
            field="--config-path",
        )
    return Settings(
        image=image,
        namespace=namespace,
        config_path=config_path,
        env_name=request.env_name,
        include_secrets=bool(given.get("include_secrets")),
    )

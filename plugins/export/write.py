"""Rendering through an exporter, and writing what it made (``-o DIR``) or printing it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from corral import ConfigError, OptionError, PluginError, api

# a file an exporter names: one plain name, never a path out of the directory
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,200}$")


def exporters(manager: Any = None) -> dict[str, Any]:
    """Each installed exporter by its name; two of one name is a PluginError."""
    if manager is None:
        manager = api.load_plugins()
    found: dict[str, tuple[Any, str]] = {}
    hook = manager.pm.hook.corral_exporters
    for impl in reversed(hook.get_hookimpls()):  # pluggy's call order
        for exporter in impl.function() or ():
            if exporter.name in found:
                other = found[exporter.name][1]
                raise PluginError(
                    f"export target {exporter.name!r} is given by two plugins, "
                    f"{other!r} and {impl.plugin_name!r}: disable one"
                )
            found[exporter.name] = (exporter, impl.plugin_name)
    return {name: pair[0] for name, pair in sorted(found.items())}


def export(
    target: str,
    path: str | os.PathLike,
    *,
    env_name: str | None = None,
    params: dict[str, Any] | None = None,
    manager: Any = None,
) -> Any:
    """Read ``path`` for another machine and render it with the ``target`` exporter:
    its ExportResult. ConfigError for a bad file (naming the app and the option),
    OptionError for an unknown target."""
    # deferred: the plugin's own types, which import this module
    from corral.plugins.export import ExportRequest

    if manager is None:
        manager = api.load_plugins()
    found = exporters(manager)
    if target not in found:
        known = ", ".join(found) or "none: install one (export_kubernetes, export_systemd)"
        raise OptionError(f"no exporter for {target!r}: the targets are {known}", field="target")
    config = api.read_portable(path, env_name=env_name, manager=manager)
    if not config.apps:
        raise ConfigError(f"{path}: no apps to export (the file declares none)")
    result = found[target].render(
        ExportRequest(config=config, env_name=env_name, params=params or {})
    )
    for name in result.files:
        if not _FILE_NAME.match(name):
            raise PluginError(f"exporter {target!r} named a file {name!r}: not a plain file name")
    return result


def write_files(files: dict[str, str], dest: str, *, separator: str = "") -> list[Path]:
    """Write ``files`` into the directory ``dest`` (made if missing; a file of the same
    name is replaced, a symlink in its place is refused), or print them all when
    ``dest`` is ``-``. Returns the paths written."""
    if dest == "-":
        texts = list(files.values())
        for index, text in enumerate(texts):
            if index and separator:
                sys.stdout.write(separator)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return []
    folder = Path(dest)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(
            f"-o {dest}: cannot make the directory: {exc.strerror}", field="-o"
        ) from None
    if not folder.is_dir():
        raise OptionError(
            f"-o {dest} is not a directory: give a directory, or - for stdout", field="-o"
        )
    written = []
    for name, text in files.items():
        target = folder / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, 0o644)
        except OSError as exc:
            raise OptionError(f"cannot write {target}: {exc.strerror}", field="-o") from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        written.append(target)
    return written

"""The daemon's own settings: ``$CORRAL_HOME/corral.yaml``, each key owned by a plugin.

Most homes have no such file, and then nothing here reads YAML. A plugin
declares the keys it reads, and checks their values, with the
``corral_daemon_settings`` hook; the daemon (and the client, before it starts
a daemon) refuses a key no loaded plugin declares, naming the installed
plugin that would read it: a setting silently ignored would leave, say, a TCP
endpoint the user asked for unserved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corral import paths
from corral.errors import ConfigError, shorten


def read(home: Path) -> dict[str, Any]:
    """``corral.yaml`` of ``home`` as a mapping ({} without the file); ConfigError if bad."""
    path = paths.settings_file(home)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    from corral.options.formats import safe_yaml  # only when the file exists: most homes have none

    values = safe_yaml(text, path)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a mapping of settings, one 'name: value' a line")
    return values


def check(home: Path, manager: Any) -> dict[str, Any]:
    """The settings of ``home``, every key declared and checked by a plugin of ``manager``.

    A plugin's ConfigError reaches the caller unchanged; a key no loaded plugin
    declares is a ConfigError naming the installed plugin that declares it.
    """
    values = read(home)
    if not values:
        return values
    path = paths.settings_file(home)
    results = manager.call_checked("corral_daemon_settings", settings=values, source=str(path))
    known = [str(key) for keys in results for key in keys]
    for key in values:
        if key in known:
            continue
        owner = _installed_owner(key, str(path))
        if owner is not None:
            raise ConfigError(
                f"{path}: {shorten(key)} is a setting of the plugin '{owner}', which is not "
                f"loaded: load it (CORRAL_PLUGINS) or remove the setting"
            )
        import difflib  # deferred: only an unknown setting's hint needs it

        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
        raise ConfigError(f"{path}: unknown setting {shorten(key)} ({hint})")
    return values


def _installed_owner(key: Any, source: str) -> str | None:
    """The installed plugin that declares ``key``: an entry-point scan, on this error path only."""
    import inspect

    # deferred: pluggy and the entry points, on this error path only
    from corral.hooks import _entry_points

    for name, entry_point in sorted(_entry_points().items()):
        try:
            declare = getattr(entry_point.load(), "corral_daemon_settings", None)
            if declare is None:
                continue
            wanted = inspect.signature(declare).parameters
            args = {k: v for k, v in (("settings", {}), ("source", source)) if k in wanted}
            declared = declare(**args)
        except Exception:  # a broken plugin cannot own it
            continue
        if key in (declared or ()):
            return name
    return None

"""Loading plugins and calling hooks, each implementation isolated from the others.

Plugins come from the entry-point group ``corral`` (loaded once, lazily), or
from an explicit list of names and objects. When no list is given,
``CORRAL_PLUGINS`` chooses among the entry points: ``memory,bus`` loads only
those (empty: none), ``-watch,-cron`` loads all but those (pluggy's
``set_blocked``, so a denied plugin is never imported). ``CORRAL_TRACE_PLUGINS=1``
logs every hook call.

Dispatch keeps pluggy's guarantees while calling each implementation on its own:
``tryfirst``/``trylast`` order, ``firstresult`` (the first answer other than None
is returned, later implementations are not called), ``historic`` (a plugin
registered while the daemon runs gets the calls made since it started).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pluggy

from corral import entrypoints, hookspecs
from corral.errors import CorralError, PluginError
from corral.offload import OBSERVER_HOOKS, PluginWorkers, runs_on_loop
from corral.options.schema import OptionSchema
from corral.options.table import CORE_OPTIONS

GROUP = "corral"
log = logging.getLogger("corral.hooks")


@dataclass
class PluginRecord:
    """What ``corral plugins`` shows for one loaded plugin."""

    name: str
    dist: str | None = None
    version: str | None = None
    errors: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # hook -> calls dropped, queue full

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dist": self.dist,
            "version": self.version,
            "errors": self.errors,
            "dropped": dict(self.dropped),
        }


def _entry_points(cache: Path | None = None) -> dict[str, Any]:
    """The installed plugins' entry points by name (see corral.entrypoints for ``cache``)."""
    return entrypoints.entry_points(GROUP, cache)


def requested_plugins(
    cache: Path | None = None, available: dict[str, Any] | None = None
) -> list[str]:
    """The names ``load_plugins()`` loads: ``CORRAL_PLUGINS``'s list, or every installed
    plugin but the ones it leaves out (PluginError naming one that is not installed)."""
    available = _entry_points(cache) if available is None else available
    wanted, denied = _requested_names()
    for name in denied:
        if name not in available:
            raise _unknown(name, available)
    return [n for n in available if n not in denied] if wanted is None else wanted


def _requested_names() -> tuple[list[str] | None, list[str]]:
    """``CORRAL_PLUGINS`` as (the names to load or None for all, the names left out)."""
    value = os.environ.get("CORRAL_PLUGINS")
    if value is None:
        return None, []
    names = [name.strip() for name in value.split(",") if name.strip()]
    denied = [name[1:].strip() for name in names if name.startswith("-")]
    if not denied:
        return names, []
    if len(denied) != len(names) or not all(denied):
        raise PluginError(
            f"CORRAL_PLUGINS={value!r} mixes plugin names and -names: list the plugins "
            "to load (memory,bus) or only the ones to leave out (-watch,-cron)"
        )
    return None, denied


def _unknown(name: str, available: dict[str, Any]) -> PluginError:
    known = ", ".join(sorted(available)) or "none installed"
    return PluginError(
        f"unknown plugin '{name}' (installed: {known}): pip install it or fix the name"
    )


class PluginManager:
    """A pluggy manager for the ``corral`` project with isolated hook calls."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        for module in hookspecs.spec_modules():
            self.pm.add_hookspecs(module)
        self.records: dict[str, PluginRecord] = {}
        self.trace = os.environ.get("CORRAL_TRACE_PLUGINS", "") not in ("", "0")
        self.on_error: list[Any] = []  # callables(plugin_name, hook_name, exc)
        self.workers: PluginWorkers | None = None  # set while a daemon runs
        self._started_with: Any = None
        self._history: dict[str, list[dict[str, Any]]] = {}  # historic hook -> calls to replay

    # -- registration ------------------------------------------------------

    def load(
        self, plugins: Iterable[str | object] | None = None, cache: Path | None = None
    ) -> None:
        """Register ``plugins`` (names or objects), or the installed entry points
        (read from ``cache`` while it is fresh: corral.entrypoints)."""
        available = _entry_points(cache)
        if plugins is None:
            for name in _requested_names()[1]:
                self.pm.set_blocked(name)
            plugins = requested_plugins(cache, available)
        for plugin in plugins:
            if isinstance(plugin, str):
                self._load_name(plugin, available)
            else:
                self.register(plugin)
        self.pm.check_pending()
        OptionSchema(self.app_options())  # fail at load on an option declared twice

    def _load_name(self, name: str, available: dict[str, Any]) -> None:
        if name in self.records:
            return
        ep = available.get(name)
        if ep is None:
            raise _unknown(name, available)
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{name}' failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        self.register(module, name=name, dist=dist, version=version)

    def register(
        self,
        plugin: object,
        name: str | None = None,
        dist: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register one plugin object; a running daemon replays its historic hook calls to it."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self.records:
            raise PluginError(f"a plugin named '{name}' is already registered")
        if self.pm.is_blocked(name):
            raise PluginError(f"plugin '{name}' is left out by CORRAL_PLUGINS=-{name}")
        self.pm.register(plugin, name=name)
        self.records[name] = PluginRecord(name, dist, version)
        for hook_name, calls in list(self._history.items()):
            for kwargs in list(calls):
                self._call_impls(hook_name, kwargs, only=plugin)
        return name

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.records.pop(name, None)

    def names(self) -> list[str]:
        return list(self.records)

    # -- calling -----------------------------------------------------------

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call every implementation; an error is logged, not raised.

        Returns the non-None results as a list, or for a ``firstresult`` hook the
        first non-None result (None if there is none).
        """
        return self._call_impls(hook_name, kwargs)

    def call_strict(self, hook_name: str, **kwargs: Any) -> Any:
        """As ``call``, but an error raises PluginError naming the plugin."""
        return self._call_impls(hook_name, kwargs, strict=True)

    def call_checked(self, hook_name: str, **kwargs: Any) -> Any:
        """:meth:`call_strict`, but a plugin's CorralError reaches the caller unchanged."""
        try:
            return self.call_strict(hook_name, **kwargs)
        except PluginError as exc:
            if isinstance(exc.__cause__, CorralError):
                raise exc.__cause__ from None
            raise

    def validate_app(self, options: dict[str, Any], interpreter: str) -> None:
        """``corral_validate_app``: a plugin's CorralError reaches the caller unchanged."""
        self.call_checked("corral_validate_app", options=options, interpreter=interpreter)

    def _call_impls(
        self, hook_name: str, kwargs: dict[str, Any], *, strict: bool = False, only: object = None
    ) -> Any:
        hook = getattr(self.pm.hook, hook_name)
        opts = hook.spec.opts if hook.spec is not None else {}
        if opts.get("historic") and only is None:
            self._history.setdefault(hook_name, []).append(kwargs)
        results = []
        # pluggy calls the last registered first, with tryfirst/trylast respected
        workers = self.workers if hook_name in OBSERVER_HOOKS else None
        for impl in reversed(hook.get_hookimpls()):
            if only is not None and impl.plugin is not only:
                continue
            if workers is not None and not runs_on_loop(impl.plugin):
                args = [kwargs[arg] for arg in impl.argnames]
                if not workers.submit(impl.plugin_name, hook_name, impl.function, args):
                    self._record_drop(impl.plugin_name, hook_name)
                continue
            started = time.perf_counter()
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                if strict:
                    raise PluginError(
                        f"plugin '{impl.plugin_name}' failed in {hook_name}: {exc}"
                    ) from exc
                self._record_error(impl.plugin_name, hook_name, exc)
                continue
            finally:
                if self.trace:
                    elapsed = (time.perf_counter() - started) * 1000
                    log.info("hook %s plugin=%s %.2fms", hook_name, impl.plugin_name, elapsed)
            if result is not None:
                if opts.get("firstresult"):
                    return result
                results.append(result)
        return None if opts.get("firstresult") else results

    def _record_drop(self, plugin: str, hook_name: str) -> None:
        record = self.records.setdefault(plugin, PluginRecord(plugin))
        record.dropped[hook_name] = record.dropped.get(hook_name, 0) + 1

    def _record_error(self, plugin: str, hook_name: str, exc: BaseException) -> None:
        message = f"{hook_name}: {type(exc).__name__}: {exc}"
        record = self.records.setdefault(plugin, PluginRecord(plugin))
        record.errors.append(message)
        del record.errors[:-20]
        log.error("plugin %s failed in %s: %r", plugin, hook_name, exc)
        for callback in self.on_error:
            callback(plugin, hook_name, exc)
        if hook_name != "corral_plugin_error" and self._started_with is not None:
            self._report_error(plugin, hook_name, exc)

    def _report_error(self, plugin: str, hook_name: str, exc: BaseException) -> None:
        """``corral_plugin_error`` to every other plugin; a failure there is only logged."""
        kwargs = {"daemon": self._started_with, "plugin": plugin, "hook": hook_name, "error": exc}
        for impl in reversed(self.pm.hook.corral_plugin_error.get_hookimpls()):
            if impl.plugin_name == plugin:
                continue
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as failure:
                self._record_error(impl.plugin_name, "corral_plugin_error", failure)

    # -- what the core asks of plugins -----------------------------------

    def app_options(self) -> list[Any]:
        """Core options plus every plugin's, each tagged with its plugin's name."""
        options = list(CORE_OPTIONS)
        hook = self.pm.hook.corral_app_options
        for impl in reversed(hook.get_hookimpls()):
            try:
                declared = impl.function()
            except Exception as exc:
                raise PluginError(
                    f"plugin '{impl.plugin_name}' failed to declare options: {exc}"
                ) from exc
            options.extend(replace(opt, plugin=impl.plugin_name) for opt in declared or ())
        return options

    def rpc_commands(self) -> dict[str, Any]:
        commands: dict[str, Any] = {}
        owners: dict[str, str] = {}
        hook = self.pm.hook.corral_rpc_commands
        for impl in reversed(hook.get_hookimpls()):
            for name, handler in (impl.function() or {}).items():
                if name in commands:
                    raise PluginError(
                        f"RPC command '{name}' is served by both "
                        f"'{owners[name]}' and '{impl.plugin_name}'"
                    )
                commands[name] = handler
                owners[name] = impl.plugin_name
        return commands

    def daemon_started(self, daemon: Any) -> None:
        self._started_with = daemon
        loop = daemon.loop

        def failed(plugin: str, hook_name: str, exc: BaseException) -> None:
            loop.call_soon_threadsafe(self._record_error, plugin, hook_name, exc)

        self.workers = PluginWorkers(failed)
        self.call("corral_daemon_start", daemon=daemon)

    def daemon_stopped(self, daemon: Any) -> None:
        if self.workers is not None:
            workers, self.workers = self.workers, None
            workers.close()  # the events before the stop reach every plugin
        self.call("corral_daemon_stop", daemon=daemon)
        self._started_with = None
        self._history.clear()  # the calls to replay are the running daemon's

    def call_cli(self, group: Any) -> None:
        self.call("corral_cli", group=group)

    def plugin_records(self) -> list[dict[str, Any]]:
        return [record.to_dict() for record in self.records.values()]


def load_plugins(
    plugins: Iterable[str | object] | None = None, cache: Path | None = None
) -> PluginManager:
    """A manager with ``plugins`` loaded (names or objects), or the installed ones
    (their entry points read from ``cache`` while it is fresh: corral.entrypoints)."""
    manager = PluginManager()
    manager.load(plugins, cache)
    return manager

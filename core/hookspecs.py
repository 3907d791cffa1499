"""The hooks corral calls: the whole contract between the core and its plugins.

Every hook is keyword-only; an implementation asks only for the arguments it
needs. Each implementation is called on its own: if one raises, the error is
logged with the plugin's name in ``corral.log``, kept for ``corral plugins
--errors`` and passed to the other plugins' ``corral_plugin_error``, and the
other implementations still run. pluggy's markers mean what they mean in
pluggy: ``tryfirst`` and ``trylast`` order the calls; a ``firstresult`` hook
stops at the first answer other than None and the caller gets that one answer;
a ``historic`` hook is replayed to a plugin registered later (while the daemon
runs). Hook wrappers are not used by corral.

The observer hooks (``corral_process_event``, ``corral_process_message``,
``corral_log_chunk``) run on the plugin's own thread with a bounded backlog:
when a plugin is far behind, its log chunks and messages are dropped and
counted (``corral plugins --errors``, the ``dropped`` field of
``Client.plugins()``); process events are never dropped.

The docs in ``docs/hooks.md`` are generated from these docstrings.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pluggy

PROJECT = "corral"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# the modules that hold the specs, one area each, in the order docs/hooks.md shows them;
# each imports ``hookspec`` from here, so this module names them and imports none
SPEC_MODULES = ("hookspecs_lifecycle", "hookspecs_daemon", "hookspecs_client")


def spec_modules() -> list[ModuleType]:
    """The modules of :data:`SPEC_MODULES`, imported: what ``add_hookspecs`` registers."""
    return [importlib.import_module(f".{name}", __package__) for name in SPEC_MODULES]

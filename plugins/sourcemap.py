"""Source maps for node apps: stack traces that name the original file and line.

An app compiled to JavaScript (TypeScript, a bundler) ships ``app.js.map``
next to ``app.js``; with source maps on, node rewrites every stack trace
(uncaught errors in the error log, ``err.stack``) to point at ``src/app.ts:7``
instead of ``app.js:3``.

Options:

- ``source_map_support`` (``sourceMapSupport``): unset by default, which
  means *on* for node apps, as PM2 7 does; ``false`` turns it off; ``true``
  on an app that does not run under node is refused at start.
- ``disable_source_map_support`` (``disableSourceMapSupport``): ``true``
  turns it off, whatever ``source_map_support`` says (PM2 7's switch).

How: node's own ``--enable-source-maps`` flag (node 12.12 and later), put
right after the interpreter in the app's argv, where PM2 7 calls
``process.setSourceMapsEnabled(true)`` in its wrapper and PM2 6 loaded the
npm module ``source-map-support``: the same rewritten traces, with nothing to
install. The flag is left alone when ``node_args`` already has
``--enable-source-maps`` or ``--no-enable-source-maps``. bun is given
nothing (it runs TypeScript itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import corral
from corral.api import is_node

FLAG = "--enable-source-maps"
USER_FLAGS = (FLAG, "--no-enable-source-maps")


def wanted(options: dict[str, Any]) -> bool:
    """Whether an app with these options gets source maps (when it runs under node)."""
    if options.get("disable_source_map_support"):
        return False
    return options.get("source_map_support") is not False


def runs_node(interpreter: str) -> bool:
    """node itself, not bun (which ``corral.supervisor.spawn.is_node`` also accepts)."""
    return is_node(interpreter) and Path(interpreter).name.startswith("node")


def check_app(options: dict[str, Any], interpreter: str) -> None:
    """Refuse ``source_map_support: true`` on an app that does not run under node or bun."""
    if options.get("source_map_support") and not is_node(interpreter):
        runner = "no interpreter" if interpreter == "none" else Path(interpreter).name
        raise corral.OptionError(
            f"source_map_support is for node apps, and {options.get('name') or 'this app'} "
            f"runs under {runner}: remove the option, or set interpreter to node",
            field="source_map_support",
        )


def enable(spawn: Any, interpreter: str) -> None:
    """Add the flag right after the interpreter, wherever a wrapper put it in argv."""
    try:
        at = spawn.argv.index(interpreter)
    except ValueError:
        # another plugin hid the command in a string: NODE_OPTIONS still reaches node
        current = spawn.env.get("NODE_OPTIONS", "")
        if FLAG not in current.split():
            spawn.env["NODE_OPTIONS"] = f"{current} {FLAG}".strip()
        return
    spawn.argv.insert(at + 1, FLAG)


# -- hooks ------------------------------------------------------------------------


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "source_map_support",
            "bool",
            help="source-mapped stack traces for a node app (default: on for node, as PM2 7; "
            "false turns them off; true on a non-node app is an error)",
        ),
        corral.Option(
            "disable_source_map_support",
            "bool",
            False,
            help="turn off a node app's source-mapped stack traces",
        ),
    ]


# optionalhook: the core calls it once it declares the hook; until then it is simply not called
@corral.hookimpl(optionalhook=True)
def corral_validate_app(options: dict[str, Any], interpreter: str) -> None:
    check_app(options, interpreter)


@corral.hookimpl
def corral_before_spawn(app: Any, spawn: Any) -> None:
    if not runs_node(app.interpreter) or not wanted(app.options):
        return
    if any(arg.split("=")[0] in USER_FLAGS for arg in app.options.get("node_args") or ()):
        return
    enable(spawn, app.interpreter)

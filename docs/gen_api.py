"""Generate docs/api.md, every client call, from corral.rpc.table.

python docs/gen_api.py          # rewrite docs/api.md
python docs/gen_api.py --check  # exit 1 if docs/api.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from corral.rpc.table import CALLS

API_MD = Path(__file__).resolve().parent / "api.md"

HEAD = """# The client API: every call

Generated from `corral.rpc.table` by `python docs/gen_api.py`; the daemon's
core commands, both clients' PM2-named aliases and corral's module-level calls
are built from the same table, so this list is the whole API.

- **method**: on `corral.Client`, and on `corral.AsyncClient` (awaited) unless
  marked *sync only*. PM2's name, where it differs, is an alias on both.
- **module call**: `corral.<name>(...)` (and PM2's name) acts on the client of
  the last `corral.connect()`, as PM2's singleton does.
- **daemon command**: what it sends over RPC (`client.call(name, **args)`
  sends any); **plugin**: the plugin that serves it, without which it raises
  `corral.PluginError` naming that plugin.

| method | PM2's name | module call | daemon command | plugin | what it does |
|---|---|---|---|---|---|
"""


TAIL = """
## `list()`: compact, the environment on demand

`list()` returns a `ProcessInfo` per process, as `describe()` does, from a
compact reply: the field names once, one row of values per process, and no
environment (about 700 bytes an app, where `pm2 jlist` sends the environment
twice, in `pm2_env.env` and copied into `pm2_env`). Every property (`name`,
`status`, `pid`, `memory`, `cpu`, `options`, `info.field("pm_exec_path")`, ...)
reads that row, with no request. The environment comes on first use of
`info.env`, `info.pm2_env`, `info.to_dict()`, `info["pm2_env"]` or `==`: one
`describe` of that pm_id, kept afterwards (`NotFoundError` if the process was
deleted since the list). `list(env=True)` brings every environment at once
(`pm2 jlist`'s payload); its `to_dict()`s are what the old `list()` gave.
`AsyncClient.list()` does the same; its lazy fetch is one blocking round trip
(a property cannot await), so code that reads many environments in a loop
passes `env=True`. Memory and CPU figures in `list()` are at most a second
old; `describe()` and `jlist_json()` sample them afresh.

On the wire this is the `list` command with `form="rows"` (and `env`); `list`
without arguments answers in `pm2 jlist`'s shape as it always did, so a client
of an older corral talking to a newer daemon gets what it expects, and a newer
client falls back to it when an older daemon refuses the arguments.
"""


def render() -> str:
    rows = []
    for call in CALLS:
        name = f"`{call.name}`" + ("" if call.async_too else " (sync only)")
        pm2 = f"`{call.pm2}`" if call.pm2 else ""
        module = "yes" if call.module_call else ""
        rpc = f"`{call.rpc}`" if call.rpc else ""
        plugin = f"`{call.plugin}`" if call.plugin else ""
        rows.append(f"| {name} | {pm2} | {module} | {rpc} | {plugin} | {call.summary} |")
    return HEAD + "\n".join(rows) + "\n" + TAIL


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not API_MD.exists() or API_MD.read_text() != text:
            print("docs/api.md is stale: run python docs/gen_api.py")
            return 1
        return 0
    API_MD.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

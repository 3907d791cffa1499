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


def render() -> str:
    rows = []
    for call in CALLS:
        name = f"`{call.name}`" + ("" if call.async_too else " (sync only)")
        pm2 = f"`{call.pm2}`" if call.pm2 else ""
        module = "yes" if call.module_call else ""
        rpc = f"`{call.rpc}`" if call.rpc else ""
        plugin = f"`{call.plugin}`" if call.plugin else ""
        rows.append(f"| {name} | {pm2} | {module} | {rpc} | {plugin} | {call.summary} |")
    return HEAD + "\n".join(rows) + "\n"


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

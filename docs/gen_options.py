"""Regenerate the option table in README.md from ``corral.options.table.CORE_OPTIONS``.

python docs/gen_options.py          # rewrite README.md in place
python docs/gen_options.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from corral.hooks import load_plugins
from corral.options.schema import Option, camel
from corral.options.table import CORE_OPTIONS

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"


FIRST_PARTY = ("memory", "watch", "cron", "logrotate", "sourcemap", "bus")


def _row(opt: Option, *, plugin: bool) -> str:
    names = [opt.name, *opt.aliases]
    aliases = [*opt.aliases, *sorted({camel(n) for n in names} - set(names))]
    default = "" if opt.default in (None, (), [], {}) else f"`{opt.default!r}`".replace("'", '"')
    also = ", ".join(f"`{a}`" for a in aliases)
    owner = f" `{opt.plugin}` |" if plugin else ""
    return f"| `{opt.name}` |{owner} {also} | {opt.type} | {default} | {opt.help} |"


def table() -> str:
    """The core options, then those of the first-party plugins, marked with their plugin."""
    head = "| option | also accepted as | type | default | meaning |"
    rows = [head, "|---|---|---|---|---|", *(_row(o, plugin=False) for o in CORE_OPTIONS)]
    options = load_plugins(list(FIRST_PARTY)).app_options()
    plugin_rows = [_row(o, plugin=True) for o in options if o.plugin != "core"]
    rows += [
        "",
        "Options of the first-party plugins (refused, naming the plugin, when it is not loaded):",
        "",
        "| option | plugin | also accepted as | type | default | meaning |",
        "|---|---|---|---|---|---|",
        *plugin_rows,
    ]
    return "\n".join(rows)


def render(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> int:
    current = README.read_text()
    fresh = render(current)
    if "--check" in sys.argv:
        if fresh != current:
            print("README.md option table is stale: run python docs/gen_options.py")
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""An ecosystem file written out: the apps ``corral import`` read, as JS, JSON, YAML or TOML.

Every format but JSON starts with comment lines (where the apps came from, what
was not carried over); each loads back with ``corral start FILE`` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("yaml", "js", "json", "toml")


def render(apps: list[dict[str, Any]], fmt: str, comments: Sequence[str] = ()) -> str:
    """``{"apps": apps}`` in ``fmt`` (one of :data:`FORMATS`), ``comments`` on top."""
    data = {"apps": apps}
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    mark = "//" if fmt == "js" else "#"
    head = "".join(f"{mark} {line}\n" for line in comments)
    if fmt == "js":
        body = json.dumps(data, indent=2, ensure_ascii=False)
        return f"{head}module.exports = {body};\n"
    if fmt == "yaml":
        import yaml  # deferred: yaml (~15 ms), only for --format yaml

        class _Plain(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:
                return True  # apps sharing one env dict: each written out, no &id001

        text = yaml.dump(data, Dumper=_Plain, sort_keys=False, allow_unicode=True, width=1000)
        return head + text
    if fmt == "toml":
        return head + _toml(apps)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _toml(apps: list[dict[str, Any]]) -> str:
    """``[[apps]]`` tables: scalars and lists inline, mappings (env) as sub-tables."""
    out: list[str] = []
    for app in apps:
        out.append("[[apps]]")
        tables = []
        for key, value in app.items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                out.append(f"{_key(key)} = {_value(value)}")
        for key, table in tables:
            out.append(f"[apps.{_key(key)}]")
            out += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)

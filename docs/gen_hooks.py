"""Generate docs/hooks.md, the plugin hook reference, from the docstrings of the hookspecs.

python docs/gen_hooks.py          # rewrite docs/hooks.md
python docs/gen_hooks.py --check  # exit 1 if docs/hooks.md is stale

The docstrings are the only source: corral.hookspecs's for the introduction, then a
section per hookspec of the spec modules (``hookspecs.SPEC_MODULES``, in that order,
each in the order of its source), headed by its signature as written, then its
docstring, whether it is ``firstresult`` or ``historic``, and the code of its
``Example::`` block.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral import hookspecs

HOOKS_MD = Path(__file__).resolve().parent / "hooks.md"
SPEC_ATTR = "corral_spec"  # set by pluggy's HookspecMarker("corral")


@dataclass
class Docstring:
    """A hookspec docstring split into its parts."""

    prose: str
    example: str | None
    version: str | None


@dataclass
class Hook:
    name: str
    signature: str
    doc: Docstring
    firstresult: bool
    historic: bool


def specs() -> list[Callable[..., Any]]:
    """Every hookspec, module by module as ``SPEC_MODULES`` lists them, in source order."""
    found = []
    for module in hookspecs.spec_modules():
        own = [
            obj
            for obj in vars(module).values()
            if inspect.isfunction(obj) and getattr(obj, SPEC_ATTR, None) is not None
        ]
        found += sorted(own, key=lambda fn: fn.__code__.co_firstlineno)
    return found


def _annotation(value: Any) -> str:
    # with `from __future__ import annotations` every hint is the string written
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature(fn: Callable[..., Any]) -> str:
    """``name(arg: Type, ...) -> Return``, the type hints as written in the source."""
    sig = inspect.signature(fn)
    params = []
    for param in sig.parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(param.annotation)}"
        params.append(text)
    returns = ""
    if sig.return_annotation is not inspect.Signature.empty:
        returns = f" -> {_annotation(sig.return_annotation)}"
    return f"{fn.__name__}({', '.join(params)}){returns}"


def split_docstring(doc: str) -> Docstring:
    """The prose, the code of the ``Example::`` block, and the ``versionadded`` version."""
    lines = inspect.cleandoc(doc).splitlines()
    prose: list[str] = []
    example: list[str] | None = None
    version = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "Example::":
            example = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                example.append(lines[i])
                i += 1
            continue
        match = re.match(r"\.\. versionadded:: *(\S+)", line.strip())
        if match:
            version = match.group(1)
        else:
            prose.append(line)
        i += 1
    code = textwrap.dedent("\n".join(example)).strip("\n") if example is not None else None
    return Docstring("\n".join(prose).strip(), code or None, version)


def markdown(rst: str) -> str:
    """The little reStructuredText the docstrings use, as Markdown."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", rst)  # :class:`corral.Option`
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def hooks() -> list[Hook]:
    found = []
    for fn in specs():
        opts = getattr(fn, SPEC_ATTR)
        doc = split_docstring(fn.__doc__ or "")
        found.append(
            Hook(
                fn.__name__,
                signature(fn),
                doc,
                bool(opts.get("firstresult")),
                bool(opts.get("historic")),
            )
        )
    return found


def _calls(hook: Hook) -> str:
    if hook.firstresult:
        return (
            "**firstresult**: yes. The first answer other than `None` wins, in call order "
            "(`tryfirst` implementations first, then the most recently registered); later "
            "answers are not used."
        )
    return (
        "**firstresult**: no. Every implementation is called; the results that are not "
        "`None` are collected."
    )


def section(hook: Hook) -> str:
    parts = [
        f'<a id="{hook.name}"></a>',
        f"## `{hook.signature}`",
        "",
        markdown(hook.doc.prose),
        "",
        _calls(hook),
    ]
    if hook.historic:
        parts += [
            "",
            "**historic**: yes. A plugin registered while the daemon runs gets the calls "
            "made since it started, in order, when it is registered.",
        ]
    if hook.doc.version:
        parts += ["", f"*New in corral {hook.doc.version}.*"]
    if hook.doc.example:
        parts += ["", "Example:", "", "```python", hook.doc.example, "```"]
    return "\n".join(parts)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _summary(hook: Hook) -> str:
    return markdown(hook.doc.prose.split("\n\n")[0].replace("\n", " "))


def signature_types() -> list[tuple[str, str]]:
    """The corral names the signatures use (the ``if TYPE_CHECKING:`` imports of the spec
    modules, then the plugins' types of their ``PLUGIN_TYPES``), each where a plugin
    imports it from (a public module: ``corral`` or ``corral.api``), each once."""
    found: dict[str, str] = {}
    plugin_types: dict[str, str] = {}
    for spec_module in hookspecs.spec_modules():
        tree = ast.parse(Path(inspect.getfile(spec_module)).read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"):
                continue
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("corral"):
                    name = stmt.module
                    module = importlib.import_module(name)
                    for alias in stmt.names:
                        getattr(module, alias.name)  # an AttributeError: a stale import
                        found.setdefault(alias.name, f"{name}.{alias.name}")
        plugin_types.update(getattr(spec_module, "PLUGIN_TYPES", {}))
    return [*found.items(), *plugin_types.items()]


def render() -> str:
    all_hooks = hooks()
    intro = markdown(inspect.cleandoc(hookspecs.__doc__ or ""))
    lines = [
        "# Plugin hooks",
        "",
        "<!-- Generated by docs/gen_hooks.py from the docstrings in core/hookspecs.py and its "
        "spec modules (core/hookspecs_*.py): "
        "edit those, then run python docs/gen_hooks.py -->",
        "",
        intro.strip(),
        "",
        "An implementation is a function (or a method) named as the hook and decorated "
        "with `@corral.hookimpl`; it takes only the arguments it needs, by name. See "
        "[plugins.md](plugins.md) to write, load and test a plugin.",
        "",
        "| hook | firstresult | historic | what it is for |",
        "|---|---|---|---|",
        *(
            f"| [`{h.name}`](#{h.name}) | {_yes(h.firstresult)} | {_yes(h.historic)} "
            f"| {_summary(h)} |"
            for h in all_hooks
        ),
        "",
        *(f"{section(h)}\n" for h in all_hooks),
        "## Types in the signatures",
        "",
        *(f"- `{name}`: `{path}`" for name, path in signature_types()),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    fresh = render()
    if "--check" in sys.argv:
        current = HOOKS_MD.read_text() if HOOKS_MD.exists() else ""
        if fresh != current:
            print("docs/hooks.md is stale: run python docs/gen_hooks.py")
            return 1
        return 0
    HOOKS_MD.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Regenerate the module map in CONTRIBUTING.md: every module of core/ and plugins/,
grouped by the subpackage it lives in, each with the first line of its docstring.

python docs/gen_map.py          # rewrite CONTRIBUTING.md in place
python docs/gen_map.py --check  # exit 1 if the map is stale or a module has no docstring

The docstrings are the only source: a subpackage's title is its ``__init__``'s first
line, a module's line is its own. A module without a docstring fails the check.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
BEGIN, END = "<!-- map:begin -->", "<!-- map:end -->"

# the subpackages of core/, in the order the map shows them (top of the stack first);
# the top-level modules of corral come first, under TOP
TOP = "The package: its public names and the contract with plugins"
SUBPACKAGES = ["cli", "client", "rpc", "daemon", "supervisor", "options", "testing"]


def first_line(path: Path) -> str:
    """The first sentence line of ``path``'s module docstring, or '' without one."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    if not lines:
        return ""
    text = lines[0]
    for line in lines[1:]:  # a first sentence wrapped over lines ends at a blank line
        if not line or text.endswith("."):
            break
        text += " " + line
    return text


def modules(top: Path) -> list[str]:
    """Every module under ``top``, relative to it."""
    return sorted(
        str(p.relative_to(top)) for p in top.rglob("*.py") if "__pycache__" not in p.parts
    )


def section(title: str, where: str, top: Path, names: list[str]) -> list[str]:
    """One subpackage's part of the map: its title, then a line per module."""
    out = ["", f"**{title}** (`{where}`)", ""]
    for name in names:
        if where != "core/" and name == "__init__.py" and only_docstring(top / name):
            continue  # its docstring is the title
        out.append(f"- `{name}`: {first_line(top / name)}")
    return out


def only_docstring(path: Path) -> bool:
    """``path`` holds a docstring and nothing else (a subpackage's ``__init__``)."""
    return len(ast.parse(path.read_text()).body) <= 1


def render() -> tuple[str, list[str]]:
    """The map's markdown, and the modules that have no docstring."""
    core = ROOT / "core"
    out = [BEGIN]
    top = [m for m in modules(core) if "/" not in m]
    out += section(TOP, "core/", core, top)
    placed = set(top)
    for package in SUBPACKAGES:
        names = [
            m.removeprefix(f"{package}/") for m in modules(core) if m.startswith(f"{package}/")
        ]
        title = first_line(core / package / "__init__.py").rstrip(".")
        out += section(title, f"core/{package}/, corral.{package}", core / package, names)
        placed |= {f"{package}/{name}" for name in names}
    unplaced = [m for m in modules(core) if m not in placed]
    plugins = ROOT / "plugins"
    names = [m for m in modules(plugins) if m != "__init__.py"]
    out += section("First-party plugins", "plugins/, installed as corral.plugins", plugins, names)
    out += ["", END]
    undocumented = [
        m
        for m in modules(core) + [f"plugins/{n}" for n in names]
        if not first_line((core if not m.startswith("plugins/") else ROOT) / m)
        and not m.endswith("__init__.py")
    ]
    return "\n".join(out), [f"{m} (no subpackage in SUBPACKAGES)" for m in unplaced] + [
        f"{m} (no docstring)" for m in undocumented
    ]


def main(argv: list[str]) -> int:
    text = CONTRIBUTING.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new_map, problems = render()
    if problems:
        print("docs/gen_map.py cannot place:", ", ".join(problems))
        return 1
    new = text[:start] + new_map + text[end:]
    if "--check" in argv:
        if new != text:
            print("CONTRIBUTING.md's module map is stale: run python docs/gen_map.py")
            return 1
        return 0
    CONTRIBUTING.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

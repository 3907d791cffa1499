"""The layers hold: the import-linter contracts of pyproject.toml, and contrib's imports.

``.ci/lint-imports`` checks corral and its plugins (the contracts name what each
layer may import); contrib's packages are separate distributions that lint-imports
does not see, so their imports are read here, as are the plugins' (with the
``TYPE_CHECKING`` ones, which the contracts leave out).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what a plugin may import of corral: its public modules
PUBLIC = ("corral", "corral.api", "corral.testing", "corral.child")


def is_core_module(name: str) -> bool:
    """``corral.x`` is a module of the core (core/x.py or the package core/x/)."""
    tail = name.removeprefix("corral.").replace(".", "/")
    return (ROOT / "core" / f"{tail}.py").is_file() or (ROOT / "core" / tail).is_dir()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``, at any depth of the code
    (``from corral import daemon`` imports the package corral.daemon)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.append((node.lineno, name if is_core_module(name) else node.module))
    return sorted(set(found))


def private_imports(path: Path, own: str | None = None) -> list[str]:
    """``file:line: module`` for each corral module ``path`` imports that a plugin must
    not (``own``: a package of its own it may import, such as ``corral.plugins``)."""
    wrong = []
    for line, name in imported_modules(path):
        if name != "corral" and not name.startswith("corral."):
            continue
        if own is not None and (name == own or name.startswith(f"{own}.")):
            continue
        if name in PUBLIC:
            continue
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        wrong.append(f"{where}:{line}: {name}")
    return wrong


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "build" not in p.relative_to(folder).parts)


def test_contrib_imports_only_corral_public_modules():
    files = python_files(ROOT / "contrib")
    assert files, "no contrib package found"
    assert [w for path in files for w in private_imports(path)] == []


def test_plugins_import_only_corral_public_modules_even_for_types():
    files = python_files(ROOT / "plugins")
    assert [w for path in files for w in private_imports(path, own="corral.plugins")] == []


def test_the_check_reads_past_from_imports_and_functions(tmp_path):
    plugin = tmp_path / "p.py"
    plugin.write_text(
        "import corral\nfrom corral.api import parse_ms\nfrom corral import api, Option\n"
        "def f():\n    from corral.supervisor.monitor import TreeSampler\n"
        "if TYPE_CHECKING:\n    import corral.daemon.kernel\nfrom corral import options\n"
    )
    assert private_imports(plugin) == [
        "p.py:5: corral.supervisor.monitor",
        "p.py:7: corral.daemon.kernel",
        "p.py:8: corral.options",
    ]


def test_the_import_contracts_hold():
    """``.ci/lint-imports``: the contracts of pyproject.toml's [tool.importlinter]."""
    bindir = Path(sys.executable).parent
    if shutil.which("lint-imports", path=str(bindir)) is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    run = subprocess.run(
        [str(ROOT / ".ci" / "lint-imports")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{bindir}:/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stdout + run.stderr


# -- function-level imports: only the few that defer a slow import, each saying why ----

# modules slow enough to be worth deferring (tens of ms, a thread, or a C extension)
SLOW = (
    "rich",
    "click",
    "zmq",
    "psutil",
    "yaml",
    "json5",
    "watchdog",
    "croniter",
    "structlog",
    "pluggy",
    "importlib.metadata",
)
# files being split by another branch: their imports are listed in its report; the lead
# empties this list once that branch has merged
NOT_YET_CHECKED: tuple[str, ...] = ()
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _watched(node: ast.Import | ast.ImportFrom) -> bool:
    """Whether ``node`` imports a corral module (relative imports are corral's) or a slow one."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return True
        names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        names = [alias.name for alias in node.names]
    return any(
        name == root or name.startswith(f"{root}.") for name in names for root in ("corral", *SLOW)
    )


def _statement_lists(tree: ast.AST) -> list[tuple[list[ast.stmt], bool]]:
    """Every list of statements in ``tree`` and whether it runs inside a function;
    the body of ``if TYPE_CHECKING:`` is left out (it names types and runs nothing)."""
    found: list[tuple[list[ast.stmt], bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        in_function = in_function or isinstance(node, FUNCTIONS)
        for name in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, name, None)
            if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                continue
            if (
                name == "body"
                and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)
            ):
                continue
            found.append((block, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def unexplained_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: import`` for each function-level import of a corral module or a slow
    one in ``path`` that no comment explains, on one of its lines or on the line above."""
    lines = path.read_text().splitlines()
    wrong = []
    for block, in_function in _statement_lists(ast.parse("\n".join(lines), str(path))):
        for node in block if in_function else []:
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or not _watched(node):
                continue
            said = lines[node.lineno - 1 : node.end_lineno]
            if node.lineno >= 2 and lines[node.lineno - 2].lstrip().startswith("#"):
                said.append(lines[node.lineno - 2])
            if not any("#" in line for line in said):
                where = path.relative_to(root) if path.is_relative_to(root) else path.name
                wrong.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return wrong


def _not_yet_checked(path: Path) -> bool:
    return any(path.relative_to(ROOT).match(pattern) for pattern in NOT_YET_CHECKED)


def test_function_level_imports_say_why():
    """No import cycle hides in a function: an import of corral's or of a slow module
    inside a function defers a slow import, and its comment says which and why."""
    files = [p for folder in ("core", "plugins") for p in python_files(ROOT / folder)]
    assert len(files) > 50
    checked = [p for p in files if not _not_yet_checked(p)]
    assert [w for path in checked for w in unexplained_imports(path)] == []


def test_the_why_check_reads_branches_and_type_checking(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import click\n"  # module level: not its business
        "if TYPE_CHECKING:\n    from corral.daemon.kernel import Daemon\n"
        "def f():\n"
        "    import json\n"  # neither corral's nor slow
        "    from . import paths\n"  # 6: unexplained
        "    # deferred: rich, only for the table\n"
        "    from rich.table import Table\n"
        "    from .cli_render import make_console\n"  # 9: the comment is two lines up
        "    if Table:\n"
        "        import psutil  # deferred: psutil, only off Linux\n"
        "    else:\n"
        "        from importlib import metadata\n"  # 13: unexplained
        "    g = lambda: __import__('os')\n"
        "    def h():\n"
        "        from corral import (\n"
        "            api,  # the facade, only here\n"
        "        )\n"
        "        import zmq.asyncio\n"  # 19: unexplained
    )
    assert unexplained_imports(module) == [
        "m.py:6: from . import paths",
        "m.py:9: from .cli_render import make_console",
        "m.py:13: from importlib import metadata",
        "m.py:19: import zmq.asyncio",
    ]


def test_every_package_is_installed_by_pip_install_dot():
    """``pip install .`` (README's first command) installs the packages pyproject lists:
    a subpackage missing there is missing from a wheel, while the editable install of
    the tests still finds it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = set()
    for top, name in ((ROOT / "core", "corral"), (ROOT / "plugins", "corral.plugins")):
        for init in top.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                parts = init.parent.relative_to(top).parts
                on_disk.add(".".join((name, *parts)))
    assert listed == on_disk

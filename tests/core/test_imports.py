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
    (``from corral import daemon`` imports the module corral.daemon)."""
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
        "def f():\n    from corral.monitor import TreeSampler\n"
        "if TYPE_CHECKING:\n    import corral.daemon\nfrom corral import options\n"
    )
    assert private_imports(plugin) == [
        "p.py:5: corral.monitor",
        "p.py:7: corral.daemon",
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

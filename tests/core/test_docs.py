"""Docs generated from the code stay current."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from corral.hooks import load_plugins

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "generator",
    [
        "gen_options.py",  # README's option table
        "gen_hooks.py",  # docs/hooks.md
        "gen_map.py",  # CONTRIBUTING's module map: every module has a place
        "gen_api.py",  # docs/api.md, from corral.rpc.table
    ],
)
def test_generated_docs_are_current(generator):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / generator), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _gen_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_hooks", ROOT / "docs" / "gen_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_plugin_hooks_are_documented():
    gen = _gen_hooks()
    specs = gen.specs()
    assert len(specs) >= 10
    missing = []
    for spec in specs:
        doc = gen.split_docstring(spec.__doc__ or "")
        if not doc.prose:
            missing.append(f"{spec.__name__}: no docstring")
        if doc.version is None:
            missing.append(f"{spec.__name__}: no '.. versionadded::' line")
        if doc.example is None:
            missing.append(f"{spec.__name__}: no 'Example::' block")
    assert missing == []


def _example_plugins(name: str, code: str) -> list[object]:
    """The example run as a module: the module, and the objects it made of its own classes."""
    module = ModuleType(f"example_{name}")
    exec(compile(code, f"<{name} example>", "exec"), module.__dict__)
    own = tuple(
        v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__
    )
    return [module, *(v for v in vars(module).values() if own and isinstance(v, own))]


def test_every_hook_example_loads_as_a_plugin():
    gen = _gen_hooks()
    broken = []
    for spec in gen.specs():
        example = gen.split_docstring(spec.__doc__ or "").example
        if example is None:
            continue  # test_plugin_hooks_are_documented names it
        try:
            plugins = _example_plugins(spec.__name__, example)
            manager = load_plugins(plugins)  # pluggy checks every hookimpl against its spec
        except Exception as exc:
            broken.append(f"{spec.__name__}: {type(exc).__name__}: {exc}")
            continue
        impls = getattr(manager.pm.hook, spec.__name__).get_hookimpls()
        if not any(impl.plugin in plugins for impl in impls):
            broken.append(f"{spec.__name__}: the example does not implement it")
    assert broken == []

"""Rendering through an exporter, and writing what it made (``-o DIR``) or printing it."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

from corral import ConfigError, OptionError, PluginError, api

# a file an exporter names: one plain name, never a path out of the directory
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,200}$")


def exporters(manager: Any = None) -> dict[str, Any]:
    """Each installed exporter by its name; two of one name is a PluginError."""
    if manager is None:
        manager = api.load_plugins()
    found: dict[str, tuple[Any, str]] = {}
    hook = manager.pm.hook.corral_exporters
    for impl in reversed(hook.get_hookimpls()):  # pluggy's call order
        for exporter in impl.function() or ():
            if exporter.name in found:
                other = found[exporter.name][1]
                raise PluginError(
                    f"export target {exporter.name!r} is given by two plugins, "
                    f"{other!r} and {impl.plugin_name!r}: disable one"
                )
            found[exporter.name] = (exporter, impl.plugin_name)
    return {name: pair[0] for name, pair in sorted(found.items())}


def export(
    target: str,
    path: str | os.PathLike,
    *,
    env_name: str | None = None,
    params: dict[str, Any] | None = None,
    manager: Any = None,
) -> Any:
    """Read ``path`` for another machine and render it with the ``target`` exporter:
    its ExportResult. ConfigError for a bad file (naming the app and the option),
    OptionError for an unknown target."""
    # deferred: the plugin's own types, which import this module
    from corral.plugins.export import ExportRequest

    if manager is None:
        manager = api.load_plugins()
    found = exporters(manager)
    if target not in found:
        known = ", ".join(found) or "none: install one (export_kubernetes, export_systemd)"
        raise OptionError(f"no exporter for {target!r}: the targets are {known}", field="target")
    config = api.read_portable(path, env_name=env_name, manager=manager)
    if not config.apps:
        raise ConfigError(f"{path}: no apps to export (the file declares none)")
    result = found[target].render(
        ExportRequest(config=config, env_name=env_name, params=params or {})
    )
    for name in result.files:
        if not _FILE_NAME.match(name):
            raise PluginError(f"exporter {target!r} named a file {name!r}: not a plain file name")
    return result


def write_files(files: dict[str, str], dest: str, *, separator: str = "") -> list[Path]:
    """Write ``files`` into the directory ``dest`` (made if missing), or print them all
    when ``dest`` is ``-``, each after a ``# file: NAME`` line. Returns the paths written
    (:func:`output` also tells which replaced a file)."""
    return [path for path, _ in output(files, dest, separator=separator)]


def output(files: dict[str, str], dest: str, *, separator: str = "") -> list[tuple[Path, bool]]:
    """:func:`write_files`, each path with whether it replaced a file of its name.

    On stdout each file comes after a ``# file: NAME`` line (a comment in a unit file and
    in YAML), so the output splits back into the files; ``separator`` (YAML's ``---``)
    comes after that line, between two files. In a directory, every target is checked
    before any is written: a symlink or anything but a regular file in a file's place is
    refused, naming it, and nothing is written. A regular file is replaced (what an
    export does), each through a temporary file of the directory renamed over it: a
    reader sees the old file or the new one, never half of one."""
    if dest == "-":
        for index, (name, text) in enumerate(files.items()):
            sys.stdout.write(f"# file: {name}\n")
            if index and separator:
                sys.stdout.write(separator)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return []
    folder = _directory(dest)
    plan = [(name, folder / name, _existing(folder, name, dest)) for name in files]
    done = []
    for name, target, replaced in plan:
        _replace(target, files[name])
        done.append((target, replaced))
    return done


def _refused(message: str) -> OptionError:
    return OptionError(message, field="-o")


def _directory(dest: str) -> Path:
    """``dest`` as a directory, made if missing; OptionError saying what it is if it is
    not one (a file, a symlink to nowhere)."""
    folder = Path(dest)
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _refused(f"-o {dest}: {exc.strerror}") from None
    if st is not None and stat.S_ISLNK(st.st_mode) and not folder.exists():
        where = os.readlink(folder)
        raise _refused(
            f"-o {dest} is a symlink to nowhere ({where}): give a directory, or - for stdout"
        )
    if st is None:
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            pass  # made meanwhile: checked below
        except OSError as exc:
            raise _refused(f"-o {dest}: cannot make the directory: {exc.strerror}") from None
    if folder.is_dir():
        return folder
    if folder.is_file():
        raise _refused(f"-o {dest} is a file: give a directory, or - for stdout")
    raise _refused(f"-o {dest} is not a directory: give a directory, or - for stdout")


def _existing(folder: Path, name: str, dest: str) -> bool:
    """Whether ``name`` in ``folder`` is a regular file the export replaces (False: there
    is none); OptionError for anything else there."""
    try:
        st = os.lstat(folder / name)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refused(f"-o {dest}: {name}: {exc.strerror} (nothing was written)") from None
    if stat.S_ISREG(st.st_mode):
        return True
    if stat.S_ISLNK(st.st_mode):
        raise _refused(
            f"-o {dest}: {name} is a symlink: not written through; remove it, or give "
            "another directory (nothing was written)"
        )
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a special file"
    raise _refused(
        f"-o {dest}: {name} is not a regular file ({kind}): remove it, or give another "
        "directory (nothing was written)"
    )


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to a new temporary file beside ``target`` (mode 0644 less the umask,
    as open() makes a file) and rename it over ``target``: a symlink put there since is
    replaced, never followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, flags, 0o644)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise _refused(f"cannot write {target}: {exc.strerror}") from None
    else:
        raise _refused(f"cannot write {target}: no free temporary name beside it")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise _refused(f"cannot write {target}: {exc.strerror}") from None
        raise

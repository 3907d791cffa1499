"""Config files: read an ecosystem file into the raw app dicts it declares.

JSON (leniently, as PM2: comments and trailing commas, through a JSON5
reader), YAML and TOML are read here; ``ecosystem.config.js`` (and ``.cjs``,
``.mjs``) through ``node`` when it is installed. A file may hold
``{"apps": [...]}``, a bare list of apps, or one app, as PM2 accepts. The apps
come back as written, except that relative paths are made absolute as PM2
makes them (see :func:`resolve_app_paths`): the daemon normalizes the options.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config_paths import resolve_app_paths as resolve_app_paths  # public here too
from .errors import ConfigError
from .typos import app_label

CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".toml", ".js", ".cjs", ".mjs")
_JS_SUFFIXES = (".js", ".cjs", ".mjs")
_SCRIPT_KEYS = ("script", "exec", "cmd", "command")  # PM2's names for the script
_NODE_TIMEOUT = 30  # seconds; a config file that takes longer is stuck
MAX_DEPTH = 100  # levels of nesting a config file may have (apps sit at 2 or 3)
MAX_YAML_VALUES = 100_000  # values a YAML file may hold once its aliases are expanded
MAX_JSON5_CHARS = 64 * 1024  # a .json file read leniently (JSON5) at most; real ones are ~2 KB

# Imports the file (CommonJS or ESM) and prints its exports after a marker, so
# whatever the file itself prints does not spoil the JSON.
_MARKER = "\n--corral-config--\n"
_NODE_LOADER = """
const { pathToFileURL } = require('url');
import(pathToFileURL(process.argv[1]).href).then((m) => {
  const conf = m.default !== undefined ? m.default : { ...m };
  const kind = conf === null ? 'null' : Array.isArray(conf) ? 'array' : typeof conf;
  const value = kind === 'object' || kind === 'array' ? conf : null;
  // PM2 require()s the file: a timer or socket the file leaves open must not hold node
  process.stdout.write(MARKER + JSON.stringify({ kind, value }), () => process.exit(0));
}).catch((err) => {
  const name = (err && err.name) || 'Error';
  const message = (err && err.message) || String(err);
  process.stderr.write(JSON.stringify({ name, message, stack: String((err && err.stack) || '') }));
  process.exit(1);
});
""".replace("MARKER", json.dumps(_MARKER))


_INI_SUFFIXES = ("", ".conf", ".ini", ".cfg")  # supervisord.conf, circus.ini, /etc/x


def is_config_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an existing config file rather than a script to run.

    A ``.js`` file counts only when named ``*.config.js`` or ``ecosystem*.js``
    (likewise ``.cjs``/``.mjs``): a plain ``app.js`` is a script. A path the OS
    cannot even look at (too long, say) is not one: the caller's own checks name it.
    """
    try:
        return _is_config_file(Path(path))
    except OSError:
        return False


def _is_config_file(path: Path) -> bool:
    name, suffix = path.name.lower(), path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        # a script (app.py, server.js, run.sh) is never opened to look for sections
        return suffix in _INI_SUFFIXES and _is_ini_config(path)
    if suffix in _JS_SUFFIXES and not (
        name.endswith(".config" + suffix) or name.startswith("ecosystem")
    ):
        return False
    return path.is_file()


def _is_ini_config(path: Path) -> bool:
    """A supervisord or circus ini file (by its sections, whatever its name)."""
    # deferred: the ini readers (configparser, shlex), only for an ini file
    from .imports import ini_kind

    return path.is_file() and ini_kind(path) is not None


def load_config(
    path: str | os.PathLike, cwd: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """The apps a config file declares, as raw dicts with absolute paths.

    Relative paths resolve as PM2 resolves them, against ``cwd``: the caller's
    working directory (default: this process's), see :func:`resolve_app_paths`.
    Raises ConfigError naming the file (and the line, where the parser gives
    it) when the file is missing, unreadable, malformed or declares no apps.
    """
    base_dir = Path(os.path.abspath(path)).parent
    return [
        resolve_app_paths(app, base_dir, cwd, source=f"{path}: {app_label(app, index)}")
        for index, app in enumerate(read_apps(path))
    ]


def load_config_text(
    text: str, cwd: str | os.PathLike | None = None, *, source: str = "<stdin>"
) -> list[dict[str, Any]]:
    """The apps of a JSON config given as text (``corral start -`` reads it from stdin).

    As PM2, relative paths resolve against ``cwd`` (default: this process's), which
    also stands for the file's folder. Raises ConfigError naming ``source``.
    """
    where = Path(source)
    try:
        data = _parse_json(where, text)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError(too_deep(source)) from None
    except ValueError as exc:
        raise ConfigError(f"{source}: {str(exc).split(';')[0]}") from None
    check_depth(data, source)
    base_dir = os.path.abspath(cwd) if cwd else os.getcwd()
    return [
        resolve_app_paths(app, base_dir, cwd, source=f"{source}: {app_label(app, index)}")
        for index, app in enumerate(_apps_of(where, data))
    ]


def read_apps(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The apps a config file declares, exactly as written (paths not resolved).

    Raises ConfigError as :func:`load_config` does.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"config file {path} {what}")
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES and _is_ini_config(path):
        from .imports import read_apps as read_ini_apps  # supervisord's or circus's

        return read_ini_apps(path)
    if suffix in _JS_SUFFIXES:
        data = _read_js(path)
    elif suffix in CONFIG_SUFFIXES:
        try:
            data = _PARSERS[suffix](path, _read_text(path))
        except RecursionError:  # the parsers recurse once per level
            raise ConfigError(too_deep(path)) from None
        except ValueError as exc:  # an integer over Python's 4300 digits, in any format
            raise ConfigError(f"{path}: {str(exc).split(';')[0]}") from None
    else:
        raise ConfigError(
            f"{path}: unknown config format {suffix or '(no suffix)'!r}: "
            f"use one of {', '.join(CONFIG_SUFFIXES)}"
        )
    check_depth(data, path)
    return _apps_of(path, data)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


def _parse_json(path: Path, text: str) -> Any:
    """Strict JSON first (fast, and its messages are the clearest); else JSON5, as PM2
    reads ``.json`` leniently: comments, trailing commas, unquoted keys."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as strict:
        if len(text) > MAX_JSON5_CHARS:  # the JSON5 reader takes ~50 ms per KB
            raise ConfigError(
                f"{path} line {strict.lineno}: {strict.msg} (comments and trailing commas "
                f"are read in files up to {MAX_JSON5_CHARS // 1024} KB: remove them, "
                "or write the file as YAML)"
            ) from None
        import json5  # only for a file that is not strict JSON

        try:
            return json5.loads(text)
        except ValueError as exc:
            message = str(exc)
            match = re.match(r"<string>:(\d+) (.*)$", message)
            if match is None or int(match[1]) <= strict.lineno:
                # where both fail at once, the strict reader says it better
                raise ConfigError(f"{path} line {strict.lineno}: {strict.msg}") from None
            raise ConfigError(f"{path} line {match[1]}: {match[2]}") from None


def _parse_yaml(path: Path, text: str) -> Any:
    return safe_yaml(text, path)


def safe_yaml(text: str, source: str | os.PathLike) -> Any:
    """``yaml.safe_load(text)``, refusing what would take the reader's memory or time.

    Aliases are followed once each while the file is checked: a file whose
    values, aliases expanded, number more than :data:`MAX_YAML_VALUES` (a
    "billion laughs" file), that nests deeper than :data:`MAX_DEPTH` levels or
    whose alias refers to itself is refused with a ConfigError naming ``source``.
    """
    import yaml  # only when a YAML file is read: the CLI's start stays light

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _YamlSize(source).of(node, 1)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(too_deep(source)) from None
    finally:
        loader.dispose()


class _YamlSize:
    """The number of values under a YAML node once its aliases are expanded, and its height."""

    def __init__(self, source: str | os.PathLike) -> None:
        self.source = source
        self.known: dict[int, tuple[int, int]] = {}  # id(node): (values, height)
        self.open: set[int] = set()

    def of(self, node: Any, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in self.known:  # an alias: its values count again, where it is used
            size, height = self.known[key]
        elif key in self.open:
            raise ConfigError(f"{self.source}: an alias refers to the value that holds it")
        else:
            if depth > MAX_DEPTH:
                raise ConfigError(too_deep(self.source))
            self.open.add(key)
            children = node.value if isinstance(node.value, list) else []
            size, height = 1, 1
            for child in children:
                for sub in child if isinstance(child, tuple) else (child,):
                    sub_size, sub_height = self.of(sub, depth + 1)
                    size, height = size + sub_size, max(height, sub_height + 1)
            self.open.discard(key)
            self.known[key] = (size, height)
        if depth + height - 1 > MAX_DEPTH:
            raise ConfigError(too_deep(self.source))
        if size > MAX_YAML_VALUES:
            raise ConfigError(
                f"{self.source}: its aliases expand to more than {MAX_YAML_VALUES:,} values "
                "(a 'billion laughs' file?): write the values out, or use fewer aliases"
            )
        return size, height


def too_deep(source: str | os.PathLike) -> str:
    return f"{source}: nested more than {MAX_DEPTH} levels deep: flatten it"


def check_depth(data: Any, source: str | os.PathLike) -> None:
    """ConfigError when ``data`` nests lists and mappings more than :data:`MAX_DEPTH` levels."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise ConfigError(too_deep(source))
        stack.extend((child, depth + 1) for child in children)


def _parse_toml(path: Path, text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
        if match is None:
            raise ConfigError(f"{path}: {message}") from None
        raise ConfigError(f"{path} line {match[1]}: {message[: match.start()]}") from None


_PARSERS = {".json": _parse_json, ".yaml": _parse_yaml, ".yml": _parse_yaml, ".toml": _parse_toml}


def _read_js(path: Path) -> Any:
    """What a JavaScript config exports, read by node as JSON."""
    node = shutil.which("node")
    if node is None:
        raise ConfigError(
            f"{path}: reading a JavaScript config needs node, which is not installed: "
            "install node or convert the file to JSON or YAML"
        )
    try:
        done = subprocess.run(
            [node, "-e", _NODE_LOADER, os.path.abspath(path)],
            capture_output=True,
            text=True,
            timeout=_NODE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{path}: node did not finish reading it in {_NODE_TIMEOUT} s") from None
    if done.returncode != 0 or _MARKER not in done.stdout:
        if not done.stderr.strip():
            raise ConfigError(
                f"{path}: node exited with code {done.returncode} before the file's exports "
                "could be read: remove the process.exit() it calls"
            )
        raise ConfigError(_node_failure(node, path, done.stderr))
    try:
        exported = json.loads(done.stdout.rsplit(_MARKER, 1)[1])
        kind, value = exported["kind"], exported["value"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: node printed no readable config") from None
    if kind not in ("object", "array"):
        article = "an" if kind[0] in "aeiou" else "a"
        what = kind if kind in ("null", "undefined") else f"{article} {kind}"
        raise ConfigError(f"{path}: exports {what}: {_JS_EXPECTED}")
    if value == {}:
        raise ConfigError(f"{path}: exports nothing (an empty object): {_JS_EXPECTED}")
    return value


_JS_EXPECTED = (
    "expected module.exports = {apps: [...]} or an array of apps, as PM2 reads it "
    "(PM2 does not call an exported function)"
)


def _node_failure(node: str, path: Path, stderr: str) -> str:
    """The message for a config node could not load, with its line when node tells it."""
    try:
        error = json.loads(stderr)
        summary, stack = f"{error['name']}: {error['message']}", error["stack"]
    except (ValueError, KeyError, TypeError):
        summary, stack = (stderr.strip().splitlines() or ["node failed"])[-1], stderr
    line = _js_line(path, stack)
    if line is None and summary.startswith("SyntaxError"):
        # An ESM syntax error's stack has no location; `node --check` prints it.
        try:
            check = subprocess.run(
                [node, "--check", os.path.abspath(path)],
                capture_output=True,
                text=True,
                timeout=_NODE_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
            line = _js_line(path, check.stderr)
        except subprocess.TimeoutExpired:
            pass
    where = f" line {line}" if line else ""
    return f"{path}{where}: {summary}{_json_in_js(path) if 'SyntaxError' in summary else ''}"


def _json_in_js(path: Path) -> str:
    """A hint for a ``.js`` file that holds a bare JSON object, which node cannot run."""
    import json5  # deferred: json5, only for the hint on a .js file

    try:
        data = json5.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return ""
    if not isinstance(data, (dict, list)):
        return ""
    return (
        " (the file holds a JSON object, not JavaScript: rename it to .json, "
        "or write module.exports = before the object)"
    )


def _js_line(path: Path, text: str) -> str | None:
    match = re.search(re.escape(os.path.abspath(path)) + r":(\d+)", text)
    return match[1] if match else None


def _apps_of(path: Path, data: Any) -> list[dict[str, Any]]:
    """The app list of a parsed file: ``{"apps": [...]}``, ``[...]`` or one app.

    ``{"pm2": [...]}`` is read as ``apps``, as PM2 reads it (a package.json section)."""
    key = next((k for k in ("apps", "pm2") if isinstance(data, dict) and k in data), None)
    if key:
        apps = data[key]
        if isinstance(apps, dict):
            apps = [apps]
        if not isinstance(apps, list):
            raise ConfigError(f"{path}: '{key}' must be a list of apps, got {_json_kind(apps)}")
    elif isinstance(data, list):
        apps = data
    elif isinstance(data, dict) and any(key in data for key in _SCRIPT_KEYS):
        apps = [data]
    else:
        near = (
            [k for k in data if isinstance(k, str) and k.lower() in _NEAR_APPS]
            if isinstance(data, dict)
            else []
        )
        hint = f" (the file has {near[0]!r}: rename it 'apps')" if near else ""
        raise ConfigError(
            f'{path}: no apps found: expected {{"apps": [...]}}, a list of apps, '
            f"or one app with a 'script'{hint}"
        )
    if not apps:
        raise ConfigError(f"{path}: no apps found: the list of apps is empty")
    for index, app in enumerate(apps):
        if not isinstance(app, dict):
            raise ConfigError(f"{path}: apps[{index}] is not an object, got {_json_kind(app)}")
    return apps


_NEAR_APPS = ("app", "application", "applications", "process", "processes")


def _json_kind(value: Any) -> str:
    kinds = {bool: "a boolean", str: "a string", int: "a number", float: "a number", list: "a list"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)

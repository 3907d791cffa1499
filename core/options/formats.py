"""Config file formats: JSON, YAML, TOML and JavaScript read into data, within bounds.

JSON is read leniently, as PM2 reads it (comments and trailing commas, through a
JSON5 reader); ``.js``, ``.cjs`` and ``.mjs`` files through ``node`` when it is
installed. A file nesting deeper than :data:`MAX_DEPTH` levels, or a YAML file
whose aliases expand past :data:`MAX_YAML_VALUES` values, is refused with a
ConfigError naming it. What the data holds (its apps) is :mod:`corral.options.config`'s.
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

from corral.errors import ConfigError

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


def parse_json(path: Path, text: str) -> Any:
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


PARSERS = {".json": parse_json, ".yaml": _parse_yaml, ".yml": _parse_yaml, ".toml": _parse_toml}


def read_js(path: Path) -> Any:
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

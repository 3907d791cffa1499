"""Starter config files: what ``corral ecosystem`` (PM2's ``pm2 ecosystem``, alias
``init``) writes, one commented template per format corral reads.

Each template declares one app, ``app`` running ``app.py``, with the options a
new user reaches for first (name, script, args, instances, exec_mode,
autorestart, watch, max_memory_restart, restarts, env and env_production),
each with a comment saying what it does. ``corral start FILE`` loads every one
of them as written (tests/core/test_ecosystem.py starts each).

JSON has no comments: the ``.json`` starter uses ``//`` comments, which corral
reads (it reads a ``.json`` config leniently, as JSON5, as PM2 does); a tool
that wants strict JSON needs them deleted first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from corral.errors import ConfigError, OptionError

FORMATS = ("js", "json", "yaml", "toml")
DEFAULT_NAMES = {fmt: f"ecosystem.config.{fmt}" for fmt in FORMATS}  # js: PM2's own
SUFFIXES = {".js": "js", ".cjs": "js", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
SUFFIXES[".toml"] = "toml"

JS = """\
// corral ecosystem file: `corral start ecosystem.config.js` starts its apps
// (corral reads it through node, as PM2 does). Options: README, "App options".
module.exports = {
  apps: [
    {
      name: "app", // the app's name in `corral ls`, `corral logs app`, `corral restart app`
      script: "app.py", // the program, a path from where you run corral (as PM2)
      args: [], // arguments given to the script, e.g. ["--port", "8000"]
      instances: 1, // how many copies to run ("max": one per CPU)
      exec_mode: "fork", // "cluster": instances share a listening port (see README)
      autorestart: true, // restart the app when it exits
      watch: false, // true (or a list of paths): restart when its files change
      max_memory_restart: "300M", // restart an instance that uses more memory than this
      max_restarts: 16, // give up (status errored) after this many quick crashes in a row
      restart_delay: 0, // milliseconds to wait before each restart
      env: {
        // variables of every start
        APP_ENV: "development",
      },
      env_production: {
        // added with `corral start ecosystem.config.js --env production`
        APP_ENV: "production",
      },
    },
  ],
};
"""

JSON = """\
// corral ecosystem file: `corral start ecosystem.config.json` starts its apps.
// JSON has no comments: corral reads .json leniently (JSON5), so these // lines
// are fine here; delete them for a tool that wants strict JSON.
{
  "apps": [
    {
      // the app's name in `corral ls`, `corral logs app`, `corral restart app`
      "name": "app",
      // the program, a path from where you run corral (as PM2)
      "script": "app.py",
      // arguments given to the script, e.g. ["--port", "8000"]
      "args": [],
      // how many copies to run ("max": one per CPU)
      "instances": 1,
      // "cluster": instances share a listening port (see README)
      "exec_mode": "fork",
      // restart the app when it exits
      "autorestart": true,
      // true (or a list of paths): restart when its files change
      "watch": false,
      // restart an instance that uses more memory than this
      "max_memory_restart": "300M",
      // give up (status errored) after this many quick crashes in a row
      "max_restarts": 16,
      // milliseconds to wait before each restart
      "restart_delay": 0,
      // variables of every start
      "env": {"APP_ENV": "development"},
      // added with `corral start ecosystem.config.json --env production`
      "env_production": {"APP_ENV": "production"}
    }
  ]
}
"""

YAML = """\
# corral ecosystem file: `corral start ecosystem.config.yaml` starts its apps.
# Options: README, "App options".
apps:
  - name: app              # the app's name in `corral ls`, `corral logs app`
    script: app.py         # the program, a path from where you run corral (as PM2)
    args: []               # arguments given to the script, e.g. ["--port", "8000"]
    instances: 1           # how many copies to run ("max": one per CPU)
    exec_mode: fork        # cluster: instances share a listening port (see README)
    autorestart: true      # restart the app when it exits
    watch: false           # true (or a list of paths): restart when its files change
    max_memory_restart: 300M  # restart an instance that uses more memory than this
    max_restarts: 16       # give up (status errored) after this many quick crashes
    restart_delay: 0       # milliseconds to wait before each restart
    env:                   # variables of every start
      APP_ENV: development
    env_production:        # added with `corral start ecosystem.config.yaml --env production`
      APP_ENV: production
"""

TOML = """\
# corral ecosystem file: `corral start ecosystem.config.toml` starts its apps.
# Options: README, "App options". Each [[apps]] table is one app.
[[apps]]
name = "app"               # the app's name in `corral ls`, `corral logs app`
script = "app.py"          # the program, a path from where you run corral (as PM2)
args = []                  # arguments given to the script, e.g. ["--port", "8000"]
instances = 1              # how many copies to run ("max": one per CPU)
exec_mode = "fork"         # "cluster": instances share a listening port (see README)
autorestart = true         # restart the app when it exits
watch = false              # true (or a list of paths): restart when its files change
max_memory_restart = "300M"  # restart an instance that uses more memory than this
max_restarts = 16          # give up (status errored) after this many quick crashes
restart_delay = 0          # milliseconds to wait before each restart

[apps.env]                 # variables of every start
APP_ENV = "development"

[apps.env_production]      # added with `corral start ecosystem.config.toml --env production`
APP_ENV = "production"
"""

TEMPLATES = {"js": JS, "json": JSON, "yaml": YAML, "toml": TOML}


def starter_path(fmt: str | None, file: str | None, cwd: Path) -> tuple[Path, str]:
    """Where the starter goes and its format: FILE's suffix names the format when
    ``fmt`` is None; without FILE, the default name of the format (js: PM2's)."""
    if fmt is not None and fmt not in FORMATS:
        raise OptionError(f"--format is one of {', '.join(FORMATS)}, got {fmt!r}", field="format")
    if file is None:
        fmt = fmt or "js"
        return cwd / DEFAULT_NAMES[fmt], fmt
    path = cwd / file
    found = SUFFIXES.get(path.suffix.lower())
    if fmt is None and found is None:
        raise OptionError(
            f"{file} does not end in .js, .json, .yaml, .yml or .toml: name the file so, "
            "or pass --format",
            field="format",
        )
    if fmt is not None and found != fmt:
        raise OptionError(
            f"--format {fmt} and the file name {file} disagree: name it *.{fmt}", field="format"
        )
    fmt = fmt or found
    assert fmt is not None
    name = path.name.lower()
    if fmt == "js" and not (name.endswith((".config.js", ".config.cjs")) or "ecosystem" in name):
        raise OptionError(
            f"corral start reads a .js file as a config only when named *.config.js or "
            f"ecosystem*.js, and {file} is neither: name it so",
            field="file",
        )
    return path, fmt


def write_starter(path: Path, fmt: str, *, force: bool = False) -> Path:
    """Write the ``fmt`` starter at ``path``; an existing file is kept unless ``force``
    (then it is replaced atomically). Returns the path written."""
    text = TEMPLATES[fmt]
    if not path.parent.is_dir():
        raise ConfigError(f"{path.parent} is not a directory: create it first")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory: name a file")
    try:
        if not force:
            try:  # O_EXCL: never over a file, nor through a link (even a dangling one)
                with open(path, "x", encoding="utf-8") as out:
                    out.write(text)
            except FileExistsError:
                raise ConfigError(f"{path} exists: pass --force to replace it") from None
            return path
        # a fresh random name made with O_EXCL: a link planted at a guessable name
        # (the pid) in a shared directory is never written through
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o644)
                out.write(text)
            os.replace(tmp, path)  # a link at ``path`` is replaced, its target untouched
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"{path} cannot be written: {exc.strerror}") from None
    return path

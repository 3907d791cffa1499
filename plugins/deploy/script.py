"""The bash script one deploy command runs on a host, fed to ``ssh HOST bash -s``.

The layout is PM2's (pm2-deploy), so a host PM2 deployed can be taken over and back:
``path/source`` is the git clone, ``path/current`` a symlink to it, ``path/shared``
(``logs``, ``pids``) for what outlives a release, and ``path/.deploys`` one commit a
line, the newest last. Every value of the config reaches the script through one
``shlex.quote``-d assignment at its top; the body only reads those variables.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

from .target import Target

RELEASE_MARK = "@@corral-release"  # the line a script ends with on success: MARK <short commit>
FAST_DEPTH = "--depth=5"  # PM2's `fetch: "fast"`

# the functions every script shares; the command's own call goes in main() below them
LIBRARY = r"""
say() { printf '  o %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# NAME COMMAND: a hook, run in $P/current as PM2 runs it (SHARED and env exported)
hook() {
  [ -n "$2" ] || return 0
  say "$1: $2"
  (cd "$P/current" && bash -c "$2") || fail "$1 hook failed: $2"
}

release() { printf '%s %s\n' "$MARK" "$(git -C "$P/source" rev-parse --short HEAD)"; }

cloned() {
  [ -d "$P/source/.git" ] || fail "$P/source is not a git clone: run setup first"
}

setup() {
  if [ -n "$PRE_SETUP_SCRIPT" ]; then
    say "pre-setup: the script $PRE_SETUP"
    printf '%s' "$PRE_SETUP_SCRIPT" | base64 -d | bash || fail "pre-setup script failed: $PRE_SETUP"
  elif [ -n "$PRE_SETUP" ]; then
    say "pre-setup: $PRE_SETUP"
    bash -c "$PRE_SETUP" || fail "pre-setup hook failed: $PRE_SETUP"
  fi
  if [ -d "$P/source/.git" ]; then
    fail "$P/source is a clone already: setup was done, run update"
  fi
  mkdir -p "$P/shared/logs" "$P/shared/pids" "$P/source" || fail "cannot make the directories of $P"
  say "cloning $REPO, branch $BRANCH"
  # $DEPTH is empty or --depth=5, never user text: unquoted so that empty is no word
  git clone $DEPTH --branch "$BRANCH" -- "$REPO" "$P/source" || fail "git clone of $REPO failed"
  ln -sfn "$P/source" "$P/current" || fail "cannot link $P/current"
  hook post-setup "$POST_SETUP"
  release
}

# COMMIT-ISH: fetch, reset the clone to it, record it, run post-deploy
deploy() {
  cloned
  hook pre-deploy "$PRE_DEPLOY"
  say "fetching"
  git -C "$P/source" fetch $DEPTH --all --tags || fail "git fetch failed in $P/source"
  say "resetting to $1"
  git -C "$P/source" reset --hard "$1" -- || fail "git reset --hard $1 failed in $P/source"
  ln -sfn "$P/source" "$P/current" || fail "cannot link $P/current"
  git -C "$P/source" rev-parse HEAD >> "$P/.deploys" || fail "cannot write $P/.deploys"
  hook post-deploy "$POST_DEPLOY"
  release
}

deploys() {
  if [ -s "$P/.deploys" ]; then wc -l < "$P/.deploys"; else echo 0; fi
}

# N: deploy again the commit N deploys before the current one
revert() {
  count=$(deploys)
  [ "$count" -gt "$1" ] || fail "$count deploy(s) recorded in $P/.deploys: cannot go back $1"
  commit=$(tail -n "$(($1 + 1))" "$P/.deploys" | head -n 1 | cut -d ' ' -f 1)
  say "reverting $1 deploy(s), to $commit"
  deploy "$commit"
}

current() {
  cloned
  git -C "$P/source" rev-parse --short HEAD || fail "cannot read the commit of $P/source"
  release
}

previous() {
  [ "$(deploys)" -ge 2 ] || fail "no previous deploy recorded in $P/.deploys"
  tail -n 2 "$P/.deploys" | head -n 1 | cut -d ' ' -f 1
}

list() {
  [ -s "$P/.deploys" ] || fail "no deploy recorded in $P/.deploys"
  tac "$P/.deploys" | awk '{ printf "%d\t%s\n", NR - 1, $0 }'
}

run() {
  cd "$P/current" || fail "no $P/current: run setup first"
  bash -c "$CMD"
  status=$?
  [ "$status" -eq 0 ] || fail "exit status $status: $CMD"
}
"""

# command -> the call main() makes
CALLS = {
    "setup": "setup",
    "update": 'deploy "$REF"',
    "ref": 'deploy "$REF"',
    "revert": 'revert "$N"',
    "current": "current",
    "previous": "previous",
    "list": "list",
    "exec": "run",
}


def path_word(path: str) -> str:
    """``path`` as a shell word on the host: ``~/x`` and a relative ``x`` are under the
    remote user's home (PM2 would resolve them on this machine, which means nothing there)."""
    path = path.rstrip("/") or "/"
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        path = path[2:]
    elif path.startswith("/"):
        return shlex.quote(path)
    return '"$HOME"/' + shlex.quote(path)


def pre_setup_script(command: str | None, base: Path) -> str:
    """The base64 text of ``pre-setup`` when its first word is a local file (PM2 then
    sends that file to the host's bash), else ``""``."""
    words = (command or "").split()
    if not words:
        return ""
    local = (base / Path(words[0]).expanduser()).resolve()
    if not local.is_file():
        return ""
    return base64.b64encode(local.read_bytes()).decode("ascii")


def build(
    target: Target,
    command: str,
    *,
    ref: str | None = None,
    steps: int = 1,
    exec_command: str = "",
    base: Path | None = None,
) -> str:
    """The whole script of ``command`` (a key of :data:`CALLS`) for ``target``.

    ``ref``: what ``ref`` deploys (default the target's); ``steps``: how far ``revert``
    goes back; ``exec_command``: the shell text ``exec`` runs in ``path/current``;
    ``base``: the directory a ``pre-setup`` script's path is relative to.
    """
    if command not in CALLS:
        raise ValueError(f"unknown deploy command {command!r}")
    hooks = target.hooks
    values = {
        "MARK": RELEASE_MARK,
        "REPO": target.repo,
        "REF": ref or target.ref,
        "BRANCH": target.branch,
        "DEPTH": FAST_DEPTH if target.fetch == "fast" else "",
        "N": str(steps),
        "CMD": exec_command,
        "PRE_SETUP": hooks.get("pre-setup", ""),
        "PRE_SETUP_SCRIPT": pre_setup_script(hooks.get("pre-setup"), base or Path.cwd()),
        "POST_SETUP": hooks.get("post-setup", ""),
        "PRE_DEPLOY": hooks.get("pre-deploy", ""),
        "POST_DEPLOY": hooks.get("post-deploy", ""),
    }
    lines = ["set -u", f"P={path_word(target.path)}"]
    lines += [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    lines.append('export SHARED="$P/shared"')
    lines += [f"export {name}={shlex.quote(value)}" for name, value in target.env.items()]
    # bash reads a script from stdin as it runs it: main() is parsed whole before it
    # starts, and its commands get /dev/null, so a hook reading stdin cannot eat the script
    main = f"main() {{\n  {CALLS[command]}\n}}\nmain </dev/null\n"
    return "\n".join(lines) + "\n" + LIBRARY + main


__all__ = ["CALLS", "RELEASE_MARK", "build", "path_word", "pre_setup_script"]

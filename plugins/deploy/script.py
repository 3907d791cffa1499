"""The bash script one deploy command runs on a host, fed to ``ssh HOST bash -s``.

The layout is PM2's (pm2-deploy), so a host PM2 deployed can be taken over and back:
``path/source`` is the git clone, ``path/current`` a symlink to it, ``path/shared``
(``logs``, ``pids``) for what outlives a release, and ``path/.deploys`` one commit a
line, the newest last. Every value of the config reaches the script through one
``shlex.quote``-d assignment at its top, to a variable of its own namespace
(``__CORRAL_DEPLOY_*``, which no ``env`` entry may name); the body only reads those
variables, always quoted. A command that changes ``path`` holds ``path/.deploy.lock``.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

from .target import RESERVED_PREFIX, Target

RELEASE_MARK = "@@corral-release"  # the line a script ends with on success: MARK <short commit>
FAST_DEPTH = "--depth=5"  # PM2's `fetch: "fast"`
LOCK_WAIT = 5  # seconds a deploy waits for another deploy of the same path to end
V = RESERVED_PREFIX  # the script's own variables: __CORRAL_DEPLOY_P, ...; env cannot name them

# the functions every script shares; the command's own call goes in main() below them.
# Every variable is quoted where it is read, and the arrays (DEPTH, PRE_SETUP_ARGS)
# expand as "${a[@]}" (the ${a[@]+...} form: bash before 4.4 calls an empty one unset).
# The lock is fd 9: each command that may outlive the script (a hook's daemon, git's
# background gc) gets it closed (9>&-), so it cannot hold the lock after the deploy.
_LIBRARY = r"""
say() { printf '  o %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# NAME COMMAND: a hook, run in $P/current as PM2 runs it (SHARED and env exported)
hook() {
  [ -n "$2" ] || return 0
  say "$1: $2"
  (cd "$@@P/current" && bash -c -- "$2" 9>&-) || fail "$1 hook failed: $2"
}

release() {
  printf '%s %s\n' "$@@MARK" "$(git -C "$@@P/source" rev-parse --short HEAD)"
}

cloned() {
  [ -d "$@@P/source/.git" ] || fail "$@@P/source is not a git clone: run setup first"
}

# path/.deploy.lock, held until the script ends: a second deploy of the same path
# waits LOCK_WAIT seconds for it, then fails. flock (util-linux) when the host has
# it, else a directory made and removed (mkdir is atomic), left behind only by a kill -9
lock() {
  local file="$@@P/.deploy.lock" tries=0
  local busy="another deploy of $@@P runs: wait for it"
  [ -d "$@@P" ] || return 0  # nothing to guard: the command fails on its own
  if command -v flock >/dev/null 2>&1; then
    exec 9>>"$file" || fail "cannot open $file"
    until flock -n 9; do
      tries=$((tries + 1))
      [ "$tries" -le "$@@LOCK_WAIT" ] || fail "$busy"
      sleep 1
    done
  else
    until mkdir "$file.d" 2>/dev/null; do
      tries=$((tries + 1))
      [ "$tries" -le "$@@LOCK_WAIT" ] || fail "$busy (no flock here: if none runs, remove $file.d)"
      sleep 1
    done
    trap 'rmdir "$@@P/.deploy.lock.d" 2>/dev/null' EXIT
  fi
}

setup() {
  if [ -n "$@@PRE_SETUP_SCRIPT" ]; then
    say "pre-setup: the script $@@PRE_SETUP"
    printf '%s' "$@@PRE_SETUP_SCRIPT" | base64 -d \
      | bash -s -- ${@@PRE_SETUP_ARGS[@]+"${@@PRE_SETUP_ARGS[@]}"} \
      || fail "pre-setup script failed: $@@PRE_SETUP"
  elif [ -n "$@@PRE_SETUP" ]; then
    say "pre-setup: $@@PRE_SETUP"
    bash -c -- "$@@PRE_SETUP" || fail "pre-setup hook failed: $@@PRE_SETUP"
  fi
  mkdir -p "$@@P" || fail "cannot make $@@P"
  lock
  if [ -d "$@@P/source/.git" ]; then
    fail "$@@P/source is a clone already: setup was done, run update"
  fi
  mkdir -p "$@@P/shared/logs" "$@@P/shared/pids" "$@@P/source" \
    || fail "cannot make the directories of $@@P"
  say "cloning $@@REPO, branch $@@BRANCH"
  git clone ${@@DEPTH[@]+"${@@DEPTH[@]}"} \
    --branch "$@@BRANCH" -- "$@@REPO" "$@@P/source" 9>&- \
    || fail "git clone of $@@REPO failed"
  ln -sfn "$@@P/source" "$@@P/current" || fail "cannot link $@@P/current"
  hook post-setup "$@@POST_SETUP"
  release
}

# COMMIT-ISH: fetch, reset the clone to it, record it, run post-deploy (locked by the caller)
deploy() {
  case "$1" in -*) fail "the ref $1 starts with -: git would read it as an option" ;; esac
  cloned
  hook pre-deploy "$@@PRE_DEPLOY"
  say "fetching"
  git -C "$@@P/source" fetch ${@@DEPTH[@]+"${@@DEPTH[@]}"} \
    --all --tags 9>&- || fail "git fetch failed in $@@P/source"
  say "resetting to $1"
  git -C "$@@P/source" reset --hard "$1" -- 9>&- \
    || fail "git reset --hard $1 failed in $@@P/source"
  ln -sfn "$@@P/source" "$@@P/current" || fail "cannot link $@@P/current"
  git -C "$@@P/source" rev-parse HEAD >> "$@@P/.deploys" \
    || fail "cannot write $@@P/.deploys"
  hook post-deploy "$@@POST_DEPLOY"
  release
}

deploys() {
  if [ -s "$@@P/.deploys" ]; then wc -l < "$@@P/.deploys"; else echo 0; fi
}

# N: deploy again the commit N deploys before the current one
revert() {
  local count commit
  count=$(deploys)
  [ "$count" -gt "$1" ] || fail "$count deploy(s) recorded in $@@P/.deploys: cannot go back $1"
  commit=$(tail -n "$(($1 + 1))" "$@@P/.deploys" | head -n 1 | cut -d ' ' -f 1)
  say "reverting $1 deploy(s), to $commit"
  deploy "$commit"
}

current() {
  cloned
  git -C "$@@P/source" rev-parse --short HEAD || fail "cannot read the commit of $@@P/source"
  release
}

previous() {
  [ "$(deploys)" -ge 2 ] || fail "no previous deploy recorded in $@@P/.deploys"
  tail -n 2 "$@@P/.deploys" | head -n 1 | cut -d ' ' -f 1
}

list() {
  [ -s "$@@P/.deploys" ] || fail "no deploy recorded in $@@P/.deploys"
  tac "$@@P/.deploys" | awk '{ printf "%d\t%s\n", NR - 1, $0 }'
}

run() {
  local status
  cd "$@@P/current" || fail "no $@@P/current: run setup first"
  bash -c -- "$@@CMD"
  status=$?
  [ "$status" -eq 0 ] || fail "exit status $status: $@@CMD"
}
"""
LIBRARY = _LIBRARY.replace("@@", RESERVED_PREFIX)  # @@P is $__CORRAL_DEPLOY_P

# command -> the call main() makes; the ones that change path take its lock first
CALLS = {
    "setup": "setup",
    "update": f'lock && deploy "${V}REF"',
    "ref": f'lock && deploy "${V}REF"',
    "revert": f'lock && revert "${V}N"',
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


def pre_setup_words(command: str | None) -> list[str]:
    """``pre-setup``'s words, split as a shell would (or at blanks, if it cannot)."""
    try:
        return shlex.split(command or "")
    except ValueError:  # an unclosed quote: the hook's own error, on the host
        return (command or "").split()


def pre_setup_script(command: str | None, base: Path) -> str:
    """The base64 text of ``pre-setup`` when its first word is a local file (PM2 then
    sends that file to the host's bash, with the other words as its arguments), else ``""``."""
    words = pre_setup_words(command)
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
    script = pre_setup_script(hooks.get("pre-setup"), base or Path.cwd())
    values = {
        "MARK": RELEASE_MARK,
        "REPO": target.repo,
        "REF": ref or target.ref,
        "BRANCH": target.branch,
        "N": str(steps),
        "CMD": exec_command,
        "LOCK_WAIT": str(LOCK_WAIT),
        "PRE_SETUP": hooks.get("pre-setup", ""),
        "PRE_SETUP_SCRIPT": script,
        "POST_SETUP": hooks.get("post-setup", ""),
        "PRE_DEPLOY": hooks.get("pre-deploy", ""),
        "POST_DEPLOY": hooks.get("post-deploy", ""),
    }
    # the script's own values first (P reads the host's $HOME before env could change
    # it), then env: its names are never the script's (target.RESERVED_PREFIX)
    lines = ["set -u", f"{V}P={path_word(target.path)}"]
    lines += [f"{V}{name}={shlex.quote(value)}" for name, value in values.items()]
    lines.append(f"{V}DEPTH=({FAST_DEPTH if target.fetch == 'fast' else ''})")
    arguments = pre_setup_words(hooks.get("pre-setup"))[1:] if script else []
    lines.append(f"{V}PRE_SETUP_ARGS=({' '.join(shlex.quote(a) for a in arguments)})")
    lines.append(f'export SHARED="${V}P/shared"')
    lines += [f"export {name}={shlex.quote(value)}" for name, value in target.env.items()]
    # bash reads a script from stdin as it runs it: main() is parsed whole before it
    # starts, and its commands get /dev/null, so a hook reading stdin cannot eat the script
    main = f"main() {{\n  {CALLS[command]}\n}}\nmain </dev/null\n"
    return "\n".join(lines) + "\n" + LIBRARY + main


__all__ = ["CALLS", "LOCK_WAIT", "RELEASE_MARK", "build", "path_word", "pre_setup_script"]

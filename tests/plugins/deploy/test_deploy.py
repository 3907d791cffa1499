"""``corral deploy`` end to end: two real ssh hosts on this machine, a bare git repo.

Each host is a throwaway user behind an ``sshd`` of its own (127.0.0.1 and
127.0.0.2, one port), so each has its own home: the deploy ``path`` (``~/app``) and
the CORRAL_HOME the ``post-deploy`` hook's ``corral startOrReload`` uses. The app
serves its version over HTTP, on the port each user's ``~/app-port`` names. The test
sets up, deploys v1, updates to v2, reverts one deploy, and checks what each host
served each time, then what curr, prev, list and exec say; another checks that a
dead host fails the command and is named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.testing import wait_for

from .sshd import (
    SSH_OPTIONS,
    User,
    as_user,
    authorize,
    free_port,
    host_python,
    keygen,
    make_user,
    missing,
    remove_user,
    start_sshd,
    stop,
    usable_python_version,
)

ADDRESSES = ["127.0.0.1", "127.0.0.2"]
DEAD_HOST = "127.0.0.3"  # nothing listens there
GIT = ["git", "-c", "user.name=corral tests", "-c", "user.email=tests@corral.invalid"]

SERVER = """\
import http.server, pathlib

VERSION = {version!r}
PORT = int((pathlib.Path.home() / "app-port").read_text())


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""


@dataclass
class Hosts:
    """The two hosts, and what the test deploys to them."""

    users: list[User]
    names: list[str]  # the host entries of the deploy file, user@address
    app_ports: list[int]
    scratch: Path  # the test's cwd: the deploy file, the keys, the bare repo
    work: Path  # the clone the test commits in


def _requirements() -> None:
    reason = missing()
    if reason and "sshd" in reason and os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs openssh-server: see .ci/run)")
    if reason:
        pytest.skip(reason)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    _requirements()
    scratch = Path(tempfile.mkdtemp(prefix="corral-deploy-", dir="/tmp"))
    scratch.chmod(0o755)  # the users clone the bare repo from here
    users: list[User] = []
    sshds: list[subprocess.Popen] = []
    bindir = Path(sys.executable).parent
    try:
        bindir = _bindir(scratch)
        key = keygen(scratch / "client-key")
        port = free_port(ADDRESSES)
        app_ports = [free_port(["127.0.0.1"]) for _ in ADDRESSES]
        for address, app_port in zip(ADDRESSES, app_ports, strict=True):
            user = make_user()
            users.append(user)
            authorize(user, key.with_suffix(".pub"))
            # the bare repo is root's: git refuses another user's repo unless told
            _write_owned(
                user, user.home / ".gitconfig", f"[safe]\n\tdirectory = {scratch}/app.git\n"
            )
            _write_owned(user, user.home / "app-port", str(app_port))
            sshds.append(start_sshd(scratch, address, port, user))
        work = _repository(scratch)
        names = [f"{user.name}@{address}" for user, address in zip(users, ADDRESSES, strict=True)]
        _deploy_file(scratch, names, port, key, bindir)
        yield Hosts(users, names, app_ports, scratch, work)
    finally:
        for user in users:
            as_user(user, bindir, "corral", "kill")
        for sshd in sshds:
            stop(sshd)
        for user in users:
            remove_user(user)
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


def _bindir(scratch: Path) -> Path:
    """Where the users' corral is (see sshd.host_python); skip when there is none."""
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", "1"], capture_output=True
    )
    if probe.returncode != 0 and not usable_python_version():
        pytest.skip("no python the test users can run (this one's home is closed to them)")
    return host_python(scratch)


def _write_owned(user: User, path: Path, text: str) -> None:
    path.write_text(text)
    os.chown(path, user.uid, -1)


def _repository(scratch: Path) -> Path:
    """A bare repo (scratch/app.git) with v1 on main, and the clone it came from."""
    bare, work = scratch / "app.git", scratch / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", "-B", "main"], check=True)
    ecosystem = {"apps": [{"name": "web", "script": "server.py"}]}
    (work / "ecosystem.json").write_text(json.dumps(ecosystem))
    _commit(work, "v1")
    return work


def _commit(work: Path, version: str) -> None:
    """Commit the server of ``version`` and push it to the bare repo's main."""
    (work / "server.py").write_text(SERVER.format(version=version))
    subprocess.run([*GIT, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", version], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "main"], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(work.parent / "app.git")], check=True)


def _deploy_file(scratch: Path, names: list[str], port: int, key: Path, bindir: Path) -> None:
    """A deploy-only file (no apps) with PM2's fields: ``production`` on both hosts,
    ``broken`` with a third host nothing listens on."""
    production = {
        "host": names,
        "port": str(port),  # PM2's files often write it as a string
        "key": str(key),
        "ssh_options": SSH_OPTIONS,
        "ref": "origin/main",
        "repo": str(scratch / "app.git"),
        "path": "~/app",
        # on each host, with the env below and SHARED exported
        "post-setup": 'printf %s "$GREETING" > "$SHARED/greeting"',
        "pre-deploy-local": f"echo deploying >> {scratch}/local.log",
        # a non-interactive ssh shell has no corral on its PATH: the hook sets it
        "post-deploy": f"PATH={bindir}:$PATH corral startOrReload ecosystem.json",
        "env": {"greeting": "it's $HOME, literally"},
    }
    broken = {**production, "host": [*names, DEAD_HOST]}
    deploy = {"deploy": {"production": production, "broken": broken}}
    (scratch / "deploy.json").write_text(json.dumps(deploy, indent=2))


def corral_deploy(hosts: Hosts, *words: str) -> subprocess.CompletedProcess:
    """``corral deploy deploy.json WORDS`` in the scratch directory."""
    return subprocess.run(
        [sys.executable, "-m", "corral", "deploy", "deploy.json", *words],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=hosts.scratch,
    )


def served(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
            return reply.read().decode()
    except OSError:
        return None


def summary(hosts: Hosts, done: subprocess.CompletedProcess) -> dict[str, str]:
    """The command succeeded; each host's summary line, after the host name."""
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == f"done: {len(hosts.names)} host(s) ok", done.stdout
    result = {}
    for name in hosts.names:  # in the order the hosts finished: any
        (line,) = [line for line in lines if line.startswith(f"{name}: ")]
        assert line.startswith(f"{name}: ok"), done.stdout
        result[name] = line[len(name) + 2 :]
    return result


def assert_released(hosts: Hosts, done: subprocess.CompletedProcess, commit: str) -> None:
    assert set(summary(hosts, done).values()) == {f"ok (release {commit})"}, done.stdout


def assert_serving(hosts: Hosts, version: str) -> None:
    for port in hosts.app_ports:
        wait_for(lambda port=port: served(port) == version, what=f"{version} on port {port}")


def head(work: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_setup_update_revert_on_two_hosts(hosts: Hosts) -> None:
    v1 = head(hosts.work)
    assert_released(hosts, corral_deploy(hosts, "production", "setup"), v1)
    for user in hosts.users:
        app = user.home / "app"
        assert (app / "current").resolve() == app / "source"  # PM2's layout
        assert (app / "shared" / "logs").is_dir() and (app / "shared" / "pids").is_dir()
        assert (app / "shared" / "greeting").read_text() == "it's $HOME, literally"

    assert_released(hosts, corral_deploy(hosts, "production", "update"), v1)
    assert_serving(hosts, "v1")

    _commit(hosts.work, "v2")
    v2 = head(hosts.work)
    assert_released(hosts, corral_deploy(hosts, "production", "update"), v2)
    assert_serving(hosts, "v2")

    assert_released(hosts, corral_deploy(hosts, "production", "revert", "1"), v1)
    assert_serving(hosts, "v1")

    # pre-deploy-local ran here once a deploy, not once a host
    assert (hosts.scratch / "local.log").read_text() == "deploying\n" * 3
    for user in hosts.users:
        history = (user.home / "app" / ".deploys").read_text().split()
        assert [commit[: len(v1)] for commit in history] == [v1, v2, v1]

    done = corral_deploy(hosts, "production", "curr")
    assert_released(hosts, done, v1)
    for name in hosts.names:
        assert f"{name} | {v1}" in done.stdout.splitlines()
    done = corral_deploy(hosts, "production", "prev")
    summary(hosts, done)
    for name in hosts.names:
        assert any(line.startswith(f"{name} | {v2}") for line in done.stdout.splitlines())
    done = corral_deploy(hosts, "production", "list")
    summary(hosts, done)
    for name in hosts.names:
        assert any(line.startswith(f"{name} | 2\t{v1}") for line in done.stdout.splitlines())
    done = corral_deploy(hosts, "production", "exec", "test -f server.py && whoami")
    summary(hosts, done)
    for name, user in zip(hosts.names, hosts.users, strict=True):
        assert f"{name} | {user.name}" in done.stdout.splitlines()


def test_a_dead_host_fails_the_command_and_is_named(hosts: Hosts) -> None:
    v1 = head(hosts.work)
    assert_released(hosts, corral_deploy(hosts, "production", "setup"), v1)
    done = corral_deploy(hosts, "broken", "curr")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == f"done: 2 host(s) ok, 1 failed: {DEAD_HOST}", done.stdout
    for name in hosts.names:
        assert f"{name}: ok (release {v1})" in lines, done.stdout
    (dead,) = [line for line in lines if line.startswith(f"{DEAD_HOST}: ")]
    assert dead.startswith(f"{DEAD_HOST}: failed: "), done.stdout
    assert "refused" in dead or "port" in dead, done.stdout  # ssh's own reason

"""Throwaway ssh hosts on this machine for the deploy tests: users, keys, ``sshd``s.

Each host is a user made with ``useradd -m`` (its own home, so its own deploy
``path`` and CORRAL_HOME) and an ``sshd -D`` of its own on a loopback address of its
own, all on one port; the client key and the host keys live in a temp directory.
Everything is removed by pid and by name at the end: only what was started here.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from corral.testing import kill_tree, wait_for

SSHD = shutil.which("sshd") or next(
    (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None
)
SYSTEM_PYTHON = "/usr/bin/python3"
SSH_OPTIONS = [
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "BatchMode=yes",
    "IdentitiesOnly=yes",
    "LogLevel=ERROR",
]


def missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (useradd, sshd)"
    for tool in ("useradd", "userdel", "runuser", "ssh", "ssh-keygen", "git"):
        if not shutil.which(tool):
            return f"needs {tool}"
    if SSHD is None:
        return "needs sshd: apt-get install -y openssh-server"
    return None


def open_to_all(path: Path) -> None:
    """Let the test users traverse ``path`` and read what is under it."""
    path.chmod(0o755)


def host_python(scratch: Path) -> Path:
    """A ``bin`` directory whose ``corral`` and ``python`` the test users can run.

    This venv's own when they can run it; else (its python under a home closed to
    them, as pyenv's under /root) a venv of the system's python of the same version
    that loads this venv's packages (corral included) through a .pth file.
    """
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", "import corral"],
        capture_output=True,
    )
    if probe.returncode == 0:
        return Path(sys.executable).parent
    venv = scratch / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    ours = sysconfig.get_path("purelib")
    Path(version.stdout.strip(), "corral-tests.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    corral = venv / "bin/corral"
    corral.write_text(
        f"#!{venv}/bin/python\nimport sys\nfrom corral.cli.main import main\nsys.exit(main())\n"
    )
    corral.chmod(0o755)
    return venv / "bin"


def usable_python_version() -> bool:
    """Whether the system's python can load this venv's packages (same minor version)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() == str(sys.version_info[:2])


@dataclass
class User:
    """A throwaway account."""

    name: str
    home: Path
    uid: int


def make_user() -> User:
    """``useradd -m`` a unique user; its password is '*' (not '!', which sshd without
    PAM takes for a locked account)."""
    name = f"crd{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "-m", "-s", "/bin/bash", "-p", "*", name], check=True, capture_output=True
    )
    entry = pwd.getpwnam(name)
    return User(name, Path(entry.pw_dir), entry.pw_uid)


def remove_user(user: User) -> None:
    """Kill what is left of the user's processes (its daemon and apps, by pid), then
    ``userdel -r``."""
    for process in psutil.process_iter(["uids"]):
        if process.info["uids"] and process.info["uids"].real == user.uid:
            kill_tree(process.pid)
    wait_for(
        lambda: (
            not [
                p
                for p in psutil.process_iter(["uids"])
                if p.info["uids"] and p.info["uids"].real == user.uid
            ]
        ),
        what=f"the processes of {user.name} to end",
    )
    done = subprocess.run(["userdel", "-r", user.name], capture_output=True, text=True)
    assert done.returncode in (0, 12), done.stderr  # 12: no mail spool to remove


def authorize(user: User, public_key: Path) -> None:
    """Let ``public_key`` log in as ``user``."""
    ssh_dir = user.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key.read_text())
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, user.uid, -1)


def keygen(path: Path) -> Path:
    """A new ed25519 key pair with no passphrase at ``path`` (and ``path``.pub)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def free_port(addresses: list[str]) -> int:
    """A TCP port free on every one of ``addresses``."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((addresses[0], 0))
            port = first.getsockname()[1]
            try:
                for address in addresses[1:]:
                    with socket.socket() as other:
                        other.bind((address, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no port free on all of {addresses}")


def start_sshd(scratch: Path, address: str, port: int, user: User) -> subprocess.Popen:
    """An ``sshd -D`` on ``address:port`` letting in ``user`` only, by key; up when it
    returns."""
    host_key = keygen(scratch / f"host-{address}")
    config = scratch / f"sshd-{address}.conf"
    config.write_text(
        "\n".join(
            (
                f"ListenAddress {address}",
                f"HostKey {host_key}",
                f"PidFile {scratch}/sshd-{address}.pid",
                f"AllowUsers {user.name}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin no",
                "LogLevel ERROR",
                "",
            )
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
    log = (scratch / f"sshd-{address}.log").open("w")
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, (scratch / f"sshd-{address}.log").read_text()
        try:
            socket.create_connection((address, port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd on {address}:{port} did not listen")


def stop(process: subprocess.Popen) -> None:
    """Stop an sshd started here (its pid, and the session processes under it)."""
    kill_tree(process.pid)
    process.wait(timeout=10)


def as_user(user: User, bindir: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``user`` with a login's bare environment (nothing of the test's)."""
    env = [f"HOME={user.home}", f"USER={user.name}", f"PATH={bindir}:/usr/bin:/bin"]
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "env", "-i", *env, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )

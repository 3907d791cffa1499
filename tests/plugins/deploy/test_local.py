"""``corral deploy`` to ``host: localhost``, which PM2 (and corral) run here without ssh.

The same scripts as over ssh, so these check the remote side's behaviour with no
sshd and no root: PM2's layout, the history, the hooks and where they run, the
failures (each a summary line and exit 1), and taking over a host PM2 set up.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

GIT = ["git", "-c", "user.name=corral tests", "-c", "user.email=tests@corral.invalid"]


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(work: Path, version: str) -> str:
    """Commit ``version`` to the work clone, push it, and return its short hash."""
    (work / "VERSION").write_text(version + "\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", version, cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return git("rev-parse", "--short", "HEAD", cwd=work)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp_path with a bare repo (app.git, v1 on main), its work clone, and a deploy
    file (eco.json) for ``production`` on localhost, in ``tmp_path/srv``."""
    git("init", "-q", "--bare", "-b", "main", str(tmp_path / "app.git"), cwd=tmp_path)
    git("clone", "-q", str(tmp_path / "app.git"), "work", cwd=tmp_path)
    git("checkout", "-q", "-B", "main", cwd=tmp_path / "work")
    commit(tmp_path / "work", "v1")
    write_deploy(tmp_path)
    return tmp_path


def write_deploy(site: Path, **changes: object) -> None:
    production = {
        "host": "localhost",
        "ref": "origin/main",
        "repo": str(site / "app.git"),
        "path": str(site / "srv"),
        "pre-deploy": "echo pre-deploy in $(pwd)",
        # reads stdin: it must get nothing, not the rest of the script
        "post-deploy": 'cat; echo "$STAGE $(cat VERSION)" >> "$SHARED/served"',
        "env": {"stage": "prod"},
        **changes,
    }
    (site / "eco.json").write_text(json.dumps({"deploy": {"production": production}}))


def deploy(site: Path, *words: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "deploy", "eco.json", "production", *words],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


def last_line(done: subprocess.CompletedProcess) -> str:
    """The host's summary line (the last line is the run's own: ``done: ...``)."""
    return [line for line in done.stdout.splitlines() if line.startswith("localhost: ")][-1]


def test_setup_update_revert_ref_keep_pm2s_layout_and_history(site: Path) -> None:
    v1 = git("rev-parse", "--short", "HEAD", cwd=site / "work")
    srv = site / "srv"
    done = deploy(site, "setup")
    assert last_line(done) == f"localhost: ok (release {v1})"
    assert done.stdout.splitlines()[-1] == "done: 1 host(s) ok"
    assert (srv / "current").resolve() == srv / "source"
    assert (srv / "shared" / "logs").is_dir() and (srv / "shared" / "pids").is_dir()

    assert last_line(deploy(site)) == f"localhost: ok (release {v1})"  # update by default
    v2 = commit(site / "work", "v2")
    done = deploy(site, "update")
    assert last_line(done) == f"localhost: ok (release {v2})"
    assert "localhost |   o pre-deploy: echo pre-deploy in $(pwd)" in done.stdout
    assert f"localhost | pre-deploy in {srv}/current" in done.stdout
    assert last_line(deploy(site, "revert")) == f"localhost: ok (release {v1})"
    assert last_line(deploy(site, "ref", "origin/main")) == f"localhost: ok (release {v2})"

    assert (srv / "shared" / "served").read_text() == "prod v1\nprod v2\nprod v1\nprod v2\n"
    history = [line[: len(v1)] for line in (srv / ".deploys").read_text().split()]
    assert history == [v1, v2, v1, v2]  # setup deploys nothing: it clones
    listed = [line for line in deploy(site, "list").stdout.splitlines() if "\t" in line]
    assert [line.split("\t")[0] for line in listed] == [f"localhost | {n}" for n in range(4)]
    assert [line.split("\t")[1][: len(v1)] for line in listed] == [v2, v1, v2, v1]  # newest first
    assert f"localhost | {v2}" in deploy(site, "curr").stdout.splitlines()
    assert any(
        line.startswith(f"localhost | {v1}") for line in deploy(site, "prev").stdout.split("\n")
    )
    assert "localhost | v2" in deploy(site, "exec", "cat", "VERSION").stdout.splitlines()


@pytest.mark.parametrize(
    ("words", "why"),
    [
        (("update",), "srv/source is not a git clone: run setup first"),
        (("revert", "1"), "0 deploy(s) recorded in"),
        (("prev",), "no previous deploy recorded in"),
        (("list",), "no deploy recorded in"),
        (("exec", "true"), "srv/current: run setup first"),
    ],
)
def test_a_command_before_setup_fails_with_why(site: Path, words: tuple, why: str) -> None:
    done = deploy(site, *words, ok=False)
    assert last_line(done).startswith("localhost: failed: "), done.stdout
    assert done.stdout.splitlines()[-1] == "done: 0 host(s) ok, 1 failed: localhost"
    assert why in last_line(done), done.stdout


def test_setup_twice_and_a_failing_hook_fail_the_host(site: Path) -> None:
    deploy(site, "setup")
    assert last_line(deploy(site, "setup", ok=False)).endswith(
        "srv/source is a clone already: setup was done, run update"
    )
    write_deploy(site, **{"post-deploy": "echo about to fail; exit 3"})
    done = deploy(site, ok=False)
    assert (
        last_line(done) == "localhost: failed: post-deploy hook failed: echo about to fail; exit 3"
    )
    assert last_line(deploy(site, "revert", "5", ok=False)).endswith(
        "deploy(s) recorded in " + str(site / "srv/.deploys") + ": cannot go back 5"
    )
    done = deploy(site, "exec", "exit 4", ok=False)
    assert last_line(done) == "localhost: failed: exit status 4: exit 4"


def test_a_failing_pre_deploy_local_deploys_nothing(site: Path) -> None:
    deploy(site, "setup")
    write_deploy(site, **{"pre-deploy-local": "exit 2"})
    done = deploy(site, ok=False)
    assert (
        done.stderr == "error: pre-deploy-local failed with status 2: exit 2 (nothing deployed)\n"
    )
    assert not (site / "srv" / ".deploys").exists()


def test_a_pre_setup_naming_a_local_script_runs_that_script_there(site: Path) -> None:
    (site / "prepare.sh").write_text('echo "prepared by $0" > "$HOME_MARK"\n')
    write_deploy(site, **{"pre-setup": "prepare.sh", "env": {"home_mark": str(site / "mark")}})
    deploy(site, "setup")
    assert (site / "mark").read_text() == "prepared by bash\n"


def test_a_host_pm2_deployed_is_taken_over(site: Path) -> None:
    """PM2's setup and one deploy, done by hand as its script does them."""
    srv = site / "srv"
    (srv / "shared" / "logs").mkdir(parents=True)
    git("clone", "-q", "--branch", "main", str(site / "app.git"), str(srv / "source"), cwd=site)
    (srv / "current").symlink_to(srv / "source")
    v1 = git("rev-parse", "HEAD", cwd=srv / "source")
    (srv / ".deploys").write_text(v1 + "\n")
    v2 = commit(site / "work", "v2")
    assert last_line(deploy(site)) == f"localhost: ok (release {v2})"
    assert last_line(deploy(site, "revert")) == f"localhost: ok (release {v1[: len(v2)]})"
    assert (srv / "current" / "VERSION").read_text() == "v1\n"


def test_env_cannot_change_what_the_deploy_does(site: Path) -> None:
    """env's REF, P and DEPTH are the hooks' variables, not the deploy's own."""
    deploy(site, "setup")
    v1 = git("rev-parse", "HEAD", cwd=site / "work")
    v2 = commit(site / "work", "v2")
    pwned = site / "PWNED"
    env = {
        "ref": v1,
        "p": str(site / "elsewhere"),
        "depth": f"--upload-pack=touch${{IFS}}{pwned};git-upload-pack",
        "stage": "prod",
    }
    write_deploy(site, env=env, fetch="fast", **{"pre-deploy": 'echo "hook sees $REF"'})
    done = deploy(site)
    assert last_line(done) == f"localhost: ok (release {v2})", done.stdout
    assert f"localhost | hook sees {v1}" in done.stdout.splitlines()
    assert not pwned.exists()
    assert not (site / "elsewhere").exists()


def test_a_host_killed_by_a_signal_says_which() -> None:
    from corral.plugins.deploy import run_all, select_target

    section = {"host": "localhost", "ref": "origin/main", "repo": "r", "path": "/nonexistent"}
    got = select_target({"p": section}, "p")
    lines: list[str] = []
    (result,) = run_all(got, "echo working\nkill -TERM $$\n", lines.append)
    assert result.error == "bash was killed by SIGTERM, after: working", result


def corral_popen(site: Path, *words: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "corral", "deploy", "eco.json", "production", *words],
        cwd=site,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(process: subprocess.Popen, wanted: str) -> list[str]:
    """stdout's lines up to the first that starts with ``wanted`` (fails at its end)."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(wanted):
            return lines
    raise AssertionError(f"no line {wanted!r} in {lines}")


def test_a_hanging_host_does_not_hide_the_others(site: Path) -> None:
    """Each summary comes as its host ends; SIGTERM says what may still run."""
    deploy(site, "setup")
    # an ssh host whose connection never answers (its proxy ends with ssh's pipe)
    hanging = ['ProxyCommand=sh -c "cat >/dev/null; :"']
    write_deploy(site, host=["localhost", "hang.invalid"], ssh_options=hanging)
    process = corral_popen(site, "curr")
    try:
        read_until(process, "localhost: ok (release ")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 143, out + err
    assert "hang.invalid: interrupted" in out, out
    assert out.splitlines()[-1].startswith(
        "interrupted: 1 host(s) may still be running the deploy: hang.invalid"
    ), out


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_stops_the_local_deploy(site: Path, sent: signal.Signals) -> None:
    deploy(site, "setup")
    pid_file = site / "sleep.pid"
    process = corral_popen(site, "exec", f"sleep 300 & echo $! > {pid_file}; echo started; wait")
    try:
        read_until(process, "localhost | started")
        pid = int(pid_file.read_text())
        process.send_signal(sent)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 128 + sent, out + err
    assert "Traceback" not in err, err
    assert "localhost: interrupted" in out, out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.05)
    else:
        assert not psutil.pid_exists(pid), "the hook's sleep still runs"


def test_a_deploy_waits_for_no_other_of_the_same_path(site: Path) -> None:
    deploy(site, "setup")
    lock = (site / "srv" / ".deploy.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = deploy(site, ok=False)
    finally:
        lock.close()
    assert last_line(done) == (
        f"localhost: failed: another deploy of {site / 'srv'} runs: wait for it"
    ), done.stdout
    assert not (site / "srv" / ".deploys").exists()
    assert last_line(deploy(site)).startswith("localhost: ok")


def test_without_flock_the_lock_is_a_directory(site: Path) -> None:
    deploy(site, "setup")
    bindir = site / "bin"
    bindir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if tool.name != "flock" and not (bindir / tool.name).exists():
                (bindir / tool.name).symlink_to(tool)
    env = {**os.environ, "PATH": str(bindir)}
    argv = [sys.executable, "-m", "corral", "deploy", "eco.json", "production"]
    (site / "srv" / ".deploy.lock.d").mkdir()
    done = subprocess.run(argv, cwd=site, env=env, capture_output=True, text=True, timeout=60)
    assert "another deploy of " in last_line(done), done.stdout
    (site / "srv" / ".deploy.lock.d").rmdir()
    done = subprocess.run(argv, cwd=site, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (site / "srv" / ".deploy.lock.d").exists()


def test_a_closed_stdout_stops_the_printing_not_the_deploy(site: Path) -> None:
    deploy(site, "setup")
    write_deploy(site, **{"pre-deploy": "sleep 1; echo after the reader left"})
    shell = (
        f"{shlex.quote(sys.executable)} -m corral deploy eco.json production update | head -1; "
        'exit "${PIPESTATUS[0]}"'
    )
    done = subprocess.run(["bash", "-c", shell], cwd=site, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1
    assert (site / "srv" / ".deploys").read_text().count("\n") == 1
    write_deploy(site, **{"pre-deploy": "sleep 1; exit 5"})
    done = subprocess.run(["bash", "-c", shell], cwd=site, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ""


def test_exec_and_hooks_may_start_with_a_dash(site: Path) -> None:
    deploy(site, "setup")
    done = deploy(site, "exec", "--help", ok=False)
    assert "invalid option" not in done.stdout
    assert last_line(done) == "localhost: failed: exit status 127: --help"


def test_pre_setup_scripts_get_their_arguments(site: Path) -> None:
    (site / "prepare.sh").write_text('printf "%s|" "$@" > "$HOME_MARK"\n')
    pre_setup = "prepare.sh --flag 'two words'"
    write_deploy(site, **{"pre-setup": pre_setup, "env": {"home_mark": str(site / "mark")}})
    deploy(site, "setup")
    assert (site / "mark").read_text() == "--flag|two words|"


def test_force_is_taken_as_pm2_takes_it(site: Path) -> None:
    deploy(site, "setup")
    assert last_line(deploy(site, "update", "--force")).startswith("localhost: ok")
    done = subprocess.run(
        [sys.executable, "-m", "corral", "deploy", "--force", "eco.json", "production"],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "localhost | --force" in deploy(site, "exec", "echo", "--force").stdout.splitlines()

"""``corral deploy`` to ``host: localhost``, which PM2 (and corral) run here without ssh.

The same scripts as over ssh, so these check the remote side's behaviour with no
sshd and no root: PM2's layout, the history, the hooks and where they run, the
failures (each a summary line and exit 1), and taking over a host PM2 set up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    return done.stdout.splitlines()[-1]


def test_setup_update_revert_ref_keep_pm2s_layout_and_history(site: Path) -> None:
    v1 = git("rev-parse", "--short", "HEAD", cwd=site / "work")
    srv = site / "srv"
    assert last_line(deploy(site, "setup")) == f"localhost: ok (release {v1})"
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
    assert (
        deploy(site, "revert", "5", ok=False)
        .stdout.splitlines()[-1]
        .endswith("deploy(s) recorded in " + str(site / "srv/.deploys") + ": cannot go back 5")
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

"""The deploy section and the command line, checked before anything runs.

Each bad input is one line naming the field and the fix, and runs nothing (no
``pre-deploy-local``, no ssh). PM2's corpus files with a deploy section load, or,
for the one whose section is a list, say so.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from corral import ConfigError
from corral.plugins.deploy import build, load_target, parse_request, select_target, ssh_argv
from corral.plugins.deploy.script import path_word

CORPUS = Path("/work/shared/corpus/ecosystems")
GOOD = {
    "user": "deploy",
    "host": ["web1", "web2"],
    "ref": "origin/main",
    "repo": "git@example.com:app.git",
    "path": "/srv/app",
}


def target(**changes: object) -> object:
    settings = {**GOOD, **changes}
    return select_target({"production": settings}, "production", "eco.json")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"repo": None}, "eco.json: deploy.production.repo is missing: give the git URL"),
        ({"path": ""}, "eco.json: deploy.production.path is missing: give the directory"),
        ({"host": None}, "eco.json: deploy.production.host is missing: give a host name"),
        ({"host": []}, "eco.json: deploy.production.host is an empty list: give at least one"),
        ({"host": ["a", 3]}, "eco.json: deploy.production.host has 3: each host is a non-empty"),
        ({"host": ["a", "a"]}, "eco.json: deploy.production.host lists a host twice"),
        ({"ref": "main"}, "eco.json: deploy.production.ref is 'main': give the remote and the"),
        ({"ref": None}, "eco.json: deploy.production.ref is missing: give the remote branch"),
        ({"port": "22x"}, "eco.json: deploy.production.port is '22x': give a port number"),
        ({"port": 0}, "eco.json: deploy.production.port is 0: give a port number"),
        ({"ssh_options": {"a": 1}}, "eco.json: deploy.production.ssh_options is {'a': 1}"),
        ({"env": ["A=1"]}, "eco.json: deploy.production.env is ['A=1']: give a mapping"),
        ({"env": {"A-B": 1}}, "eco.json: deploy.production.env has 'A-B': names are letters"),
        ({"user": 5}, "eco.json: deploy.production.user is 5: write it as a string"),
        ({"user": "-oProxyCommand=x"}, "eco.json: deploy.production.user is '-oProxyCommand=x'"),
        ({"host": ["a b"]}, "eco.json: deploy.production.host has 'a b': a host name has no"),
        ({"host": "-oX=y"}, "eco.json: deploy.production.host has '-oX=y': a host name has no"),
    ],
)
def test_a_bad_field_is_one_line_naming_it(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        target(**changes)
    assert str(caught.value).startswith(message), caught.value
    assert "\n" not in str(caught.value)


def test_pm2s_fields_are_read_as_written() -> None:
    got = target(
        host="one",
        port="2222",
        ssh_options="StrictHostKeyChecking=no",
        env={"node_env": "production", "debug": True, "workers": 4},
        **{"pre-setup": "", "post-deploy": "corral startOrReload ecosystem.json"},
    )
    assert got.hosts == ("one",)
    assert got.port == 2222
    assert got.ssh_options == ("StrictHostKeyChecking=no",)
    assert got.branch == "main"
    # PM2 upper-cases the names; an empty hook is no hook
    assert got.env == {"NODE_ENV": "production", "DEBUG": "true", "WORKERS": "4"}
    assert got.hooks == {"post-deploy": "corral startOrReload ecosystem.json"}


def test_an_unknown_environment_lists_the_known_ones() -> None:
    deploy = {"production": GOOD, "staging": GOOD}
    with pytest.raises(ConfigError, match=r"no deploy environment 'prod': known: production, st"):
        select_target(deploy, "prod", "eco.json")


def test_a_list_section_is_refused_with_the_shape_to_write() -> None:
    with pytest.raises(ConfigError, match=r"deploy is a list: write it as a mapping"):
        select_target([GOOD], "production", "eco.json")
    with pytest.raises(ConfigError, match=r"eco.json has no deploy section"):
        select_target(None, "production", "eco.json")


def test_the_ssh_command_carries_port_key_options_and_user() -> None:
    got = target(port=2222, key="~/.ssh/deploy", ssh_options=["A=1", "B=2"])
    argv = ssh_argv(got, "web1")
    key = str(Path("~/.ssh/deploy").expanduser())
    options = ["-o", "A=1", "-o", "B=2", "-o", "ConnectTimeout=10"]
    options += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
    assert argv == ["ssh", "-p", "2222", "-i", key, *options, "deploy@web1", "bash", "-s"]
    assert ssh_argv(target(user=None), "web1")[-3:] == ["web1", "bash", "-s"]
    assert ssh_argv(got, "localhost") == ["bash", "-s"]  # PM2 runs localhost here


def test_every_value_reaches_the_script_quoted() -> None:
    nasty = "x'; touch /tmp/pwned; echo '$(id)`id`"
    got = target(repo=nasty, env={"v": nasty}, **{"post-deploy": nasty})
    script = build(got, "update")
    assert f"REPO={shlex.quote(nasty)}\n" in script
    assert f"export V={shlex.quote(nasty)}\n" in script
    assert f"POST_DEPLOY={shlex.quote(nasty)}\n" in script
    done = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("/srv/app", "/srv/app"),
        ("/srv/my app/", "'/srv/my app'"),
        ("~/app", '"$HOME"/app'),
        ("app", '"$HOME"/app'),
        ("~", '"$HOME"'),
    ],
)
def test_the_path_is_the_remote_users(path: str, word: str) -> None:
    assert path_word(path) == word


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["deploy"], "unknown deploy command 'deploy': use one of setup, update"),
        (["revert", "0"], "deploy revert takes a count of deploys from 1 up, got '0'"),
        (["revert", "x"], "deploy revert takes a count of deploys from 1 up, got 'x'"),
        (["exec"], "deploy exec needs a command"),
        (["ref"], "deploy ref needs one git ref"),
        (["setup", "now"], "deploy setup takes no argument, got 'now'"),
    ],
)
def test_a_bad_command_line_is_one_line(words: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message):
        parse_request(words)


def test_the_commands_take_pm2s_spellings() -> None:
    assert parse_request([]) == ("update", {})
    assert parse_request(["curr"]) == ("current", {})
    assert parse_request(["prev"]) == ("previous", {})
    assert parse_request(["revert"]) == ("revert", {"steps": 1})
    assert parse_request(["revert", "3"]) == ("revert", {"steps": 3})
    assert parse_request(["run", "corral", "ls"]) == ("exec", {"exec_command": "corral ls"})
    assert parse_request(["ref", "origin/v2"]) == ("ref", {"ref": "origin/v2"})


def test_pm2s_default_post_deploy_is_corral_start_or_restart(tmp_path: Path) -> None:
    settings = dict(GOOD)
    (tmp_path / "eco.json").write_text(json.dumps({"deploy": {"production": settings}}))
    got = load_target(tmp_path / "eco.json", "production")
    assert got.hooks["post-deploy"] == "corral startOrRestart eco.json --env production"


def deploy_cli(tmp_path: Path, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "corral", "deploy", *words],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_bad_input_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    settings = {**GOOD, "ref": "main", "pre-deploy-local": f"touch {marker}"}
    (tmp_path / "eco.json").write_text(json.dumps({"deploy": {"production": settings}}))
    done = deploy_cli(tmp_path, "eco.json", "production")
    assert done.returncode == 1
    assert done.stderr == (
        "error: eco.json: deploy.production.ref is 'main': give the remote and the branch, "
        "as origin/main\n"
    )
    assert done.stdout == ""
    assert not marker.exists()


def test_the_file_defaults_to_the_ecosystem_file_here(tmp_path: Path) -> None:
    done = deploy_cli(tmp_path, "production")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no config file given and none in ")
    (tmp_path / "ecosystem.config.json").write_text(json.dumps({"deploy": {"staging": GOOD}}))
    done = deploy_cli(tmp_path, "production")
    assert done.stderr == (
        "error: ecosystem.config.json: no deploy environment 'production': known: staging\n"
    )


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the PM2 corpus is not here")
def test_the_corpus_deploy_sections_load() -> None:
    rows = [line.split("\t") for line in (CORPUS / "INDEX.tsv").read_text().splitlines()[1:]]
    files = [row[0] for row in rows if "deploy" in row[5]]
    assert len(files) == 8
    for name in files:
        path = CORPUS / name
        data = subprocess.run(
            [sys.executable, "-c", _ENVS, str(path)], capture_output=True, text=True
        )
        envs = json.loads(data.stdout) if data.returncode == 0 else []
        if name.startswith("BuildTheEarth"):
            with pytest.raises(ConfigError, match="deploy is a list: write it as a mapping"):
                load_target(path, "production")
            continue
        assert envs, (name, data.stderr)
        for env in envs:
            got = load_target(path, env)
            assert got.hosts and got.repo and got.path and "/" in got.ref, name


# the environments of a file's deploy section, read as corral reads the file
_ENVS = """\
import json, sys
from corral.api import read_portable
deploy = read_portable(sys.argv[1]).deploy
print(json.dumps(sorted(deploy) if isinstance(deploy, dict) else []))
"""


def test_apps_with_options_this_machine_does_not_know_still_deploy(tmp_path):
    """The apps are the host's to check: deploy reads only its section."""
    path = tmp_path / "ecosystem.json"
    apps = [{"name": "web", "script": "web.js", "an_option_of_a_host_plugin": 1}]
    section = {"production": {"host": "h", "repo": "r", "path": "/p", "ref": "origin/main"}}
    path.write_text(json.dumps({"apps": apps, "deploy": section}))
    target = load_target(path, "production")
    assert target.hosts == ("h",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": {"__corral_deploy_p": "/x"}}, "env has '__corral_deploy_p': names starting"),
        ({"env": {"shared": "/x"}}, "env has 'shared': SHARED is set by the deploy"),
        ({"env": {"ifs": "x"}}, "env has 'ifs': IFS is bash's own"),
        ({"path": "/srv/a\nb"}, "eco.json: deploy.production.path has a line break"),
        ({"ref": "-q/x"}, "eco.json: deploy.production.ref is '-q/x': a ref does not start"),
    ],
)
def test_what_would_change_the_script_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        target(**changes)
    assert message in str(caught.value), caught.value
    assert "\n" not in str(caught.value)


def test_the_scripts_own_variables_are_out_of_envs_reach() -> None:
    script = build(target(env={"ref": "x", "p": "/elsewhere", "depth": "x"}, fetch="fast"), "setup")
    for line in script.splitlines():
        if "=" in line and not line.startswith(("export ", " ", "\t", "#")):
            assert line.startswith(("set ", "__CORRAL_DEPLOY_")), line
    assert "$DEPTH" not in script and "__CORRAL_DEPLOY_DEPTH=(--depth=5)" in script
    assert "export REF=x\n" in script  # env still reaches the hooks


def test_ssh_gets_timeouts_unless_the_options_set_them() -> None:
    argv = ssh_argv(target(), "web1")
    defaults = ["ConnectTimeout=10", "ServerAliveInterval=15", "ServerAliveCountMax=4"]
    for option in defaults:
        assert argv[argv.index(option) - 1] == "-o", argv
    argv = ssh_argv(target(ssh_options=["connecttimeout=3", "ServerAliveInterval 5"]), "web1")
    assert "ConnectTimeout=10" not in argv and "ServerAliveInterval=15" not in argv
    assert "ServerAliveCountMax=4" in argv


def test_the_same_host_twice_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for hosts in (["localhost", "127.0.0.1"], ["web1", "deploy@web1"]):
        settings = {**GOOD, "host": hosts, "pre-deploy-local": f"touch {marker}"}
        (tmp_path / "eco.json").write_text(json.dumps({"deploy": {"production": settings}}))
        done = deploy_cli(tmp_path, "eco.json", "production")
        assert done.returncode == 1
        assert "are the same host" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
        assert not marker.exists()


def test_the_default_post_deploy_quotes_its_words(tmp_path: Path) -> None:
    (tmp_path / "my eco.json").write_text(json.dumps({"deploy": {"prod-1.x": GOOD}}))
    got = load_target(tmp_path / "my eco.json", "prod-1.x")
    words = ["corral", "startOrRestart", "my eco.json", "--env", "prod-1.x"]
    assert shlex.split(got.hooks["post-deploy"]) == words
    bad = "prod;touch /tmp/PWN2;x"
    (tmp_path / "eco.json").write_text(json.dumps({"deploy": {bad: GOOD}}))
    with pytest.raises(ConfigError, match=r"^deploy environment 'prod;touch /tmp/PWN2;x' is not"):
        load_target(tmp_path / "eco.json", bad)


def test_a_file_named_like_the_environment_is_not_the_config(tmp_path: Path) -> None:
    (tmp_path / "production").write_text("")
    (tmp_path / "ecosystem.json").write_text(json.dumps({"deploy": {"staging": GOOD}}))
    done = deploy_cli(tmp_path, "production", "list")
    assert done.stderr == (
        "error: ecosystem.json: no deploy environment 'production': known: staging\n"
    )


@pytest.mark.parametrize("ref", ["-q", "--hard"])
def test_a_ref_that_is_an_option_is_refused(ref: str) -> None:
    with pytest.raises(ConfigError, match=f"^deploy ref takes a git ref, got '{ref}'"):
        parse_request(["ref", ref])


def test_force_is_accepted_and_does_nothing() -> None:
    assert parse_request(["update", "--force"]) == ("update", {})
    assert parse_request(["--force"]) == ("update", {})
    assert parse_request(["--force", "ref", "origin/v2"]) == ("ref", {"ref": "origin/v2"})
    # in exec, the command's own
    assert parse_request(["exec", "rm", "--force", "x"]) == (
        "exec",
        {"exec_command": "rm --force x"},
    )

"""``corral export systemd``: units that ``systemd-analyze verify`` accepts, each option
mapped or warned about, and values quoted so systemd reads back what the file held."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import corral
from corral import ConfigError, OptionError
from corral.api import load_plugins, read_portable
from corral.plugins import export as export_plugin
from corral.plugins.export import ExportRequest, export, write_files
from corral.plugins.export import systemd as systemd_exporter
from corral.plugins.export.systemd import render as render_systemd
from corral.plugins.export.systemd_calendar import on_calendar
from corral.plugins.export.systemd_listen import listen_stream
from corral.plugins.export.systemd_plan import unit_base
from corral.plugins.export.systemd_quoting import exec_word
from tests.conftest import run_cli
from tests.core.test_corpus import CORPUS, FILES

GOLDEN = Path(__file__).parent / "golden" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
# CI installs systemd when it is missing (.ci/run): there, no systemd-analyze is a failure
needs_analyze = pytest.mark.skipif(
    ANALYZE is None and os.environ.get("CI") != "true", reason="systemd-analyze is not installed"
)


def write(folder: Path, apps: list[dict], name: str = "apps.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"apps": apps}))
    return path


def scripts(folder: Path, *names: str) -> None:
    """Files for the units to run: systemd-analyze checks the executables exist."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)


def render(folder: Path, apps: list[dict], **params) -> tuple[dict[str, str], list[str]]:
    result = export("systemd", write(folder, apps), params=params)
    return result.files, result.warnings


def exec_of(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))[10:]


def verify(files: dict[str, str], folder: Path, missing: frozenset[str] = frozenset()) -> None:
    """Every unit passes ``systemd-analyze verify``: any line it prints fails the test,
    but "Command X is not executable" for an X in ``missing`` (an executable of the
    target that this machine has not). verify needs no running systemd: as root in a
    container it loads the files given (and the units they name, from the same
    directory and the system's unit path) and prints nothing when all is well."""
    out = folder / "units"
    shutil.rmtree(out, ignore_errors=True)
    written = write_files(files, str(out))
    done = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, written)],
        capture_output=True,
        text=True,
        cwd=out,
        timeout=60,
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and not _missing_command(line, missing)
    ]
    assert not problems, "systemd-analyze verify:\n" + "\n".join(problems)


def _missing_command(line: str, missing: frozenset[str]) -> bool:
    for name in missing:
        if line.endswith(f": Command {name} is not executable: No such file or directory"):
            return True
    return False


def executables_missing_here(files: dict[str, str]) -> frozenset[str]:
    """The ExecStart executables no systemd here would find: the target's, not ours."""
    found = set()
    for text in files.values():
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                first = line[10:].split()[0].strip('"')
                on_path = "/" not in first and shutil.which(first, path="/usr/bin:/bin")
                if not on_path and not os.access(first, os.X_OK):
                    found.add(first)
    return frozenset(found)


def parsed_by_systemd(files: dict[str, str], unit: str) -> str:
    """systemd's own reading of ``unit`` and what it pulls in: ``systemd --test --user``
    dumps them as loaded (run as nobody: as root it will not run user mode). Skips when
    it cannot run."""
    systemd = Path("/lib/systemd/systemd")
    setpriv = shutil.which("setpriv")
    if not systemd.exists() or setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root, setpriv and /lib/systemd/systemd to dump units as nobody")
    folder = Path(tempfile.mkdtemp(prefix="corral-units-"))
    try:
        folder.chmod(0o777)
        units = folder / "units"
        write_files(files, str(units))
        units.chmod(0o755)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(folder),
            "XDG_RUNTIME_DIR": str(folder),
            "SYSTEMD_UNIT_PATH": f"{units}:",  # the trailing ":" keeps the default path too
        }
        done = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
             str(systemd), "--test", "--user", f"--unit={unit}", "--log-target=console"],
            capture_output=True, env=env, timeout=60, cwd=folder,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode("utf-8", "surrogateescape")


def command_line(dump: str, unit: str) -> list[str]:
    """The ExecStart argv systemd loaded for ``unit``, as the spawn gets it (systemd
    turns ``$$`` into ``$`` when it expands variables, at the spawn)."""
    section = dump.split(f"-> Unit {unit}:", 1)[1]
    line = section.split("Command Line: ", 1)[1].split("\n", 1)[0]
    return [_SPAWN_VARIABLES.sub(_at_spawn, word) for word in _unquote(line)]


# what systemd replaces in an ExecStart word at the spawn: $$, $NAME, ${NAME}
_SPAWN_VARIABLES = re.compile(r"\$\$|\$\{?[A-Za-z_]")


def _at_spawn(match: re.Match) -> str:
    # a variable systemd would expand shows as such, so it never equals the word given
    return "$" if match.group() == "$$" else "<expanded by systemd>"


def _unquote(line: str) -> list[str]:
    r"""Split systemd's quoting of a command line (quote_command_line: words with
    special characters double-quoted, with C escapes and ``\$``)."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
        elif line[i] != '"':
            end = line.find(" ", i) if " " in line[i:] else len(line)
            words.append(line[i:end])
            i = end
        else:
            word, i = _quoted(line, i + 1)
            words.append(word)
    return words


def _quoted(line: str, i: int) -> tuple[str, int]:
    """The word of a double-quoted run from ``i``, and the index after its closing quote."""
    word = []
    while line[i] != '"':
        if line[i] != "\\":
            word.append(line[i])
            i += 1
        elif line[i + 1] == "x":
            word.append(chr(int(line[i + 2 : i + 4], 16)))
            i += 4
        elif line[i + 1 : i + 4].isdigit():  # \001: systemd shows control bytes in octal
            word.append(chr(int(line[i + 1 : i + 4], 8)))
            i += 4
        else:
            word.append({"n": "\n", "t": "\t"}.get(line[i + 1], line[i + 1]))
            i += 2
    return "".join(word), i + 1


# -- each mapping, verified ---------------------------------------------------------


@needs_analyze
def test_one_app_maps_its_options_and_verifies(tmp_path):
    scripts(tmp_path, "app/web.py")
    files, warnings = render(
        tmp_path,
        [
            {
                "name": "web",
                "script": "web.py",
                "cwd": "app",
                "args": ["--port", "8000"],
                "env": {"MODE": "prod"},
                "autorestart": True,
                "stop_exit_codes": [0, 3],
                "restart_delay": 2000,
                "max_restarts": 4,
                "min_uptime": "5s",
                "kill_signal": "SIGTERM",
                "kill_timeout": 30000,
                "memory_max": "512M",
                "cpu_max": "50%",
                "pids_max": 64,
                "watchdog": "10s",
                "wait_ready": True,
                "listen_timeout": 8000,
                "uid": "daemon",
                "gid": "daemon",
                "treekill": False,
                "out_file": "/var/log/web.out",
                "error_file": "logs/web.err",
            }
        ],
    )
    unit = files["web.service"]
    app = tmp_path / "app"
    for line in (
        "Type=notify",
        "TimeoutStartSec=8s",
        "WatchdogSec=10s",
        "NotifyAccess=all",
        "User=daemon",
        "Group=daemon",
        f"WorkingDirectory={app}",
        'Environment="MODE=prod"',
        'Environment="NODE_APP_INSTANCE=0"',
        'Environment="PYTHONUNBUFFERED=1"',
        f"ExecStart=python3 {app}/web.py --port 8000",
        "Restart=always",
        "RestartSec=2s",
        "RestartPreventExitStatus=0 3",
        "StartLimitBurst=5",
        "StartLimitIntervalSec=35s",  # 5 starts of (5 s up + 2 s delay)
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30s",
        "KillMode=process",
        f"MemoryMax={512 * 1024 * 1024}",
        "CPUQuota=50%",
        "TasksMax=64",
        "StandardOutput=append:/var/log/web.out",
        f"StandardError=append:{app}/logs/web.err",
        "PartOf=corral-apps.target",
    ):
        assert line in unit.splitlines(), line
    assert warnings == []
    assert "Wants=web.service" in files["corral-apps.target"]
    verify(files, tmp_path)


@needs_analyze
def test_instances_are_units_grouped_by_a_target(tmp_path):
    scripts(tmp_path, "api.js")
    files, warnings = render(
        tmp_path,
        [{"name": "api", "script": "api.js", "instances": 3, "increment_var": "PORT",
          "env": {"PORT": "3000"}, "exec_mode": "fork"}],
    )  # fmt: skip
    assert list(files) == [
        "api-0.service",
        "api-1.service",
        "api-2.service",
        "api.target",
        "corral-apps.target",
    ]
    assert 'Environment="NODE_APP_INSTANCE=2"' in files["api-2.service"]
    assert 'Environment="PORT=3002"' in files["api-2.service"]
    assert "PartOf=api.target" in files["api-0.service"]
    assert "Wants=api-0.service api-1.service api-2.service" in files["api.target"]
    assert "Wants=api.target" in files["corral-apps.target"]
    assert warnings == []
    verify(files, tmp_path)


def test_per_cpu_instances_take_cpus_or_say_whose(tmp_path):
    files, _ = render(tmp_path, [{"name": "w", "script": "w.py", "instances": "max"}], cpus=3)
    assert "w-2.service" in files and "w-3.service" not in files
    files, _ = render(tmp_path, [{"name": "w", "script": "w.py", "instances": -1}], cpus=3)
    assert "w-1.service" in files and "w-2.service" not in files
    files, warnings = render(tmp_path, [{"name": "w", "script": "w.py", "instances": 0}])
    assert any("give --cpus N for the target's" in w for w in warnings)


@needs_analyze
def test_cron_restart_is_a_timer_and_a_job_starts_on_it(tmp_path):
    scripts(tmp_path, "report.py", "web.py")
    files, warnings = render(
        tmp_path,
        [
            {"name": "report", "script": "report.py", "autorestart": False,
             "cron_restart": "30 2 * * 1-5", "cron_tz": "Europe/Paris"},
            {"name": "web", "script": "web.py", "instances": 2, "cron": "*/2 * * * * *"},
        ],
    )  # fmt: skip
    assert "OnCalendar=Mon..Fri *-*-* 02:30:00 Europe/Paris" in files["report-cron.timer"]
    assert "ExecStart=systemctl restart report.service" in files["report-cron.service"]
    assert "Restart=no" in files["report.service"]
    assert "ExecStart=systemctl restart web-0.service web-1.service" in files["web-cron.service"]
    assert "report-cron.timer" in files["corral-apps.target"]
    assert warnings == []
    verify(files, tmp_path)


@pytest.mark.parametrize(
    ("cron", "calendars"),
    [
        ("*/15 * * * *", ["*-*-* *:00,15,30,45:00"]),
        ("0 0 1,15 * *", ["*-*-01,15 00:00:00"]),
        ("0 9 * jan,jul sun", ["Sun *-01,07-* 09:00:00"]),
        ("0 0 1 * 5", ["*-*-01 00:00:00", "Fri *-*-* 00:00:00"]),  # cron ORs the days
        ("@hourly", ["*-*-* *:00:00"]),
        ("0 0 L * *", ["*-*~01 00:00:00"]),
        ("0 12 * * 0,6,7", ["Sun,Sat *-*-* 12:00:00"]),
    ],
)
def test_cron_expressions_become_calendars_systemd_reads_alike(cron, calendars):
    assert on_calendar(cron, None) == calendars
    if ANALYZE:
        for calendar in calendars:
            done = subprocess.run([ANALYZE, "calendar", calendar], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr


def test_a_weekday_of_the_month_is_refused():
    with pytest.raises(OptionError, match=r"cron_restart '0 0 \* \* 5#2'.*weekday of the month"):
        on_calendar("0 0 * * 5#2", None)


@needs_analyze
def test_depends_on_orders_and_a_completed_job_is_a_oneshot(tmp_path):
    scripts(tmp_path, "db.py", "migrate.py", "web.py", "cache.py")
    files, warnings = render(
        tmp_path,
        [
            {"name": "db", "script": "db.py", "wait_ready": True},
            {"name": "migrate", "script": "migrate.py", "autorestart": False,
             "depends_on": {"db": "healthy"}},
            {"name": "cache", "script": "cache.py", "instances": 2},
            {"name": "web", "script": "web.py",
             "depends_on": {"migrate": "completed", "cache": "started", "gone": "started"}},
        ],
    )  # fmt: skip
    web = files["web.service"].splitlines()
    assert "After=network.target migrate.service cache.target" in web
    assert "Wants=cache.target" in web
    assert "Requires=migrate.service" in web
    assert "Type=oneshot" in files["migrate.service"]
    assert "RemainAfterExit=yes" in files["migrate.service"]
    assert "After=network.target db.service" in files["migrate.service"]
    assert warnings == ["web: depends_on gone: not an app of this file: not exported"]
    verify(files, tmp_path)


def test_a_healthy_or_completed_condition_that_cannot_hold_is_said(tmp_path):
    _, warnings = render(
        tmp_path,
        [
            {"name": "db", "script": "db.py"},
            {"name": "web", "script": "web.py", "depends_on": {"db": "healthy"}},
            {"name": "job", "script": "job.py", "depends_on": {"db": "completed"}},
        ],
    )
    joined = "\n".join(warnings)
    assert "web: depends_on db: healthy is exported as started" in joined
    assert "job: depends_on db: completed needs db to be a job" in joined


# -- warnings: nothing dropped silently ---------------------------------------------------


def test_each_unmapped_option_is_warned_once_per_app(tmp_path):
    _, warnings = render(
        tmp_path,
        [
            {
                "name": "web",
                "script": "web.js",
                "instances": 2,
                "exec_mode": "cluster",
                "watch": True,
                "listen": ":8080",
                "health": {"http": "http://127.0.0.1:8080/"},
                "namespace": "shop",
                "shutdown_with_message": True,
                "pid_file": "/run/web.pid",
                "max_memory_restart": "300M",
                "exp_backoff_restart_delay": 100,
                "time": True,
            }
        ],
    )
    for option in ("health", "namespace", "shutdown_with_message", "pid_file", "time"):
        assert f"web: {option} has no systemd equivalent: not exported" in warnings
    joined = "\n".join(warnings)
    for said in (
        "watch has",
        "listen :8080: no socket",
        "cluster mode",
        "MemoryMax=",
        "no backoff",
    ):
        assert joined.count(said) == 1, said  # once per app, not per instance


class Notifier:
    """A third party's plugin with an option of its own."""

    @corral.hookimpl
    def corral_app_options(self):
        return [corral.Option("notify_url", "str", help="where to post events")]


def test_an_option_of_another_plugin_is_warned(tmp_path):
    path = write(tmp_path, [{"name": "w", "script": "w.py", "notify_url": "http://x/"}])
    manager = load_plugins([export_plugin, systemd_exporter, Notifier()])
    warnings = export("systemd", path, manager=manager).warnings
    assert warnings == ["w: notify_url has no systemd equivalent: not exported"]


def test_wait_ready_of_a_node_app_says_how_to_be_ready(tmp_path):
    _, warnings = render(tmp_path, [{"name": "w", "script": "w.js", "wait_ready": True}])
    assert "sd_notify READY=1" in warnings[0]


# -- secrets ----------------------------------------------------------------------


def test_secrets_go_to_an_environment_file_unless_included(tmp_path):
    env = {"DB_PASSWORD": "hunter2", "URL": "postgres://u:pw@db/x", "A": "1"}
    apps = [{"name": "web", "script": "w.py", "instances": 2, "env": env}]
    files, warnings = render(tmp_path, apps)
    text = "".join(files.values())
    assert "hunter2" not in text and "pw@" not in text
    assert "EnvironmentFile=/etc/corral/web.env" in files["web-1.service"]
    assert warnings == [
        "web: env DB_PASSWORD, URL: secret by name or value: not written into the unit; "
        "put it in /etc/corral/web.env (mode 0600), or pass --include-secrets"
    ]
    files, warnings = render(tmp_path, apps, include_secrets=True)
    assert 'Environment="DB_PASSWORD=hunter2"' in files["web-0.service"]
    assert warnings == []


# -- names ----------------------------------------------------------------------------


def test_app_names_become_valid_unit_names():
    assert unit_base("my app/v2") == "my-app-v2"
    assert unit_base("example.com") == "example.com"
    assert unit_base("_x_", "shop-") == "shop-_x"
    with pytest.raises(OptionError, match="no letter or digit"):
        unit_base("../")


@needs_analyze
def test_odd_app_names_are_renamed_and_said(tmp_path):
    scripts(tmp_path, "a.py")
    files, warnings = render(tmp_path, [{"name": "my app/../x%y", "script": "a.py"}])
    assert "my-app-..-x-y.service" in files
    assert "Description=my app/../x%%y (corral app)" in files["my-app-..-x-y.service"]
    assert warnings == ["my app/../x%y: unit names are my-app-..-x-y: a unit name cannot hold it"]
    verify(files, tmp_path)


def test_two_apps_of_one_unit_name_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"apps 'my app' and 'my-app' would both make"):
        render(
            tmp_path, [{"name": "my app", "script": "a.py"}, {"name": "my-app", "script": "b.py"}]
        )
    apps = [{"name": "web", "script": "a.py", "instances": 2}, {"name": "web-1", "script": "b.py"}]
    with pytest.raises(ConfigError, match=r"the unit web-1.service: rename one"):
        render(tmp_path, apps)


def test_an_app_named_as_the_files_target_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"'corral-apps' would make the unit corral-apps.target"):
        render(tmp_path, [{"name": "corral-apps", "script": "a.py", "instances": 2}])
    with pytest.raises(ConfigError, match=r"apps 'web' and 'web' would both make"):
        render(tmp_path, [{"name": "web", "script": "a.py"}, {"name": "web", "script": "b.py"}])


def test_prefix_names_every_unit(tmp_path):
    files, _ = render(tmp_path, [{"name": "web", "script": "a.py"}], prefix="shop-")
    assert list(files) == ["shop-web.service", "shop-corral-apps.target"]
    assert "PartOf=shop-corral-apps.target" in files["shop-web.service"]


# -- quoting --------------------------------------------------------------------------


def test_exec_words_escape_what_systemd_expands():
    assert exec_word("plain/path-1.py") == "plain/path-1.py"
    assert exec_word("a b") == '"a b"'
    assert exec_word("$HOME") == '"$$HOME"'
    assert exec_word("100%") == "100%%"
    assert exec_word('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert exec_word("two\nlines") == '"two\\nlines"'
    assert exec_word(";") == '";"'  # a lone ; would end the command
    assert exec_word("") == '""'


@needs_analyze
def test_quoting_attacks_stay_inside_their_values(tmp_path):
    scripts(tmp_path, "dir with space/a.py")
    hostile = "x\n[Service]\nExecStartPre=/bin/rm -rf /\n\"q' \\ %n $USER ${HOME} ;"
    args = ["a b", hostile, ";", "--", "%i", "$1", "", "\\", "a\x01b", "tab\tx"]
    env = {"EVIL": hostile, "TAB": "a\tb", "BACK": "end\\", "CTL": "a\x01b\x7f", "PCT": "100%"}
    files, warnings = render(
        tmp_path,
        [{"name": "web", "script": "a.py", "cwd": "dir with space", "args": args, "env": env}],
    )
    unit = files["web.service"]
    assert "ExecStartPre" not in "".join(line[:12] for line in unit.splitlines())
    assert unit.count("\n[Service]\n") == 1
    assert warnings == []
    verify(files, tmp_path)
    # what systemd loads is what the file held, word for word
    dump = parsed_by_systemd(files, "web.service")
    script = str(tmp_path / "dir with space" / "a.py")
    assert command_line(dump, "web.service") == ["python3", script, *args]
    for name, value in env.items():
        assert f"\t\tEnvironment: {name}={value}\n" in dump, name
    assert f"\t\tWorkingDirectory: {tmp_path}/dir with space\n" in dump


def test_a_command_line_runs_under_bash_with_its_args(tmp_path):
    files, _ = render(
        tmp_path, [{"name": "api", "script": "uvicorn main:app", "args": ["--host", "0.0.0.0"]}]
    )
    assert (
        exec_of(files["api.service"])
        == 'bash -c "uvicorn main:app \\"$$@\\"" uvicorn --host 0.0.0.0'
    )


def test_interpreters_resolve_from_the_app_root_or_the_option(tmp_path):
    apps = [
        {"name": "a", "script": "a.py", "interpreter": "./venv/bin/python", "cwd": "/srv/a"},
        {"name": "b", "script": "b.js", "node_args": ["--max-old-space-size=512"]},
        {"name": "c", "script": "npm", "args": ["start"]},
        {"name": "d", "script": "./bin/run", "interpreter": "none"},
    ]
    files, _ = render(tmp_path, apps, app_root="/srv/root", interpreter=["node=/opt/node/bin/node"])
    assert exec_of(files["a.service"]) == "/srv/root/venv/bin/python /srv/a/a.py"
    assert (
        exec_of(files["b.service"]) == "/opt/node/bin/node --max-old-space-size=512 /srv/root/b.js"
    )
    assert exec_of(files["c.service"]) == "npm start"
    assert exec_of(files["d.service"]) == "/srv/root/bin/run"
    with pytest.raises(OptionError, match="--interpreter 'node': give NAME=PATH"):
        render(tmp_path, apps, interpreter=["node"])


def test_what_a_unit_line_cannot_hold_is_refused(tmp_path):
    with pytest.raises(OptionError, match="cwd '/srv/a\\\\nb' has a control character"):
        render(tmp_path, [{"name": "a", "script": "a.py", "cwd": "/srv/a\nb"}])
    with pytest.raises(OptionError, match="uid 'root\\\\nx' is not a user or group name"):
        render(tmp_path, [{"name": "a", "script": "a.py", "uid": "root\nx"}])
    with pytest.raises(OptionError, match="which systemd reads as an ExecStart= prefix"):
        render(tmp_path, [{"name": "a", "script": "-rf", "interpreter": "none"}])


def test_a_nul_byte_never_reaches_a_unit(tmp_path):
    with pytest.raises(ConfigError, match="contains a NUL character"):
        render(tmp_path, [{"name": "a", "script": "a.py", "args": ["x\x00y"]}])


def test_env_names_systemd_refuses_are_said(tmp_path):
    files, warnings = render(tmp_path, [{"name": "a", "script": "a.py", "env": {"my-var": "1"}}])
    assert "my-var" not in files["a.service"]
    assert warnings == ["a: env my-var: systemd takes only names of letters, digits and _ "
                        "(not starting with a digit): not exported"]  # fmt: skip


# -- golden files -----------------------------------------------------------------------

SHAPES = {
    "python-web": [
        {"name": "web", "script": "manage.py", "args": ["runserver", "0.0.0.0:8000"],
         "cwd": "/srv/shop", "env": {"DJANGO_SETTINGS_MODULE": "shop.settings", "SECRET_KEY": "x"},
         "kill_signal": "SIGTERM", "kill_timeout": "10s", "max_memory_restart": "512M",
         "uid": "shop", "wait_ready": True, "watchdog": "30s"},
    ],
    "node-cluster": [
        {"name": "api", "script": "server.js", "instances": 2, "exec_mode": "cluster",
         "env": {"NODE_ENV": "production", "PORT": 3000}, "increment_var": "PORT",
         "cron_restart": "0 4 * * *", "depends_on": ["redis"]},
        {"name": "redis", "script": "redis-server", "args": ["--port", "6379"]},
    ],
    "job-and-logs": [
        {"name": "migrate", "script": "./bin/migrate", "interpreter": "none",
         "autorestart": False, "out_file": "logs/migrate.log"},
        {"name": "worker", "script": "celery -A shop worker",
         "depends_on": {"migrate": "completed"}, "stop_exit_codes": [0], "restart_delay": 500,
         "cpu_max": "150%", "pids_max": 100},
    ],
}  # fmt: skip


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_golden_files(tmp_path, shape):
    result = export("systemd", write(tmp_path, SHAPES[shape]), params={"app_root": "/srv/shop"})
    folder = GOLDEN / shape
    texts = {**result.files, "WARNINGS": "".join(w + "\n" for w in result.warnings)}
    if os.environ.get("CORRAL_GOLDEN") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in texts.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else {}
    hint = (
        f"the golden files of {shape} differ: if the change is meant, CORRAL_GOLDEN=1 rewrites them"
    )
    assert sorted(texts) == sorted(expected), hint
    for name, text in texts.items():
        assert text == expected[name], f"{name}: {hint}"


# -- the corpus: every real file read_portable reads ----------------------------------------


def corpus_files() -> list[Path]:
    return [CORPUS / name for name in FILES]


@needs_analyze
def test_every_corpus_file_exports_units_that_verify(tmp_path):
    exported = 0
    for path in corpus_files():
        if path.suffix in (".js", ".cjs", ".mjs") and not shutil.which("node"):
            continue
        try:
            if not read_portable(path).apps:
                continue  # a deploy-only file
        except ConfigError:
            continue  # a file corral refuses is no export's business
        result = export("systemd", path, params={"app_root": "/srv/app", "cpus": 2})
        assert result.files, path
        for warning in result.warnings:
            assert ": " in warning, warning  # each names its app
        verify(result.files, tmp_path, executables_missing_here(result.files))
        exported += 1
    assert exported >= 20


# -- the CLI ----------------------------------------------------------------------------


def test_the_cli_writes_units_and_warns_on_stderr(tmp_path):
    path = write(tmp_path, [{"name": "web", "script": "web.py", "watch": True}])
    done = run_cli("export", "systemd", str(path), "-o", str(tmp_path / "out"), "--user", "www")
    assert "warning: web: watch has no systemd equivalent" in done.stderr
    assert "User=www" in (tmp_path / "out" / "web.service").read_text()
    assert (tmp_path / "out" / "corral-apps.target").is_file()


def test_autostart_false_is_installed_but_not_started(tmp_path):
    files, _ = render(
        tmp_path,
        [{"name": "a", "script": "a.py", "autostart": False}, {"name": "b", "script": "b.py"}],
    )
    assert "Wants=b.service" in files["corral-apps.target"].splitlines()
    assert "PartOf=corral-apps.target" in files["a.service"]


def test_logs_go_to_the_journal_unless_named(tmp_path):
    apps = [
        {"name": "a", "script": "a.py"},
        {"name": "b", "script": "b.py", "log_file": "/var/log/b.log"},
        {"name": "c", "script": "c.py", "disable_logs": True},
        {"name": "d", "script": "d.py", "out_file": "/dev/null"},
    ]
    files, _ = render(tmp_path, apps)
    assert "Standard" not in files["a.service"]
    for stream in ("StandardOutput", "StandardError"):
        assert f"{stream}=append:/var/log/b.log" in files["b.service"]
        assert f"{stream}=null" in files["c.service"]
    assert "StandardOutput=null" in files["d.service"]


def test_a_bare_command_is_said_to_come_from_systemds_path(tmp_path):
    _, warnings = render(tmp_path, [{"name": "f", "script": "npm", "args": ["start"]}])
    assert warnings == [
        "f: script npm is taken as a command on systemd's search path (/usr/local/bin, "
        "/usr/bin, ...): write ./npm for a file of the cwd"
    ]


@needs_analyze
def test_listen_is_a_socket_unit_every_instance_gets(tmp_path):
    scripts(tmp_path, "web.py", "api.py")
    files, warnings = render(
        tmp_path,
        [
            {"name": "web", "script": "web.py", "instances": 2, "listen": ":8080"},
            {"name": "api", "script": "api.py", "listen": "unix:/run/api.sock", "uid": "daemon"},
        ],
    )
    assert "ListenStream=8080" in files["web.socket"]
    assert "Service=web-0.service" in files["web.socket"]
    for name in ("web-0.service", "web-1.service"):
        lines = files[name].splitlines()
        assert {"Sockets=web.socket", "Requires=web.socket", 'Environment="PORT=8080"'} <= set(
            lines
        )
    assert "ListenStream=/run/api.sock" in files["api.socket"]
    assert "SocketUser=daemon" in files["api.socket"]
    assert "Service=" not in files["api.socket"]
    assert warnings == []
    verify(files, tmp_path)


@pytest.mark.parametrize(
    ("listen", "stream"),
    [
        ("127.0.0.1:80", "127.0.0.1:80"),
        ("[::1]:80", "[::1]:80"),
        ("80", "80"),
        ("unix:x.sock", None),
        ("localhost:80", "127.0.0.1:80"),  # where corral binds it (AF_INET)
        ("LocalHost:80", "127.0.0.1:80"),
        ("0.0.0.0:80", "0.0.0.0:80"),
    ],
)
def test_listen_addresses_as_systemd_reads_them(listen, stream):
    assert listen_stream({"listen": listen, "script": "a.py"}) == stream


def test_a_home_directory_of_the_target_is_refused(tmp_path):
    with pytest.raises(OptionError, match=r"cwd '~/app' starts with ~.*give cwd as an absolute"):
        render(tmp_path, [{"name": "a", "script": "a.py", "cwd": "~/app"}])


def test_python_is_unbuffered_only_when_corral_picks_it(tmp_path):
    apps = [
        {"name": "a", "script": "a.py"},
        {"name": "b", "script": "python3", "args": ["-m", "http.server"]},
    ]
    files, _ = render(tmp_path, apps)
    assert 'Environment="PYTHONUNBUFFERED=1"' in files["a.service"]
    assert "PYTHONUNBUFFERED" not in files["b.service"]


# -- reviewed bugs: one test each ------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "calendars"),
    [
        ("0 0 1,L * *", ["*-*-01 00:00:00", "*-*~01 00:00:00"]),
        ("0 0 1,15,L * 5", ["*-*-01,15 00:00:00", "*-*~01 00:00:00", "Fri *-*-* 00:00:00"]),
    ],
)
def test_a_list_of_days_and_l_keeps_both(cron, calendars):
    assert on_calendar(cron, None) == calendars
    if ANALYZE:
        for calendar in calendars:
            done = subprocess.run([ANALYZE, "calendar", calendar], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr


def render_unchecked(folder: Path, **options):
    """The export of an app given ``options`` past the file's checks (the cron plugin
    refuses them as the file is read), as an API caller may hand them."""
    config = read_portable(write(folder, [{"name": "job", "script": "j.py", "cron": "1 * * * *"}]))
    config.apps[0].options.update(options)
    return render_systemd(ExportRequest(config=config, env_name=None))


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("0 0 * * 5L", r"not a valid cron expression"),
        ("0 0 15W * *", r"the weekday nearest a day \(W\)"),
        ("0 0 * * L5", r"weekday of the month"),
    ],
)
def test_a_cron_no_calendar_holds_is_an_option_error_naming_the_app(tmp_path, cron, why):
    """croner's 5L reaches the exporter only past the cron plugin's check (an API caller,
    or a file read without it): never croniter's own error, always the app and option."""
    with pytest.raises(OptionError, match=rf"cron_restart '{re.escape(cron)}'.*{why}"):
        on_calendar(cron, None)
    with pytest.raises(OptionError, match=rf"^job: cron_restart '{re.escape(cron)}'.*{why}"):
        render_unchecked(tmp_path, cron_restart=cron)


@pytest.mark.parametrize(
    "tz", ["Mars/Olympus", "Europe/Paris\nOnCalendar=*-*-* *:*:00", "../../etc/passwd", " UTC"]
)
def test_a_bad_cron_tz_is_refused_not_written(tmp_path, tz):
    with pytest.raises(OptionError, match=r"cron_tz .* IANA time zone"):
        on_calendar("0 4 * * *", tz)
    with pytest.raises(OptionError, match=r"^job: cron_tz"):
        render_unchecked(tmp_path, cron_tz=tz)


def test_a_good_cron_tz_is_written():
    assert on_calendar("0 4 * * *", "America/Argentina/Buenos_Aires") == [
        "*-*-* 04:00:00 America/Argentina/Buenos_Aires"
    ]
    assert on_calendar("0 4 * * *", "Etc/GMT+5") == ["*-*-* 04:00:00 Etc/GMT+5"]


def test_a_node_app_with_listen_gets_port_and_is_told_to_bind_it(tmp_path):
    """corral sets PORT to the listen port for every app (ManagedProcess.child_env); a node
    app gets no socket unit, so it binds PORT itself: the env and the warning say so."""
    apps = [
        {"name": "node", "script": "server.js", "listen": ":3000"},
        {"name": "pair", "script": "server.js", "listen": "127.0.0.1:3001", "instances": 2},
        {"name": "sock", "script": "server.js", "listen": "unix:/run/sock.sock"},
    ]
    files, warnings = render(tmp_path, apps)
    assert "node.socket" not in files
    assert 'Environment="PORT=3000"' in files["node.service"].splitlines()
    for name in ("pair-0.service", "pair-1.service"):
        assert 'Environment="PORT=3001"' in files[name].splitlines()
    assert "PORT" not in files["sock.service"]
    assert warnings == [
        "node: listen :3000: no socket unit (corral's node shim is not there under "
        "systemd): PORT=3000 is set, the app must listen on it itself",
        "pair: listen 127.0.0.1:3001: no socket unit (corral's node shim is not there under "
        "systemd): PORT=3001 is set, the app must listen on it itself, on 127.0.0.1; its 2 "
        "instances each bind it: use SO_REUSEPORT, or one instance",
        "sock: listen unix:/run/sock.sock: no socket unit (corral's node shim is not there "
        "under systemd): not exported; the app must listen on it itself",
    ]


@pytest.mark.parametrize(
    ("options", "out", "err", "said"),
    [
        # log_file alone: both streams, the combined log kept
        ({"log_file": "/var/log/a.log"}, "append:/var/log/a.log", "append:/var/log/a.log", []),
        # NULL for a stream: corral still writes it to the combined log
        (
            {"log_file": "/var/log/a.log", "out_file": "/dev/null"},
            "append:/var/log/a.log",
            "append:/var/log/a.log",
            [],
        ),
        # the same file twice: corral writes it once
        (
            {"log_file": "/var/log/a.log", "out_file": "/var/log/a.log"},
            "append:/var/log/a.log",
            "append:/var/log/a.log",
            [],
        ),
        # a stream with its own file keeps it: the combined log loses that stream, said
        (
            {"log_file": "/var/log/a.log", "out_file": "/var/log/out.log"},
            "append:/var/log/out.log",
            "append:/var/log/a.log",
            [
                "a: log_file /var/log/a.log: systemd writes a stream to one place: stdout "
                "goes to out_file /var/log/out.log only, not to the combined log"
            ],
        ),
        (
            {
                "log_file": "/var/log/a.log",
                "out_file": "/var/log/out.log",
                "error_file": "/var/log/err.log",
            },
            "append:/var/log/out.log",
            "append:/var/log/err.log",
            [
                "a: log_file /var/log/a.log: systemd writes a stream to one place: stdout "
                "goes to out_file /var/log/out.log only, not to the combined log",
                "a: log_file /var/log/a.log: systemd writes a stream to one place: stderr "
                "goes to error_file /var/log/err.log only, not to the combined log",
            ],
        ),
        # log_file NULL: no combined log; the streams go to the journal, not to null
        ({"log_file": "NULL"}, None, None, []),
        ({"error_file": "NULL"}, None, "null", []),
    ],
)
def test_log_file_is_the_combined_log_of_the_streams_without_their_own(
    tmp_path, options, out, err, said
):
    files, warnings = render(tmp_path, [{"name": "a", "script": "a.py", **options}])
    lines = files["a.service"].splitlines()
    for key, want in (("StandardOutput", out), ("StandardError", err)):
        got = [line.partition("=")[2] for line in lines if line.startswith(key + "=")]
        assert got == ([want] if want else []), key
    assert warnings == said


@pytest.mark.parametrize(
    ("option", "bad"), [("out_file", "out"), ("error_file", "err"), ("log_file", "all")]
)
def test_a_bad_log_path_names_its_own_option(tmp_path, option, bad):
    with pytest.raises(OptionError, match=rf"^a: {option} '/var/log/{bad}\\n.log' has a control"):
        render(tmp_path, [{"name": "a", "script": "a.py", option: f"/var/log/{bad}\n.log"}])


# -- listen: only what ListenStream= parses ------------------------------------------


@needs_analyze
def test_listen_on_localhost_is_127_0_0_1_and_verifies(tmp_path):
    """systemd's ListenStream= takes no host name: 'localhost:8000' failed verify, and the
    service that Requires= the socket never started."""
    scripts(tmp_path, "web.py")
    files, warnings = render(
        tmp_path, [{"name": "web", "script": "web.py", "listen": "localhost:8000"}]
    )
    assert "ListenStream=127.0.0.1:8000" in files["web.socket"].splitlines()
    assert warnings == []
    verify(files, tmp_path)


@pytest.mark.parametrize("listen", ["myhost.example:8003", "db:5432", "*:80"])
def test_listen_on_a_host_name_is_refused_naming_the_app(tmp_path, listen):
    with pytest.raises(OptionError) as caught:
        render(tmp_path, [{"name": "web", "script": "web.py", "listen": listen}])
    message = str(caught.value)
    assert message.startswith(f"web: listen {listen!r}: ")
    assert "give its IP address" in message and "\n" not in message


def test_a_node_app_listening_on_a_host_name_binds_it_itself(tmp_path):
    """No socket unit for a node app: the name is the app's to resolve, on the target."""
    files, warnings = render(tmp_path, [{"name": "n", "script": "n.js", "listen": "db:3000"}])
    assert "n.socket" not in files
    assert warnings[0].endswith("the app must listen on it itself, on db")


def test_a_listen_corral_refuses_is_refused_by_the_export(tmp_path):
    with pytest.raises(ConfigError, match=r"apps\[0\] \(web\): listen 'localhost:99999' is not an"):
        render(tmp_path, [{"name": "web", "script": "web.py", "listen": "localhost:99999"}])


# -- restarts, instances, cluster mode: what the warnings say ---------------------------


def test_exp_backoff_wins_over_restart_delay_and_is_said(tmp_path):
    """corral's backoff wins over restart_delay (lifecycle.restart_delay): it vanished."""
    files, warnings = render(
        tmp_path,
        [{"name": "w", "script": "w.py", "restart_delay": 5000, "exp_backoff_restart_delay": 200}],
    )
    lines = files["w.service"].splitlines()
    assert "RestartSec=200ms" in lines
    assert warnings == [
        "w: exp_backoff_restart_delay: systemd < 254 has no backoff: exported as a fixed "
        "RestartSec= of its first delay (200ms); restart_delay 5s is not used, as under "
        "corral, where the backoff wins over it"
    ]


def test_instances_max_is_said_max(tmp_path):
    _, warnings = render(tmp_path, [{"name": "w", "script": "w.py", "instances": "max"}])
    (said,) = [w for w in warnings if "--cpus" in w]
    assert said.startswith("w: instances max is per CPU of the target: exported ")
    _, warnings = render(tmp_path, [{"name": "w", "script": "w.py", "instances": -1}])
    (said,) = [w for w in warnings if "--cpus" in w]
    assert said.startswith("w: instances -1 is per CPU of the target: exported ")


def test_cluster_mode_advises_increment_var_only_to_an_app_without_it(tmp_path):
    base = {"script": "s.js", "instances": 2, "exec_mode": "cluster"}
    apps = [
        {"name": "bare", **base},
        {"name": "inc", **base, "increment_var": "PORT", "env": {"PORT": 3000}},
    ]
    _, warnings = render(tmp_path, apps)
    (bare,) = [w for w in warnings if w.startswith("bare: cluster mode")]
    (inc,) = [w for w in warnings if w.startswith("inc: cluster mode")]
    assert "increment_var: PORT" in bare
    assert "give them distinct ports" not in inc
    assert inc == (
        "inc: cluster mode's shared port has no systemd equivalent: each instance binds its "
        "own; increment_var PORT gives each its own PORT: a port fixed in the code needs "
        "SO_REUSEPORT"
    )
    other = {"name": "other", **base, "increment_var": "HTTP_PORT", "env": {"HTTP_PORT": 80}}
    _, warnings = render(tmp_path, [other])
    (said,) = [w for w in warnings if w.startswith("other: cluster mode")]
    assert "(increment_var: PORT)" not in said
    assert said.endswith(
        "give them distinct ports (increment_var HTTP_PORT gives each its own HTTP_PORT, if "
        "that is the port) or SO_REUSEPORT"
    )
    # PORT from the port option wins over increment_var's, as under corral: the same for all
    _, warnings = render(tmp_path, [{"name": "fixed", **base, "increment_var": "PORT", "port": 80}])
    (fixed,) = [w for w in warnings if w.startswith("fixed: cluster mode")]
    assert fixed.endswith(
        "each instance binds its own; PORT is the port option's (80) in every instance, over "
        "increment_var PORT, as under corral: give them distinct ports or SO_REUSEPORT"
    )


def test_listen_on_a_scoped_ipv6_address_is_refused(tmp_path):
    """systemd-analyze verify: "Failed to parse address value in '[fe80::1%eth0]:80'"."""
    with pytest.raises(OptionError, match=r"^web: listen '\[fe80::1%eth0\]:80': .* no IPv6 zone"):
        render(tmp_path, [{"name": "web", "script": "web.py", "listen": "[fe80::1%eth0]:80"}])

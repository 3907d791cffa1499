"""The watch plugin: real files, real inotify (and polling) observers, real restarts."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import corral
from corral.errors import OptionError, PluginError
from corral.plugins import watch
from corral.plugins.watch import watchers
from tests.conftest import APPS, PY, python_app, wait_for

SLEEPER = str(APPS / "sleeper.py")

# Writes a line every 5 ms, forever: its log file changes all the time.
CHATTY = """\
import time
i = 0
while True:
    print(f"line {i}", flush=True)
    i += 1
    time.sleep(0.005)
"""


# Takes 0.5 s to exit on SIGINT, so a change can land while it is being restarted.
SLOW_STOP = """\
import signal, sys, time
signal.signal(signal.SIGINT, lambda *_: (time.sleep(0.5), sys.exit(0)))
while True:
    time.sleep(3600)
"""


class Recorder:
    """Every process event, with the monotonic time it was emitted at."""

    corral_runs_on_loop = True  # timestamps must be taken as the event happens

    def __init__(self) -> None:
        self.events: list[tuple[float, Any]] = []
        self.lock = threading.Lock()
        self.daemon: Any = None  # the DaemonAPI it was started in

    @corral.hookimpl
    def corral_daemon_start(self, daemon: Any) -> None:
        self.daemon = daemon

    @corral.hookimpl
    def corral_process_event(self, event: Any) -> None:
        with self.lock:
            self.events.append((time.monotonic(), event))

    def restarts(self, name: str) -> list[tuple[float, str]]:
        with self.lock:
            return [
                (at, e.reason)
                for at, e in self.events
                if e.event == "restart" and e.name == name and e.reason.startswith("file")
            ]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def pm(corral_home: Path, recorder: Recorder) -> Iterator[corral.Client]:
    """An in-process daemon with the watch plugin (and the event recorder)."""
    with corral.connect(no_daemon=True, plugins=[watch, recorder]) as client:
        yield client


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "app.py").write_text("# the app\n")
    return root


def status(pm: corral.Client, name: str) -> dict[str, Any]:
    return next((s for s in pm.call("watch_status") if s["name"] == name), {})


def start_watched(pm: corral.Client, name: str, cwd: Path, **options: Any) -> None:
    pm.start(SLEEPER, {"name": name, "cwd": str(cwd), "watch": True, **options})
    wait_watching(pm, name)


def wait_watching(pm: corral.Client, name: str) -> None:
    wait_for(
        lambda: status(pm, name).get("watching") and status(pm, name)["pm_ids"],
        what=f"{name} watched",
    )


def restart_times(pm: corral.Client, name: str) -> list[int]:
    return [info.restart_time for info in pm.describe(name)]


def wait_restarts(pm: corral.Client, name: str, count: int) -> dict[str, Any]:
    """Until ``name``'s watcher finished ``count`` restarts and every instance is online."""
    wait_for(
        lambda: (
            status(pm, name).get("restarts") == count
            and all(i.status == "online" for i in pm.describe(name))
        ),
        what=f"{count} watch restarts of {name}",
    )
    return status(pm, name)


def touch(path: Path, text: str = "changed") -> float:
    """Write ``path`` (creating its directory); return when, on the monotonic clock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    at = time.monotonic()
    path.write_text(f"{text} {at}\n")
    return at


def witness(pm: corral.Client, project: Path) -> None:
    """A second app watching ``project``: its restart shows a change got through."""
    start_watched(pm, "witness", project)


# -- restarts ------------------------------------------------------------------------


def test_touching_a_watched_file_restarts(pm, recorder, project, capsys):
    start_watched(pm, "web", project)
    pid = pm.describe("web")[0].pid
    changed_at = touch(project / "app.py")
    state = wait_restarts(pm, "web", 1)
    (restarted_at, reason) = recorder.restarts("web")[0]
    latency = restarted_at - changed_at
    with capsys.disabled():
        print(f"\nwatch: change -> restart {latency * 1000:.0f} ms (watch_delay 0)")
    assert latency < 1.0
    assert reason == "file changed: app.py"
    assert state["last_reason"] == reason
    info = pm.describe("web")[0]
    assert info.restart_time == 1 and info.pid != pid


def test_ignored_paths_never_restart(pm, recorder, project):
    start_watched(pm, "web", project)
    ignored = [
        project / "node_modules" / "x.js",
        project / ".git" / "HEAD",
        project / "src" / "mod.pyc",
        project / "src" / "__pycache__" / "mod.cpython-311.pyc",
        project / ".app.py.swp",
    ]
    for path in ignored:
        touch(path)
    # the observer saw each of them (a created and a modified event) and dropped it
    wait_for(lambda: status(pm, "web")["events_ignored"] >= 2 * len(ignored), what="ignored")
    assert status(pm, "web")["restarts"] == 0
    touch(project / "src" / "mod.py")
    wait_restarts(pm, "web", 1)
    assert [reason for _, reason in recorder.restarts("web")] == ["file changed: src/mod.py"]
    assert restart_times(pm, "web") == [1]


def test_the_apps_own_logs_never_restart_it(pm, project):
    """The app writes its out log in its cwd every 5 ms; its pid file is there too."""
    script = python_app(project, "chatty.py", CHATTY)
    pm.start(
        script,
        {
            "name": "chatty",
            "cwd": str(project),
            "watch": True,
            "ignore_watch": [],  # nothing ignored but what is always ignored
            "out_file": "chatty-out.log",
            "error_file": "chatty-err.log",
            "pid_file": "chatty.pid",
        },
    )
    wait_watching(pm, "chatty")
    info = pm.describe("chatty")[0]
    assert Path(info.out_log).parent == project
    touch(project / "chatty-out__2026-11-25_00-00-00.log")  # a rotated copy
    seen = status(pm, "chatty")["events_ignored"]
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # watch the log grow for 2 s: no restart
        assert pm.describe("chatty")[0].restart_time == 0
        assert status(pm, "chatty")["restarts"] == 0
        time.sleep(0.05)
    assert status(pm, "chatty")["events_ignored"] > seen + 50


def test_a_burst_of_files_restarts_once(pm, recorder, project):
    start_watched(pm, "web", project)
    for i in range(20):
        (project / "src" / f"f{i:02d}.py").write_text(f"x = {i}\n")
    wait_restarts(pm, "web", 1)
    touch(project / "app.py")  # one more change: the next restart is the second
    wait_restarts(pm, "web", 2)
    reasons = [reason for _, reason in recorder.restarts("web")]
    assert reasons == ["file changed: src/f00.py (and 19 more)", "file changed: app.py"]
    assert restart_times(pm, "web") == [2]


def test_every_instance_restarts_once(pm, recorder, project):
    start_watched(pm, "web", project, instances=2)
    assert len(status(pm, "web")["pm_ids"]) == 2
    touch(project / "app.py")
    wait_restarts(pm, "web", 1)
    assert restart_times(pm, "web") == [1, 1]
    touch(project / "src" / "x.py")
    wait_restarts(pm, "web", 2)
    assert restart_times(pm, "web") == [2, 2]


def test_watch_delay_waits_after_the_last_change(pm, recorder, project):
    start_watched(pm, "web", project, watch_delay=300)
    assert status(pm, "web")["quiet_ms"] == 300
    touch(project / "a.py")
    wait_for(lambda: status(pm, "web")["events_seen"] > 0, what="first change seen")
    last = touch(project / "b.py")  # before the 300 ms are over: the wait starts again
    wait_restarts(pm, "web", 1)
    restarted_at, reason = recorder.restarts("web")[0]
    assert restarted_at - last >= 0.3
    assert reason == "file changed: a.py (and 1 more)"


# -- what is watched -------------------------------------------------------------------


def test_a_list_watches_only_those_paths(pm, recorder, project):
    start_watched(pm, "web", project, watch=["src", "conf/*.toml"])
    assert status(pm, "web")["paths"] == [str(project.resolve())]  # conf/ does not exist yet
    touch(project / "app.py")
    touch(project / "lib" / "x.py")
    touch(project / "conf" / "a.ini")
    touch(project / "conf" / "b.toml")
    touch(project / "src" / "deep" / "y.py")
    wait_restarts(pm, "web", 1)
    assert recorder.restarts("web")[0][1] == "file changed: conf/b.toml (and 2 more)"
    # src/deep (the directory) and src/deep/y.py, not the files outside the list


def test_src_alone_observes_src_only(pm, recorder, project):
    start_watched(pm, "web", project, watch=["src"])
    assert status(pm, "web")["paths"] == [str((project / "src").resolve())]
    touch(project / "app.py")
    touch(project / "src" / "y.py")
    wait_restarts(pm, "web", 1)
    assert [reason for _, reason in recorder.restarts("web")] == ["file changed: src/y.py"]


def test_polling_works(pm, recorder, project):
    start_watched(pm, "web", project, watch_options={"usePolling": True, "interval": 50})
    assert status(pm, "web")["polling"] is True
    changed_at = touch(project / "app.py", "a longer text than before")
    wait_restarts(pm, "web", 1)
    assert recorder.restarts("web")[0][1] == "file changed: app.py"
    assert recorder.restarts("web")[0][0] - changed_at < 1.0


def test_a_change_during_a_restart_brings_one_more(pm, recorder, project):
    script = python_app(project, "slow.py", SLOW_STOP)
    pm.start(script, {"name": "slow", "cwd": str(project), "watch": True})
    wait_watching(pm, "slow")
    touch(project / "a.py")
    wait_for(lambda: pm.describe("slow")[0].status == "stopping", what="stopping")
    touch(project / "b.py")
    wait_restarts(pm, "slow", 2)
    reasons = [reason for _, reason in recorder.restarts("slow")]
    assert reasons == ["file changed: a.py", "file changed: b.py"]
    assert restart_times(pm, "slow") == [2]


def test_an_atomic_save_restarts(pm, recorder, project):
    """Editors write a hidden temporary file and rename it over the original."""
    start_watched(pm, "web", project)
    temporary = project / ".app.py.tmp"
    temporary.write_text("new version\n")
    os.replace(temporary, project / "app.py")
    wait_restarts(pm, "web", 1)
    assert [reason for _, reason in recorder.restarts("web")] == ["file changed: app.py"]


def test_follow_symlinks(pm, recorder, project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "linked").symlink_to(outside)
    start_watched(pm, "web", project, watch_options={"follow_symlinks": True})
    touch(outside / "x.py")
    wait_restarts(pm, "web", 1)
    assert recorder.restarts("web")[0][1] == "file changed: linked/x.py"


def test_new_options_rebuild_the_watcher(pm, project):
    start_watched(pm, "web", project)
    assert status(pm, "web")["paths"] == [str(project.resolve())]
    pm.restart("web", options={"watch": ["src"], "watch_delay": 200})
    wait_for(
        lambda: status(pm, "web").get("paths") == [str((project / "src").resolve())],
        what="src watched",
    )
    assert status(pm, "web")["quiet_ms"] == 200
    pm.restart("web", options={"watch": False})
    wait_for(lambda: not status(pm, "web")["watching"], what="web unwatched")


# -- turning it off -------------------------------------------------------------------


def test_a_stop_disables_watch_until_the_next_start(pm, project):
    start_watched(pm, "web", project)
    witness(pm, project)
    pm.stop("web")
    wait_for(lambda: not status(pm, "web")["watching"], what="web unwatched")
    touch(project / "app.py")
    wait_restarts(pm, "witness", 1)  # the change went through, to the witness only
    assert pm.describe("web")[0].status == "stopped"
    assert status(pm, "web")["restarts"] == 0
    pm.restart("web")
    wait_watching(pm, "web")
    touch(project / "app.py")
    wait_restarts(pm, "web", 1)


def test_a_delete_forgets_the_watcher(pm, project):
    start_watched(pm, "web", project)
    pm.delete("web")
    wait_for(lambda: not status(pm, "web").get("watching"), what="web unwatched")
    assert status(pm, "web").get("pm_ids", []) == []


def test_deleted_apps_leave_no_state(pm, project, recorder):
    """The watcher of a deleted app name goes with it (it was ~1.3 KB kept per name)."""
    watch_status = pm.call("watch_status")
    watcher = watch.watcher(recorder.daemon)
    before = len(watcher.apps)
    for i in range(200):
        start_watched(pm, f"gone-{i}", project)
        pm.delete(f"gone-{i}")
    wait_for(lambda: len(watcher.apps) == before, what="the watcher's apps as before")
    assert pm.call("watch_status") == watch_status


def test_watch_stop_and_start_toggle(pm, project):
    start_watched(pm, "web", project)
    witness(pm, project)
    [row] = pm.call("watch_toggle", name="web", on=False)
    assert row["off"] is True and row["watching"] is False
    touch(project / "app.py")
    wait_restarts(pm, "witness", 1)
    pm.restart("web")  # a restart does not turn it back on
    touch(project / "app.py")
    wait_restarts(pm, "witness", 2)
    assert status(pm, "web")["restarts"] == 0
    [row] = pm.call("watch_toggle", name="web", on=True)
    assert row["watching"] is True and row["pm_ids"] == [0]
    touch(project / "app.py")
    wait_restarts(pm, "web", 1)


def test_watch_start_watches_an_app_started_without_watch(pm, project):
    pm.start(SLEEPER, {"name": "plain", "cwd": str(project)})
    assert status(pm, "plain") == {} or not status(pm, "plain")["watching"]
    pm.call("watch_toggle", name="plain", on=True)
    wait_watching(pm, "plain")
    touch(project / "app.py")
    wait_restarts(pm, "plain", 1)


def test_watch_toggle_names_a_missing_app(pm):
    with pytest.raises(corral.NotFoundError, match="no app named 'nope'"):
        pm.call("watch_toggle", name="nope", on=False)


def test_cli_watch_stop_and_start(pm, project):
    start_watched(pm, "web", project)
    group = click.Group("corral")
    watch.corral_cli(group)
    runner = CliRunner()
    result = runner.invoke(group, ["watch", "stop", "web"], obj=pm)
    assert (result.exit_code, result.output) == (0, "web: off - (restarts: 0)\n")
    watching = f"web: watching {project.resolve()} (restarts: 0)\n"
    result = runner.invoke(group, ["watch", "start", "web"], obj=pm)
    assert (result.exit_code, result.output) == (0, watching)
    result = runner.invoke(group, ["watch"], obj=pm)
    assert result.output == watching
    result = runner.invoke(group, ["watch", "stop", "nope"], obj=pm)
    assert result.exit_code == 1 and "no app named 'nope'" in str(result.exception)


def test_an_observer_that_cannot_start_is_reported(pm, recorder, project, monkeypatch):
    def no_watches_left(settings: Any, handler: Any) -> None:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watchers, "start_observer", no_watches_left)
    pm.start(SLEEPER, {"name": "web", "cwd": str(project), "watch": True})
    wait_for(lambda: status(pm, "web").get("error"), what="the error")
    message = f"cannot watch {project.resolve()}: OSError: [Errno 28] inotify watch limit reached"
    assert status(pm, "web")["error"] == message
    errors = [e for _, e in recorder.events if e.event == "watch error"]
    assert [e.reason for e in errors] == [message]
    assert pm.describe("web")[0].status == "online"


# -- options -------------------------------------------------------------------------


def test_without_the_plugin_watch_is_refused(corral_home, project):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        with pytest.raises(PluginError, match="needs the plugin 'watch'"):
            client.start(SLEEPER, {"name": "web", "cwd": str(project), "watch": True})


def test_watch_options_in_camel_case_are_normalized(pm, project):
    start_watched(pm, "web", project, watchOptions={"followSymlinks": True, "usePolling": "true"})
    options = pm.describe("web")[0].pm2_env["watch_options"]
    assert options == {"follow_symlinks": True, "use_polling": True}


def test_an_unknown_watch_option_names_the_closest(pm, project):
    with pytest.raises(OptionError, match="did you mean 'use_polling'") as info:
        pm.start(SLEEPER, {"name": "web", "cwd": str(project), "watch_options": {"usePoling": 1}})
    assert info.value.field == "watch_options"
    assert pm.list() == []


def test_normalize_watch_options():
    norm = watch.normalize_watch_options
    assert norm({"use_polling": True, "interval": "2s"}) == {"use_polling": True, "interval": 2000}
    assert norm('{"followSymlinks": false}') == {"follow_symlinks": False}
    assert norm({"awaitWriteFinish": True}) == {"awaitWriteFinish": True}  # chokidar's: kept
    assert norm(norm({"usePolling": True})) == {"use_polling": True}
    with pytest.raises(OptionError, match="must be a mapping"):
        norm([1])
    with pytest.raises(OptionError, match="use_polling must be true or false"):
        norm({"use_polling": "yes"})
    with pytest.raises(OptionError, match="interval must be at least 10 ms"):
        norm({"interval": 1})
    with pytest.raises(OptionError, match="unknown key 'speed'"):
        norm({"speed": 1})


# -- matching, without observers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/p/*.py", "/p/a.py", True),
        ("/p/*.py", "/p/sub/a.py", False),
        ("/p/**/*.py", "/p/a.py", True),
        ("/p/**/*.py", "/p/x/y/a.py", True),
        ("/p/src/**", "/p/src/x/y", True),
        ("/p/a?.py", "/p/ab.py", True),
        ("/p/a?.py", "/p/a/.py", False),
        ("/p/[!x]*.toml", "/p/a.toml", True),
        ("/p/[!x]*.toml", "/p/x.toml", False),
        ("/p/a+b(c).py", "/p/a+b(c).py", True),
    ],
)
def test_glob_regex(pattern, path, expected):
    assert bool(watch.glob_regex(pattern).fullmatch(path)) is expected


def settings(cwd: str = "/p", watched: tuple[str, ...] = ("/p",), **kw: Any) -> Any:
    return watch.WatchSettings(
        cwd=cwd,
        entries=tuple(watch.Entry.parse(w) for w in watched),
        ignore=kw.pop("ignore", watch.DEFAULT_IGNORE),
        quiet_ms=50,
        skip_files=frozenset(kw.pop("skip", ("/p/logs/web-out.log", "/p/web.pid"))),
        skip_dirs=("/p/.home",),
        **kw,
    )


@pytest.mark.parametrize(
    ("path", "accepted"),
    [
        ("/p/app.py", True),
        ("/p/src/deep/mod.py", True),
        ("/p/node_modules/x/index.js", False),
        ("/p/.git/HEAD", False),
        ("/p/src/__pycache__/mod.cpython-311.pyc", False),
        ("/p/mod.pyc", False),
        ("/p/.app.py.swp", False),
        ("/p/logs/web-out.log", False),
        ("/p/logs/web-out__2026-11-25_00-00-00.log", False),
        ("/p/logs/web-out.log.1.gz", False),
        ("/p/logs/web-error.log", True),  # not this app's
        ("/p/web.pid", False),
        ("/p/.home/rpc.sock", False),
        ("/elsewhere/app.py", False),
    ],
)
def test_default_ignores(path, accepted):
    assert settings().accepts(path) is accepted


def test_ignore_watch_replaces_the_defaults_and_matches_paths():
    custom = settings(ignore=("build/", "./docs/*.md", "*.tmp"))
    assert custom.ignore == ("build", "docs/*.md", "*.tmp")
    assert custom.accepts("/p/.git/HEAD")  # the default is gone
    assert not custom.accepts("/p/src/build/x.py")
    assert not custom.accepts("/p/docs/a.md")
    assert custom.accepts("/p/docs/sub/a.md")
    assert not custom.accepts("/p/x.tmp")
    assert not custom.accepts("/p/logs/web-out.log")  # always ignored


def test_a_watched_dot_directory_is_watched():
    dotted = settings(watched=("/p/.config",))
    assert dotted.accepts("/p/.config/app.toml")
    assert not dotted.accepts("/p/.config/.hidden")
    assert not dotted.accepts("/p/app.py")


def test_directories_to_observe(tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "app.py").write_text("")
    root = str(tmp_path)
    watched = (f"{root}/src", f"{root}/src/pkg", f"{root}/app.py", f"{root}/missing/x", root)
    assert settings(root, (f"{root}/src", f"{root}/src/pkg")).directories() == [
        (f"{root}/src", True)
    ]
    assert settings(root, (f"{root}/app.py",)).directories() == [(root, False)]
    assert settings(root, (f"{root}/missing/*.py",)).directories() == [(root, True)]
    assert settings(root, watched).directories() == [(root, True)]


# -- latency -------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 100])
def test_latency(pm, recorder, project, capsys, delay):
    """Change -> restart event, median of 10 (printed; bounded only loosely)."""
    start_watched(pm, "web", project, watch_delay=delay)
    latencies = []
    for i in range(10):
        changed_at = touch(project / "app.py", str(i))
        wait_restarts(pm, "web", i + 1)
        latencies.append(recorder.restarts("web")[i][0] - changed_at)
    median = statistics.median(latencies)
    with capsys.disabled():
        print(
            f"\nwatch latency, watch_delay {delay} ms: median {median * 1000:.0f} ms, "
            f"min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f}"
        )
    assert median < delay / 1000 + 1.0
    assert all(lat >= max(delay, watch.MIN_QUIET_MS) / 1000 for lat in latencies)


# -- the command line -------------------------------------------------------------------


def _entry_point_installed() -> bool:
    from importlib import metadata

    return any(ep.name == "watch" for ep in metadata.entry_points(group="corral"))


@pytest.mark.skipif(not _entry_point_installed(), reason="the 'watch' entry point is not installed")
@pytest.mark.parametrize("flags", [["--watch"], ["--watch", "true"]])
def test_cli_start_with_watch(corral_home, project, flags):
    """`corral start app.py --watch` in a shell, as PM2's `pm2 start app.js --watch`."""
    env = {**os.environ, "CORRAL_PLUGINS": "watch"}
    args = ["start", SLEEPER, "--name", "web", *flags, "--ignore-watch", "node_modules *.log"]
    done = subprocess.run(
        [PY, "-m", "corral", *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    client = corral.connect()
    try:
        info = client.describe("web")[0]
        assert info.pm2_env["watch"] is True
        assert info.pm2_env["ignore_watch"] == ["node_modules", "*.log"]
        wait_for(lambda: any(s["watching"] for s in client.call("watch_status")), what="watching")
    finally:
        client.kill_daemon()
        client.disconnect()

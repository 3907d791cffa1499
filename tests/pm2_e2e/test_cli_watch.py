"""PM2 test/e2e/cli/watch.sh: pm2_env.watch through start --watch, stop, restart, and
watch in JSON files."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_stop_turns_watch_off(cli: Corral) -> None:
    """watch.sh:8-20: start --watch (true); stop (false); start by name; restart by script.

    Deliberate difference (README, "How corral differs from PM2"): PM2's stop turns
    watching off for good, so its steps 3 and 4 expect false; corral's stop pauses it,
    and a start or restart of the stopped app watches again as its `watch` option says
    (`corral watch stop NAME` turns it off for good)."""
    cli.kill()
    cli.run("start", "http.js", "--watch", cwd=cli.workdir / "watch")
    cli.should("watch", True, 1)
    cli.run("stop", "http")
    cli.should("watch", False, 1)
    cli.run("start", "http")
    cli.should("watch", True, 1)
    cli.run("restart", "http.js", cwd=cli.workdir / "watch")
    cli.should("watch", True, 1)


def test_start_without_then_with_watch(cli: Corral) -> None:
    """watch.sh:22-29: start without --watch (false); stop by script (false); start
    --watch (true)."""
    cli.delete_all()
    cli.run("start", "http.js", cwd=cli.workdir / "watch")
    cli.should("watch", False, 1)
    cli.run("stop", "http.js", cwd=cli.workdir / "watch")
    cli.should("watch", False, 1)
    cli.run("start", "http.js", "--watch", cwd=cli.workdir / "watch")
    cli.should("watch", True, 1)


def test_restart_watch_toggles(cli: Corral) -> None:
    """watch.sh:33-55: restart --watch turns watching on, the next restart --watch off,
    and on a stopped app on again."""
    cli.delete_all()
    watch = cli.workdir / "watch"
    cli.run("start", "http.js", cwd=watch)
    cli.should("watch", False, 1)
    cli.run("restart", "http.js", cwd=watch)
    cli.should("watch", False, 1)
    for expected in (True, False, True):
        cli.run("restart", "http.js", "--watch", cwd=watch)
        cli.should("watch", expected, 1)
    cli.run("stop", "http.js", cwd=watch)
    cli.should("watch", False, 1)
    cli.run("restart", "http.js", "--watch", cwd=watch)
    cli.should("watch", True, 1)
    cli.run("restart", "http.js", "--watch", cwd=watch)
    cli.should("watch", False, 1)


def test_json_watch_false(cli: Corral) -> None:
    """watch.sh:59-72: app.json (watch false): start, restart app.json (restart_time 1),
    stop app.json; watch stays false throughout."""
    cli.kill()
    watch = cli.workdir / "watch"
    cli.run("start", "app.json", cwd=watch)
    cli.should("status", "online", 1)
    cli.should("restart_time", 0, 1)
    cli.should("watch", False, 1)
    cli.run("restart", "app.json", cwd=watch)
    cli.should("status", "online", 1)
    cli.should("restart_time", 1, 1)
    cli.should("watch", False, 1)
    cli.run("stop", "app.json", cwd=watch)
    cli.should("status", "stopped", 1)
    cli.should("restart_time", 1, 1)
    cli.should("watch", False, 1)


def test_json_watch_true(cli: Corral) -> None:
    """watch.sh:76-99: app-watch.json (watch true): stop app-watch.json (watch false),
    restart app-watch.json (online, restart_time 0, watch true), restart all (1, true),
    stop all (watch false)."""
    cli.kill()
    watch = cli.workdir / "watch"
    cli.run("start", "app-watch.json", cwd=watch)
    cli.should("status", "online", 1)
    cli.should("restart_time", 0, 1)
    cli.should("watch", True, 1)
    cli.run("stop", "app-watch.json", cwd=watch)
    cli.should("status", "stopped", 1)
    cli.should("watch", False, 1)
    cli.run("restart", "app-watch.json", cwd=watch)
    cli.should("status", "online", 1)
    cli.should("restart_time", 0, 1)
    cli.should("watch", True, 1)
    cli.run("restart", "all")
    cli.should("restart_time", 1, 1)
    cli.should("watch", True, 1)
    cli.run("stop", "all")
    cli.should("status", "stopped", 1)
    cli.should("restart_time", 1, 1)
    cli.should("watch", False, 1)

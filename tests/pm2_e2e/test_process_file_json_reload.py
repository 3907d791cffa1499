"""PM2 test/e2e/process-file/json-reload.sh: restarting with a changed JSON file applies
its new options (max_memory_restart, log_date_format, env, env_production)."""

from __future__ import annotations

import time

from tests.pm2_e2e.conftest import Corral, read, wait_text


def _log(cli: Corral):  # type: ignore[no-untyped-def]
    return cli.workdir / "json-reload" / "echo-test.log"


def _work(cli: Corral):  # type: ignore[no-untyped-def]
    return cli.workdir / "json-reload"


def test_max_memory_not_reached(cli: Corral) -> None:
    """json-reload.sh:18-21: max_memory_restart 300M on a 40 MB app: not restarted."""
    cli.kill()
    cli.run("start", "max-mem-0.json", cwd=_work(cli))
    cli.should("status", "online", 1)
    cli.should("restart_time", 0, 1)


def test_restart_with_lower_max_memory(cli: Corral) -> None:
    """json-reload.sh:23-27: restart max-mem.json (19M): the new limit applies, the app is
    restarted for its memory."""
    cli.run("restart", "max-mem.json", cwd=_work(cli))
    cli.wait(lambda p: p and p[0]["pm2_env"]["restart_time"] >= 2, "restarted for memory")


def test_log_date_format(cli: Corral) -> None:
    """json-reload.sh:32-42: echo-pre.json (log_date_format YYYY-MM-DD HH:mm Z): lines carry
    the year, and 'ok' (no ECHO_MSG)."""
    cli.delete_all()
    cli.run("start", "echo-pre.json", cwd=_work(cli))
    wait_text(_log(cli), time.strftime("%Y"))
    wait_text(_log(cli), "ok")


def test_restart_with_new_format_and_env(cli: Corral) -> None:
    """json-reload.sh:44-52: restart echo-post.json (format DD, env ECHO_MSG=YAY): no year
    any more, YAY."""
    cli.run("restart", "echo-post.json", cwd=_work(cli))
    wait_text(_log(cli), "YAY")
    _log(cli).write_text("")
    wait_text(_log(cli), "YAY")
    assert time.strftime("%Y") not in read(_log(cli))


def test_env_production_restart_reload_and_back(cli: Corral) -> None:
    """json-reload.sh:55-76: restart echo-post.json --env production (WOW), reload with
    --env production (WOW), restart echo-post.json (YAY again)."""
    for verb, extra, text in (
        ("restart", ["--env", "production"], "WOW"),
        ("reload", ["--env", "production"], "WOW"),
        ("restart", [], "YAY"),
    ):
        cli.run(verb, "echo-post.json", *extra, cwd=_work(cli))
        _log(cli).write_text("")
        wait_text(_log(cli), text)

"""corral web over real HTTP: a real daemon with the bus, a real `corral web start`, real
apps. Every refusal of the dashboard's safety rules, the JSON API's shapes, the event
stream, and the CLI's start, stop and url, with their errors."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import psutil
import pytest

import corral
from corral.plugins.web.auth import Gate
from corral.plugins.web.hub import HISTORY, Hub
from corral.plugins.web.routes import ACTIONS, Dashboard
from corral.testing import wait_for
from tests.conftest import PY, python_app, run_cli

from .conftest import APP, Stream, free_port, request

# Prints "ready", then every line written to the file $SAY (then removes it): out,
# or err for a line that starts with "err ". Exits 0 on SIGINT or SIGTERM.
TALKER = """\
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
say = os.environ["SAY"]
while True:
    if os.path.exists(say):
        for line in open(say).read().splitlines():
            if line.startswith("err "):
                print(line, file=sys.stderr, flush=True)
            else:
                print(line, flush=True)
        os.unlink(say)
    time.sleep(0.05)
"""


def start_talker(pm: corral.Client, tmp_path: Path, name: str = "talker", **options) -> dict:
    """Start the talker app; its pm_id, pid and the file it reads."""
    say = tmp_path / f"{name}.say"
    (info,) = pm.start(
        {
            "name": name,
            "script": python_app(tmp_path, f"{name}.py", TALKER),
            "exec_interpreter": PY,
            "env": {"SAY": str(say)},
            **options,
        }
    )
    wait_for(lambda: "ready" in _out(pm, name), timeout=10, what=f"{name} ready")
    return {"pm_id": info.pm_id, "pid": info.pid, "say": say, "name": name}


def _out(pm: corral.Client, name: str) -> str:
    path = pm.describe(name)[0].out_log
    try:
        return Path(path).read_text()
    except (FileNotFoundError, TypeError):
        return ""


def pid_of(pm: corral.Client, name: str) -> int:
    return pm.describe(name)[0].pid


# -- what `corral web start` runs ------------------------------------------------------


def test_the_dashboard_is_an_app_corral_supervises_listening_on_loopback_only(
    web_pm, start_dashboard
):
    dash = start_dashboard()
    (web,) = [i for i in web_pm.list() if i.name == APP]
    assert web.status == "online"
    listed = run_cli("ls").stdout
    assert APP in listed
    listening = [
        c.laddr
        for c in psutil.Process(web.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", dash.port)]
    assert dash.stderr == ""  # no warning on loopback
    # the secrets' directory is the user's alone; the login token is only stored hashed
    assert (dash.home / "web").stat().st_mode & 0o777 == 0o700
    assert (dash.home / "web" / "api.token").stat().st_mode & 0o777 == 0o600
    token = dash.login_url.split("token=")[1]
    stored = [p.name for p in (dash.home / "web" / "logins").iterdir()]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in (dash.home / "web" / "logins" / stored[0]).read_text()


def test_a_non_loopback_host_is_served_with_a_warning_and_still_refuses_strangers(
    web_pm, start_dashboard
):
    dash = start_dashboard(host="0.0.0.0")
    assert dash.stderr.startswith("warning: the dashboard listens on 0.0.0.0"), dash.stderr
    assert "API token can act on your apps" in dash.stderr
    reply = dash.get("/api/processes")
    assert reply.status == 401
    assert dash.login_url.startswith(f"http://127.0.0.1:{dash.port}/login?token=")


def test_web_start_twice_is_refused(web_pm, start_dashboard):
    start_dashboard()
    done = run_cli("web", "start", "--port", str(free_port()), check=False)
    assert done.returncode == 1
    assert "corral-web runs already: `corral web stop` first" in done.stderr
    assert [i.name for i in web_pm.list()].count(APP) == 1


def test_a_stopped_dashboard_is_replaced_by_the_next_start(web_pm, start_dashboard):
    start_dashboard()
    run_cli("stop", APP)
    done = run_cli("web", "url", check=False)
    assert done.returncode == 1 and "corral-web does not run" in done.stderr
    again = start_dashboard()  # not "runs already": it does not
    (web,) = [i for i in web_pm.list() if i.name == APP]
    assert web.status == "online" and str(again.port) in web.pm2_env["args"]
    assert request("GET", again.login_url).status == 200


def test_a_taken_port_is_refused_before_any_login_url_is_made(web_pm, corral_home):
    # something else listens there: a login URL (a token) must never be sent to it
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        done = run_cli("web", "start", "--port", str(port), check=False)
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip() == (
        f"error: 127.0.0.1:{port} is taken (Address already in use): choose another --port"
    )
    assert done.stdout == ""
    assert APP not in [i.name for i in web_pm.list()]
    assert list((corral_home / "web" / "logins").glob("*")) == []


def test_an_unknown_host_is_refused(web_pm):
    done = run_cli("web", "start", "--host", "no-such-host.invalid", check=False)
    assert done.returncode == 1
    assert "--host 'no-such-host.invalid' is no address of this machine" in done.stderr
    assert web_pm.list() == []


def test_web_stop_removes_the_dashboard_and_closes_its_port(web_pm, start_dashboard):
    dash = start_dashboard()
    pid = next(i.pid for i in web_pm.list() if i.name == APP)
    done = run_cli("web", "stop")
    assert done.stdout.strip() == f"stopped {APP}"
    assert APP not in [i.name for i in web_pm.list()]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", dash.port), timeout=1).close()
    again = run_cli("web", "stop", check=False)
    assert again.returncode == 1 and "corral-web does not run" in again.stderr


def test_web_url_when_the_dashboard_does_not_run(web_pm):
    done = run_cli("web", "url", check=False)
    assert done.returncode == 1
    assert "corral-web does not run: start it with `corral web start`" in done.stderr
    assert done.stdout == ""


def test_web_url_prints_a_fresh_one_time_url_each_time(web_pm, start_dashboard):
    dash = start_dashboard()
    first, second = dash.new_login_url(), dash.new_login_url()
    assert first != second != dash.login_url
    for url in (first, second, dash.login_url):
        assert request("GET", url).status == 200


def test_without_the_extra_web_start_names_the_install_command(corral_home, monkeypatch, tmp_path):
    # a `starlette` (then a `uvicorn`) first on the path that is not there, as when
    # the extra was never installed: the import fails as a missing module's does
    monkeypatch.setenv("CORRAL_PLUGINS", "bus,web")
    for missing in ("starlette", "uvicorn"):
        shadow = tmp_path / missing
        shadow.mkdir()
        (shadow / f"{missing}.py").write_text(
            f'raise ModuleNotFoundError("No module named {missing!r}", name={missing!r})\n'
        )
        monkeypatch.setenv("PYTHONPATH", str(shadow))
        done = run_cli("web", "start", "--port", str(free_port()), check=False)
        assert done.returncode == 1
        assert done.stderr.strip() == (
            f"error: corral web needs {missing}: install it with pip install 'corral[web]'"
        )
        assert not (corral_home / "corral.pid").exists()  # it said so before any daemon


def test_a_daemon_without_the_bus_is_refused(corral_home, monkeypatch):
    monkeypatch.setenv("CORRAL_PLUGINS", "web")  # the CLI has `corral web`, the daemon no bus
    client = corral.connect()
    try:
        done = run_cli("web", "start", "--port", str(free_port()), check=False)
        assert done.returncode == 1
        assert "the daemon runs without the bus plugin" in done.stderr
        assert "add bus" in done.stderr
        assert client.list() == []
    finally:
        client.kill_daemon()
        client.disconnect()


# -- who may ask: every refusal -------------------------------------------------------


def routes(pm_id: int) -> list[tuple[str, str]]:
    """Every route the dashboard serves but /login and /favicon.ico, as (method, path)."""
    gets = [
        "/",
        f"/app/{pm_id}",
        "/static/corral.js",
        "/static/corral.css",
        "/static/nonexistent.js",
        "/api/processes",
        f"/api/processes/{pm_id}",
        f"/api/processes/{pm_id}/history",
        f"/api/processes/{pm_id}/events",
        f"/api/processes/{pm_id}/logs",
        f"/api/processes/{pm_id}/logs?q=ready",
        "/api/stream",
        f"/api/stream?logs={pm_id}",
    ]
    posts = [f"/api/processes/{pm_id}/{action}" for action in (*ACTIONS, "unknown")]
    return [("GET", p) for p in gets] + [("POST", p) for p in posts]


def test_the_route_list_above_covers_every_route_of_the_dashboard(tmp_path):
    served = {route.path for route in Dashboard(None, Gate(tmp_path), readonly=False).app().routes}
    listed = {
        path.split("?")[0].replace("/0", "/{pm_id:int}").replace("corral.js", "{name}")
        for _method, path in routes(0)
    }
    listed = {p.replace("/restart", "/{action}") for p in listed}
    free = {"/login", "/favicon.ico", "/api/logout"}  # the login; an empty icon; logout
    assert served - free - listed == set()


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"Cookie": "corral_session_0=not-a-session"},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["nothing", "wrong-cookie", "wrong-bearer", "empty-bearer", "basic"],
)
def test_every_route_refuses_a_request_without_valid_credentials(
    web_pm, start_dashboard, tmp_path, credentials
):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    refused = {}
    for method, path in routes(app["pm_id"]):
        reply = request(method, dash.base + path, headers=credentials, body=b"{}")
        refused[(method, path)] = reply.status
        assert "set-cookie" not in reply.headers
    assert set(refused.values()) == {401}, refused
    # the refused actions did nothing: the same child runs, never stopped or restarted
    (info,) = web_pm.describe("talker")
    assert (info.status, info.pid, info.restart_time) == ("online", app["pid"], 0)
    # and the real token, for contrast, is let in
    assert dash.get("/api/processes", headers=dash.bearer()).status == 200


def test_a_wrong_bearer_token_of_the_right_length_is_refused(web_pm, start_dashboard):
    dash = start_dashboard()
    real = dash.token
    wrong = real[:-1] + ("A" if real[-1] != "A" else "B")
    assert dash.get("/api/processes", headers=dash.bearer(wrong)).status == 401
    assert dash.get("/api/processes", headers=dash.bearer(real)).status == 200


def test_pages_need_a_session_the_bearer_token_opens_the_api_only(web_pm, start_dashboard):
    dash = start_dashboard()
    assert dash.get("/", headers=dash.bearer()).status == 401
    assert dash.get("/app/0", headers=dash.bearer()).status == 401
    session = dash.login()
    page = dash.get("/", headers=session.headers(key=False))
    assert page.status == 200 and 'data-page="list"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert dash.get("/app/0", headers=session.headers(key=False)).status == 200
    script = dash.get("/static/corral.js", headers=session.headers(key=False))
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")


def test_a_login_token_opens_one_session_once(web_pm, start_dashboard):
    dash = start_dashboard()
    first = request("GET", dash.login_url)
    # a page that keeps the key and goes to / (not a redirect: see test_login_page)
    assert first.status == 200 and "location" not in first.headers
    second = request("GET", dash.login_url)
    assert second.status == 401
    assert "set-cookie" not in second.headers
    assert "used or expired" in second.text


def test_an_expired_login_token_is_refused(web_pm, start_dashboard):
    dash = start_dashboard()
    url = dash.new_login_url()
    token = url.split("token=")[1]
    stored = dash.home / "web" / "logins" / hashlib.sha256(token.encode()).hexdigest()
    stored.write_text(str(time.time() - 1))  # its 5 minutes are over
    reply = request("GET", url)
    assert reply.status == 401 and "set-cookie" not in reply.headers
    assert not stored.exists()  # and it is gone: it cannot be tried again
    for bad in ("", "not-a-token", "x" * 300):
        assert dash.get(f"/login?token={bad}").status == 401
    assert dash.get("/login").status == 401


def test_the_session_cookie_is_httponly_samesite_strict(web_pm, start_dashboard):
    dash = start_dashboard()
    reply = request("GET", dash.login_url)
    assert reply.status == 200
    (cookie,) = reply.headers.get_all("set-cookie")
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert attributes["path"] == "Path=/"
    assert cookie.startswith(f"corral_session_{dash.port}=")  # each port its own
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert len(session_id) >= 40  # 32 random bytes


def test_a_session_post_needs_its_key(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    session, other = dash.login(), dash.login()
    path = f"/api/processes/{app['pm_id']}/restart"
    for headers in (
        session.headers(key=False),
        {**session.headers(key=False), "X-Corral-Key": ""},
        {**session.headers(key=False), "X-Corral-Key": "wrong"},
        {**session.headers(key=False), "X-Corral-Key": other.key},  # another session's
        {"X-Corral-Key": session.key},  # the key without the cookie
    ):
        reply = dash.post(path, headers=headers)
        assert reply.status == 401, reply.text
    assert pid_of(web_pm, "talker") == app["pid"]
    assert web_pm.describe("talker")[0].restart_time == 0
    # with it, the same request restarts the app
    reply = dash.post(path, headers=session.headers())
    assert reply.status == 200, reply.text
    assert reply.json() == {"ok": True, "action": "restart", "pm_id": app["pm_id"]}
    wait_for(lambda: pid_of(web_pm, "talker") not in (app["pid"], 0), timeout=10, what="restart")


def test_the_bearer_token_acts_without_a_session_and_each_action_does_its_work(
    web_pm, start_dashboard, tmp_path
):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()

    def act(action: str, body: str = "{}") -> None:
        reply = dash.post(
            f"/api/processes/{app['pm_id']}/{action}", headers=dash.bearer(), body=body
        )
        assert reply.status == 200, (action, reply.text)
        assert reply.json() == {"ok": True, "action": action, "pm_id": app["pm_id"]}

    def state() -> tuple[str, int]:
        info = web_pm.describe(app["pm_id"])[0]
        return info.status, info.pid

    def readies(count: int) -> int:  # the new child has started: it said ready
        wait_for(lambda: _out(web_pm, "talker").count("ready") == count, timeout=10)
        return state()[1]

    act("stop")
    wait_for(lambda: state()[0] == "stopped", timeout=10, what="stopped")
    act("start")
    pid = readies(2)
    act("restart")
    assert readies(3) != pid
    pid = state()[1]
    act("reload")
    assert readies(4) != pid
    act("flush")
    wait_for(lambda: "ready" not in _out(web_pm, "talker"), timeout=10, what="flushed")
    act("scale", '{"instances": 2}')
    wait_for(
        lambda: [i.status for i in web_pm.list() if i.name == "talker"] == ["online"] * 2,
        timeout=10,
        what="two talkers",
    )


def test_read_only_refuses_every_action_and_shows_no_button(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard("--readonly")
    web = next(i for i in web_pm.list() if i.name == APP)
    assert "--readonly" in web.pm2_env["args"]
    session = dash.login()
    for action in ACTIONS:
        path = f"/api/processes/{app['pm_id']}/{action}"
        body = json.dumps({"instances": 2}) if action == "scale" else "{}"
        for headers in (session.headers(), dash.bearer()):
            reply = dash.post(path, headers=headers, body=body)
            assert reply.status == 403, (action, reply.text)
            assert reply.json() == {"error": "the dashboard is read-only"}
    (info,) = web_pm.describe("talker")
    assert (info.status, info.pid, info.restart_time) == ("online", app["pid"], 0)
    page = dash.get("/", headers=session.headers(key=False)).text
    assert '<meta name="readonly" content="true">' in page
    # reading still works
    assert dash.get(f"/api/processes/{app['pm_id']}", headers=dash.bearer()).status == 200


def test_unknown_actions_and_apps_are_404_and_nothing_starts_a_new_command(
    web_pm, start_dashboard, tmp_path
):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    before = [(i.pm_id, i.name) for i in web_pm.list()]
    for path in (
        f"/api/processes/{app['pm_id']}/explode",
        f"/api/processes/{app['pm_id']}/delete",  # not from the dashboard
        f"/api/processes/{app['pm_id']}/exec",
        "/api/processes/999/restart",
        "/api/processes/999/start",
    ):
        reply = dash.post(path, headers=dash.bearer(), body='{"script": "/bin/sh"}')
        assert reply.status == 404, (path, reply.text)
    # no route takes a script or a command: a POST to the list is no start
    assert dash.post("/api/processes", headers=dash.bearer(), body="{}").status == 405
    assert dash.get(f"/api/processes/{app['pm_id']}/restart", headers=dash.bearer()).status in (
        404,
        405,
    )
    assert [(i.pm_id, i.name) for i in web_pm.list()] == before
    assert pid_of(web_pm, "talker") == app["pid"]


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[]", '{"instances": 0}', '{"instances": -1}', '{"instances": "2"}',
     '{"instances": true}', '{"instances": 1.5}', '{"count": 2}'],
)  # fmt: skip
def test_a_bad_scale_body_is_400_and_scales_nothing(web_pm, start_dashboard, tmp_path, body):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    session = dash.login()
    reply = dash.post(f"/api/processes/{app['pm_id']}/scale", headers=session.headers(), body=body)
    assert reply.status == 400, reply.text
    assert "scale takes" in reply.json()["error"] or "Expecting" in reply.json()["error"]
    assert [i.name for i in web_pm.list()].count("talker") == 1


# -- the JSON API ------------------------------------------------------------------


def test_the_process_list_has_pm2_jlist_shape(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    listed = dash.api("/api/processes")
    direct = json.loads(web_pm.jlist_json())
    assert [(p["pm_id"], p["name"], p["pid"]) for p in listed] == [
        (p["pm_id"], p["name"], p["pid"]) for p in direct
    ]
    talker = next(p for p in listed if p["name"] == "talker")
    assert {"pid", "name", "pm_id", "monit", "pm2_env"} <= set(talker)
    assert set(talker["monit"]) == {"memory", "cpu"}
    assert talker["monit"]["memory"] > 0
    env = talker["pm2_env"]
    assert env["status"] == "online" and env["restart_time"] == 0
    assert env["exec_mode"] == "fork_mode" and isinstance(env["pm_uptime"], int)
    one = dash.api(f"/api/processes/{app['pm_id']}")
    assert (one["name"], one["pid"], set(one)) == ("talker", app["pid"], set(talker))
    missing = dash.get("/api/processes/999", headers=dash.bearer())
    assert missing.status == 404 and missing.json() == {"error": "no process with pm_id 999"}


def test_history_samples_cpu_and_memory_every_second(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    path = f"/api/processes/{app['pm_id']}/history"

    def three() -> list | None:
        samples = dash.api(path)["samples"]
        return samples if len(samples) >= 3 else None

    samples = wait_for(three, timeout=10, what="three samples")
    times = [s[0] for s in samples]
    assert times == sorted(times) and times[-1] - times[0] >= 1.5
    assert abs(times[-1] - time.time()) < 5
    for _at, cpu, memory in samples:
        assert isinstance(cpu, (int, float)) and cpu >= 0
        assert isinstance(memory, int) and memory > 0
    assert dash.get("/api/processes/999/history", headers=dash.bearer()).status == 404


def test_each_apps_history_is_a_bounded_ring_dropped_with_the_app():
    hub = Hub(connect=None)  # no thread: the samples are handed to it
    proc = {"pm_id": 3, "name": "a", "pid": 1, "monit": {"cpu": 1.0, "memory": 10}}
    for _ in range(HISTORY + 25):
        hub.sample([proc])
    assert len(hub.samples(3)) == HISTORY == 3600  # an hour at one a second
    hub.sample([])
    assert hub.samples(3) == []


@pytest.mark.parametrize("web_plugins", ["bus,web,memory"])
def test_events_keep_restarts_with_their_reasons(web_pm, start_dashboard, tmp_path):
    dash = start_dashboard()
    # over its memory limit as soon as it runs: the memory plugin restarts it, saying why
    hog = python_app(
        tmp_path, "hog.py", "import time\nballast = b'x' * (80 << 20)\ntime.sleep(3600)\n"
    )
    (info,) = web_pm.start(
        {
            "name": "hog",
            "script": hog,
            "exec_interpreter": PY,
            "max_memory_restart": "40M",
            "memory_interval": 100,
        }
    )
    path = f"/api/processes/{info.pm_id}/events"

    def restarted() -> dict | None:
        events = dash.api(path)["events"]
        return next((e for e in events if e["event"] == "restart"), None)

    restart = wait_for(restarted, timeout=10, what="a restart event")
    assert restart["reason"].startswith("memory ")
    assert "over max_memory_restart 40M" in restart["reason"]
    assert restart["name"] == "hog" and restart["pm_id"] == info.pm_id
    assert abs(restart["at"] / 1000 - time.time()) < 30
    web_pm.stop("hog")
    stopped = wait_for(
        lambda: [e for e in dash.api(path)["events"] if e["event"] == "stop"],
        timeout=10,
        what="the stop event",
    )
    assert stopped[-1]["name"] == "hog"
    assert dash.get("/api/processes/999/events", headers=dash.bearer()).status == 404


LOG_FORMAT = "YYYY-MM-DD HH:mm:ss.SSS"


def test_logs_merge_out_and_err_in_time_order_page_back_and_search(
    web_pm, start_dashboard, tmp_path
):
    app = start_talker(web_pm, tmp_path, log_date_format=LOG_FORMAT)
    dash = start_dashboard()
    written = []
    for i in range(1, 121):
        line = f"err line {i}" if i % 3 == 0 else f"out line {i}"
        written.append(line)
    for start in range(0, 120, 30):  # in four batches, each read apart
        app["say"].write_text("\n".join(written[start : start + 30]) + "\n")
        wait_for(lambda: not app["say"].exists(), timeout=10, what="the talker read it")
        time.sleep(0.02)  # the next batch in a later millisecond than this one
    base = f"/api/processes/{app['pm_id']}/logs"
    wait_for(lambda: "line 120" in json.dumps(dash.api(base)), timeout=10, what="the last line")

    def texts(page: dict) -> list[str]:
        return [e["text"].split(": ", 1)[1] for e in page["lines"]]

    last = dash.api(f"{base}?lines=20")
    assert len([e for e in last["lines"] if e["stream"] == "out"]) == 20
    assert len([e for e in last["lines"] if e["stream"] == "err"]) == 20
    times = [e["time"] for e in last["lines"]]
    assert times == sorted(times)
    for entry, text in zip(last["lines"], texts(last), strict=True):  # err is marked
        assert entry["stream"] == text.split()[0]
    # a page ends at the newest line, each stream in the order it was written
    out_seen = [t for t in texts(last) if t.startswith("out")]
    assert out_seen == [t for t in written if t.startswith("out")][-20:]

    # older pages, through the cursor, until both files are read from their start
    seen, page = texts(last), last
    pages = 1
    while any(page["cursor"].values()):
        cursor = page["cursor"]
        page = dash.api(f"{base}?lines=20&out={cursor['out']}&err={cursor['err']}")
        older = texts(page)
        assert older, cursor
        seen = older + seen
        pages += 1
        assert pages < 20
    everything = [t for t in seen if t != "ready"]
    assert sorted(everything) == sorted(written)  # each line once, none lost
    assert [t for t in everything if t.startswith("out")] == [
        t for t in written if t.startswith("out")
    ]
    assert [t for t in everything if t.startswith("err")] == [
        t for t in written if t.startswith("err")
    ]

    found = dash.api(f"{base}?q=LINE%2011")  # any case
    assert sorted(texts(found)) == sorted(["out line 11", "out line 110", "out line 113",
                                          "err line 111", "out line 112", "err line 114",
                                          "out line 115", "out line 116", "err line 117",
                                          "out line 118", "out line 119"])  # fmt: skip
    assert [e["stream"] for e in found["lines"] if "err" in e["text"]] == ["err"] * 3
    bad = dash.get(f"{base}?out=abc", headers=dash.bearer())
    assert bad.status == 400
    assert dash.get("/api/processes/999/logs", headers=dash.bearer()).status == 404


def test_the_stream_pushes_the_list_events_and_log_lines(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    stream = Stream(dash, f"?logs={app['pm_id']}")
    try:
        assert stream.reply.status == 200
        assert stream.reply.headers["content-type"].startswith("text/event-stream")
        first = stream.until(lambda m: m["type"] == "list", timeout=5)
        row = next(r for r in first["rows"] if r["name"] == "talker")
        assert row["status"] == "online" and row["pid"] == app["pid"]
        assert {"pm_id", "name", "namespace", "status", "pid", "mode", "instances", "uptime",
                "restarts", "cpu", "memory", "health"} <= set(row)  # fmt: skip
        # a line the app prints comes to the reader of its logs
        app["say"].write_text("hello from the talker\nerr and on err\n")
        line = stream.until(lambda m: m["type"] == "log" and "hello" in m["data"])
        assert line["pm_id"] == app["pm_id"] and line["stream"] == "out"
        err = stream.until(lambda m: m["type"] == "log" and "on err" in m["data"])
        assert err["stream"] == "err"
        # a stop from the CLI comes as an event, then in the list
        run_cli("stop", "talker")
        stop = stream.until(lambda m: m["type"] == "event" and m["pm_id"] == app["pm_id"])
        assert stop["event"] in ("stop", "exit")
        stream.until(
            lambda m: (
                m["type"] == "list"
                and any(r["name"] == "talker" and r["status"] == "stopped" for r in m["rows"])
            )
        )
    finally:
        stream.close()


def test_a_stream_without_logs_gets_no_log_lines(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    stream = Stream(dash)
    try:
        stream.until(lambda m: m["type"] == "list", timeout=5)
        app["say"].write_text("not for this reader\n")
        wait_for(lambda: "not for this reader" in _out(web_pm, "talker"), timeout=10)
        deadline = time.monotonic() + 1.5  # a list or two later, still no log line
        while time.monotonic() < deadline:
            assert stream.next()["type"] != "log"
    finally:
        stream.close()

"""corral web's safety rules over real HTTP, from a security tester's findings: a session
cookie alone (which a browser also sends to every other port of 127.0.0.1) opens
nothing, secrets are masked, a scale never crosses namespaces, the log pane stays linear
on a line without end, every response forbids framing, logout, limits, the Host check,
and strict numbers."""

from __future__ import annotations

import hashlib
import http.client
import json
import time

from corral.plugins.web.routes import MAX_BODY, MAX_STREAMS
from corral.testing import wait_for
from tests.conftest import PY, python_app

from .conftest import Stream, request
from .test_api import TALKER, routes, start_talker

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


# -- 1. the cookie alone opens nothing ---------------------------------------------------


def test_a_leaked_session_cookie_alone_gets_401_on_every_api_route(
    web_pm, start_dashboard, tmp_path
):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    session = dash.login()
    cookie_only = session.headers(key=False)  # what a page of another port receives
    for method, path in routes(app["pm_id"]):
        if not path.startswith("/api/"):
            continue
        reply = request(method, dash.base + path, headers=cookie_only, body=b"{}")
        assert reply.status == 401, (method, path, reply.status, reply.text)
    assert dash.post("/api/logout", headers=cookie_only).status == 401
    # nothing was done, and the session still works with its key
    (info,) = web_pm.describe("talker")
    assert (info.pid, info.restart_time) == (app["pid"], 0)
    assert dash.get("/api/processes", headers=session.headers()).status == 200
    # the pages open with the cookie alone, but hold no key and no data
    for path in ("/", f"/app/{app['pm_id']}"):
        page = dash.get(path, headers=cookie_only)
        assert page.status == 200
        assert session.key not in page.text
        assert "csrf" not in page.text.lower() and "talker" not in page.text
    # the key alone (no cookie) opens nothing either
    assert dash.get("/api/processes", headers={"X-Corral-Key": session.key}).status == 401


def test_the_stream_takes_the_key_in_its_query_with_the_cookie(web_pm, start_dashboard):
    dash = start_dashboard()
    session = dash.login()
    cookie = {"Cookie": session.cookie}
    for query, headers in ((f"?key={session.key}", {}), ("", cookie), ("?key=wrong", cookie)):
        assert dash.get(f"/api/stream{query}", headers=headers).status == 401, query
    stream = Stream(dash, f"?key={session.key}", headers=cookie)
    try:
        assert stream.reply.status == 200
        assert stream.next()["type"] == "list"
    finally:
        stream.close()


def test_the_login_page_hands_the_key_to_its_script_and_no_cache(web_pm, start_dashboard):
    dash = start_dashboard()
    reply = request("GET", dash.new_login_url())
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    assert '<script src="/static/login.js"></script>' in reply.text
    assert '<meta name="corral-key" content="' in reply.text
    cookie = reply.headers["set-cookie"].split(";")[0]
    script = dash.get("/static/login.js", headers={"Cookie": cookie})
    assert script.status == 200 and 'localStorage.setItem("corral-key"' in script.text


# -- 2. secrets masked ---------------------------------------------------------------------


def test_the_api_masks_secret_values_as_describe_does(
    web_pm, start_dashboard, tmp_path, monkeypatch
):
    # the shell that runs `corral start` has a secret too: PM2 copies it into pm2_env
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
    app = start_talker(
        web_pm,
        tmp_path,
        env={
            "SAY": str(tmp_path / "talker.say"),
            "DB_PASSWORD": "hunter2-db-pass",
            "DATABASE_URL": "postgres://app:url-pass-9931@db.example/app",
            "PLAIN": "visible-value",
        },
    )
    dash = start_dashboard()
    raw = json.loads(web_pm.jlist_json())
    assert "hunter2-db-pass" in json.dumps(raw)  # the daemon has them: the API must not show
    for path in ("/api/processes", f"/api/processes/{app['pm_id']}"):
        reply = dash.get(path, headers=dash.bearer())
        assert reply.status == 200
        for secret in (
            "hunter2-db-pass",
            "url-pass-9931",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        ):
            assert secret not in reply.text, (path, secret)
    one = dash.api(f"/api/processes/{app['pm_id']}")
    env = one["pm2_env"]["env"]
    assert env["DB_PASSWORD"] == "****"
    assert env["DATABASE_URL"] == "postgres://app:****@db.example/app"
    assert env["PLAIN"] == "visible-value"
    assert one["pm2_env"]["DB_PASSWORD"] == "****"  # the copy at the top of pm2_env


# -- 3. scale within one namespace ---------------------------------------------------------


def test_scale_is_refused_when_another_namespace_has_an_app_of_that_name(
    web_pm, start_dashboard, tmp_path
):
    app = start_talker(web_pm, tmp_path, namespace="shop")
    web_pm.start(
        {
            "name": "talker",
            "namespace": "batch",
            "script": python_app(tmp_path, "other.py", TALKER),
            "force": True,  # a second app of that name, in another namespace
            "exec_interpreter": PY,
            "env": {"SAY": str(tmp_path / "other.say")},
        }
    )
    dash = start_dashboard()
    wait_for(
        lambda: len([p for p in dash.api("/api/processes") if p["name"] == "talker"]) == 2,
        timeout=10,
    )
    time.sleep(1.2)  # the hub's list holds both
    before = sorted((i.pm_id, i.namespace) for i in web_pm.list() if i.name == "talker")
    reply = dash.post(
        f"/api/processes/{app['pm_id']}/scale", headers=dash.bearer(), body='{"instances": 1}'
    )
    assert reply.status == 409, reply.text
    assert reply.json()["error"] == (
        "scale refused: apps of namespace batch are named 'talker' too, and a scale acts "
        "on every app of that name; rename one of them first"
    )
    time.sleep(0.5)
    after = sorted((i.pm_id, i.namespace) for i in web_pm.list() if i.name == "talker")
    assert after == before and len(after) == 2


def test_scale_takes_1_to_100_instances(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    reply = dash.post(
        f"/api/processes/{app['pm_id']}/scale", headers=dash.bearer(), body='{"instances": 101}'
    )
    assert reply.status == 400
    assert "from 1 to 100" in reply.json()["error"]
    assert [i.name for i in web_pm.list()].count("talker") == 1


# -- 4. a line without end ---------------------------------------------------------------------


def test_a_huge_line_without_newline_is_read_cut_in_bounded_time(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    out = web_pm.describe("talker")[0].out_log
    with open(out, "ab") as log:
        log.write(b"x" * (64 << 20))  # 64 MiB without a newline
    began = time.monotonic()
    reply = dash.get(f"/api/processes/{app['pm_id']}/logs?lines=200", headers=dash.bearer())
    took = time.monotonic() - began
    assert reply.status == 200
    assert took < 3.0, took  # the quadratic read took about a minute here
    lines = [e for e in reply.json()["lines"] if e["stream"] == "out"]
    assert len(lines) == 1
    assert lines[0]["text"].startswith("[cut] xxx") and lines[0]["text"].endswith(" [cut]")
    cursor = reply.json()["cursor"]["out"]
    assert 0 < cursor < (64 << 20)  # the next page goes on before it


def test_lines_before_pages_a_long_line_and_keeps_normal_pages(tmp_path):
    from corral.plugins.web import logs

    path = tmp_path / "log"
    path.write_bytes(b"first\n" + b"y" * (logs.PAGE_BYTES + 10) + b"\nlast\n")
    lines, start = logs.lines_before(str(path), None, 5)
    assert lines[-1] == "last" and lines[0].startswith("[cut] yyy")
    assert 0 < start < path.stat().st_size
    older, start2 = logs.lines_before(str(path), start, 5)
    assert older[0] == "first" and start2 == 0
    small = tmp_path / "small"
    small.write_bytes(b"".join(b"line %d\n" % i for i in range(50)))
    lines, start = logs.lines_before(str(small), None, 3)
    assert lines == ["line 47", "line 48", "line 49"]
    assert small.read_bytes()[start:].startswith(b"line 47")


# -- 6. headers ----------------------------------------------------------------------------------


def test_every_response_forbids_framing_sniffing_and_referrers(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    session = dash.login()
    replies = [
        request("GET", dash.new_login_url()),
        dash.get("/login?token=bad"),
        dash.get("/", headers=session.headers()),
        dash.get("/", headers={}),
        dash.get("/static/corral.js", headers=session.headers()),
        dash.get("/static/nothing", headers=session.headers()),
        dash.get("/favicon.ico"),
        dash.get("/api/processes", headers=session.headers()),
        dash.get("/api/processes/999", headers=session.headers()),
        dash.get(f"/api/processes/{app['pm_id']}/logs", headers=session.headers()),
        dash.get("/api/processes"),
        dash.get("/nowhere"),
        dash.post("/api/processes/999/restart", headers=session.headers(), body="x" * 5000),
    ]
    for reply in replies:
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers[name] == value, (reply.status, name)
    stream = Stream(dash)
    try:
        for name, value in SECURITY_HEADERS.items():
            assert stream.reply.headers[name] == value
    finally:
        stream.close()


# -- 7. logout ----------------------------------------------------------------------------------


def test_logout_ends_the_session(web_pm, start_dashboard):
    dash = start_dashboard()
    session, other = dash.login(), dash.login()
    reply = dash.post("/api/logout", headers=session.headers())
    assert reply.status == 200 and reply.json() == {"ok": True, "logged_out": True}
    assert f"corral_session_{dash.port}=" in reply.headers["set-cookie"]  # cleared
    assert dash.get("/api/processes", headers=session.headers()).status == 401
    assert dash.get("/", headers=session.headers()).status == 401
    assert dash.get("/api/processes", headers=other.headers()).status == 200  # not the others


def test_expired_login_tokens_are_swept_at_each_login_attempt(web_pm, start_dashboard):
    dash = start_dashboard()
    url = dash.new_login_url()
    token = url.split("token=")[1]
    stored = dash.home / "web" / "logins" / hashlib.sha256(token.encode()).hexdigest()
    stored.write_text(str(time.time() - 1))  # expired, never used
    assert dash.get("/login?token=another").status == 401  # any attempt
    assert not stored.exists()


# -- 8. limits ---------------------------------------------------------------------------------


def test_a_body_over_4_kib_is_413(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    path = f"/api/processes/{app['pm_id']}/scale"
    big = json.dumps({"instances": 2, "pad": "x" * MAX_BODY})
    reply = dash.post(path, headers=dash.bearer(), body=big)
    assert reply.status == 413, reply.text
    assert reply.json() == {"error": "the request's body is over 4096 bytes"}
    # chunked, with no Content-Length: refused once the read passes the limit
    conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=10)
    try:
        conn.request(
            "POST", path, body=iter([big[:3000].encode(), big[3000:].encode()]),
            headers={**dash.bearer(), "Transfer-Encoding": "chunked"}, encode_chunked=True,
        )  # fmt: skip
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert [i.name for i in web_pm.list()].count("talker") == 1


def test_at_most_64_streams_are_open_at_once(web_pm, start_dashboard):
    dash = start_dashboard()
    streams = []
    try:
        for _ in range(MAX_STREAMS):
            stream = Stream(dash)
            streams.append(stream)
            assert stream.reply.status == 200
            stream.next()
        refused = dash.get("/api/stream", headers=dash.bearer())
        assert refused.status == 503
        assert refused.json() == {"error": "64 streams are open already: close a tab"}
        streams.pop().close()

        def another() -> bool:
            stream = Stream(dash)
            if stream.reply.status == 200:
                streams.append(stream)
                return True
            stream.close()
            return False

        wait_for(another, timeout=10, what="a stream once one closed")
    finally:
        for stream in streams:
            stream.close()


# -- 9. the Host header ----------------------------------------------------------------------------


def test_a_loopback_dashboard_answers_only_to_loopback_host_names(web_pm, start_dashboard):
    dash = start_dashboard()
    for host in ("evil.example", f"evil.example:{dash.port}", f"127.0.0.1.evil:{dash.port}",
                 f"127.0.0.1:{dash.port + 1}", ""):  # fmt: skip
        reply = dash.get("/api/processes", headers={**dash.bearer(), "Host": host})
        assert reply.status == 421, host
        assert reply.text == "421: this dashboard answers only to 127.0.0.1, localhost or [::1]"
        login = dash.get("/login?token=x", headers={"Host": host})
        assert login.status == 421
    for host in (f"127.0.0.1:{dash.port}", f"localhost:{dash.port}", f"[::1]:{dash.port}",
                 "127.0.0.1", "localhost", "[::1]"):  # fmt: skip
        reply = dash.get("/api/processes", headers={**dash.bearer(), "Host": host})
        assert reply.status == 200, host


def test_a_dashboard_on_another_address_checks_no_host(web_pm, start_dashboard):
    dash = start_dashboard(host="0.0.0.0")
    reply = dash.get("/api/processes", headers={**dash.bearer(), "Host": "my-box.lan:9615"})
    assert reply.status == 200


# -- 10. numbers and unknown ids -------------------------------------------------------------


def test_non_ascii_digits_and_unknown_ids(web_pm, start_dashboard, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    stream = Stream(dash, "?logs=%C2%B2")  # "²", which str.isdigit takes
    try:
        assert stream.reply.status == 200
        assert stream.next()["type"] == "list"
    finally:
        stream.close()
    base = f"/api/processes/{app['pm_id']}/logs"
    for query in ("lines=%C2%B2", "out=%D9%A3", "lines=-1", "lines=1e3"):
        assert dash.get(f"{base}?{query}", headers=dash.bearer()).status == 400, query
    for path in ("", "/history", "/events", "/logs"):
        reply = dash.get(f"/api/processes/999{path}", headers=dash.bearer())
        assert reply.status == 404, path
        assert reply.json() == {"error": "no process with pm_id 999"}

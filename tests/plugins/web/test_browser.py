"""corral web in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (nothing downloaded at run time), against a real daemon, a real
`corral web start` and real apps. Every wait has a 10 s deadline.

Without chromium, chromedriver or selenium these tests are skipped, saying which is
missing; under CI=true a missing one fails them (.ci/run installs both).

``CORRAL_SCREENSHOTS=1`` also runs :func:`test_screenshots`, which rewrites
``docs/img/web-list.png`` and ``docs/img/web-app.png`` from a few realistic apps.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import corral
from corral.testing import wait_for
from tests.conftest import PY, python_app, run_cli

from .conftest import APP, Dashboard, free_port, request
from .test_api import start_talker

DEADLINE = 10.0  # seconds: the deadline for anything the page shows
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"


def _find(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f for f in fallbacks if os.access(f, os.X_OK)), None)


CHROMIUM = _find("chromium", "/usr/bin/chromium")
CHROMEDRIVER = _find("chromedriver", "/usr/bin/chromedriver")


def _missing() -> list[str]:
    missing = []
    if CHROMIUM is None:
        missing.append("chromium (apt-get install chromium)")
    if CHROMEDRIVER is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip install -e '.[test]')")
    return missing


def make_driver(width: int = 1280, height: int = 800) -> Any:
    """Headless Chromium under Selenium, with the binaries found above (Selenium Manager
    is never asked for a browser or a driver: both paths are given)."""
    from selenium import webdriver  # deferred: the skip above says when it is missing
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # as root, Chromium's sandbox will not start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def driver() -> Iterator[Any]:
    missing = _missing()
    if missing:
        message = "the browser tests need " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: .ci/run installs them)")
        pytest.skip(message)
    browser = make_driver()
    browser.set_page_load_timeout(DEADLINE)
    yield browser
    browser.quit()


# -- reading the page --------------------------------------------------------------


def row(driver: Any, name: str) -> dict[str, str] | None:
    """The list's row of ``name`` as the page shows it (read in one script: the list
    is redrawn each second, so elements found one by one may go stale)."""
    return driver.execute_script(
        """
        const tr = document.querySelector(`#procs tbody tr[data-name="${arguments[0]}"]`);
        if (!tr) return null;
        return {status: tr.dataset.status, pid: tr.querySelector("td.pid").textContent,
                buttons: tr.querySelectorAll("button[data-action]").length};
        """,
        name,
    )


def click_row_action(driver: Any, name: str, action: str) -> None:
    """Click a row's button (the click itself in the page: the row may be redrawn
    between finding the button and clicking it)."""
    clicked = driver.execute_script(
        """
        const tr = document.querySelector(`#procs tbody tr[data-name="${arguments[0]}"]`);
        const button = tr && tr.querySelector(`button[data-action="${arguments[1]}"]`);
        if (!button) return false;
        setTimeout(() => button.click(), 0);  // its confirm() blocks: not inside this script
        return true;
        """,
        name,
        action,
    )
    assert clicked, f"no {action} button in the row of {name}"


def alert_text(driver: Any) -> str:
    """The confirm dialog once it shows, its text."""

    def shown() -> str | None:
        from selenium.common.exceptions import NoAlertPresentException

        try:
            return driver.switch_to.alert.text
        except NoAlertPresentException:
            return None

    return wait_for(shown, timeout=DEADLINE, what="the confirm dialog")


def count_posts(driver: Any) -> None:
    """From now on the page counts its POSTs in ``window.corralPosts``."""
    driver.execute_script(
        """
        window.corralPosts = [];
        const fetch0 = window.fetch;
        window.fetch = (url, init) => {
          if (init && init.method === "POST") window.corralPosts.push(String(url));
          return fetch0(url, init);
        };
        """
    )


def open_list(driver: Any, dash: Dashboard, name: str) -> dict[str, str]:
    driver.get(dash.new_login_url())  # the login page keeps the key, then opens the list
    wait_for(lambda: driver.current_url == f"{dash.base}/", timeout=DEADLINE, what="the list")
    return wait_for(lambda: row(driver, name), timeout=DEADLINE, what=f"the row of {name}")


# -- the tests ---------------------------------------------------------------------------


def test_the_list_shows_a_stop_from_the_cli_without_a_reload(
    web_pm, start_dashboard, driver, tmp_path
):
    app = start_talker(web_pm, tmp_path)
    start_talker(web_pm, tmp_path, name="other")
    dash = start_dashboard()
    first = open_list(driver, dash, "talker")
    assert first["status"] == "online" and first["pid"] == str(app["pid"])
    # filtering narrows the rows at once
    driver.find_element("id", "filter").send_keys("talk")
    wait_for(lambda: row(driver, "other") is None, timeout=DEADLINE, what="other filtered out")
    assert row(driver, "talker") is not None
    driver.find_element("id", "filter").clear()
    driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
    wait_for(lambda: row(driver, "other"), timeout=DEADLINE, what="other back")

    # a header sorts by its column, a second click the other way
    names = "return [...document.querySelectorAll('#procs tbody tr')].map(r => r.dataset.name)"
    driver.execute_script("document.querySelector('th[data-sort=name]').click()")
    assert driver.execute_script(names) == sorted(["talker", "other", APP])
    driver.execute_script("document.querySelector('th[data-sort=name]').click()")
    assert driver.execute_script(names) == sorted(["talker", "other", APP], reverse=True)

    driver.execute_script("window.notReloaded = true")
    run_cli("stop", "talker")
    wait_for(
        lambda: (row(driver, "talker") or {}).get("status") == "stopped",
        timeout=DEADLINE,
        what="the row showing stopped",
    )
    assert row(driver, "talker")["pid"] == "-"
    assert driver.execute_script("return window.notReloaded") is True  # the same page
    assert "live" == driver.find_element("id", "connection").text


def test_restart_asks_first_then_changes_the_pid(web_pm, start_dashboard, driver, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    open_list(driver, dash, "talker")
    count_posts(driver)

    click_row_action(driver, "talker", "restart")
    assert alert_text(driver) == f"restart talker (pm_id {app['pm_id']})?"
    driver.switch_to.alert.dismiss()
    assert driver.execute_script("return window.corralPosts") == []  # no, nothing sent
    assert web_pm.describe("talker")[0].pid == app["pid"]

    click_row_action(driver, "talker", "restart")
    alert_text(driver)
    driver.switch_to.alert.accept()
    new = wait_for(
        lambda: (r := row(driver, "talker")) and r["pid"] not in (str(app["pid"]), "-") and r,
        timeout=DEADLINE,
        what="a new pid in the row",
    )
    assert new["status"] == "online"
    assert int(new["pid"]) == web_pm.describe("talker")[0].pid
    assert driver.execute_script("return window.corralPosts") == [
        f"/api/processes/{app['pm_id']}/restart"
    ]


def test_a_line_the_app_prints_appears_in_the_log_pane(web_pm, start_dashboard, driver, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    driver.get(dash.new_login_url())
    wait_for(lambda: driver.current_url == f"{dash.base}/", timeout=DEADLINE, what="the list")
    driver.get(f"{dash.base}/app/{app['pm_id']}")
    log = driver.find_element("id", "log")
    wait_for(lambda: "ready" in log.text, timeout=DEADLINE, what="the log's first lines")
    wait_for(
        lambda: driver.find_element("id", "connection").text == "live",
        timeout=DEADLINE,
        what="the stream",
    )
    word = uuid.uuid4().hex
    app["say"].write_text(f"hello {word}\nerr trouble {word}\n")
    wait_for(lambda: f"hello {word}" in log.text, timeout=DEADLINE, what="the line in the pane")
    marked = wait_for(
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('#log .line.err')].map(e => e.textContent)"
        ),
        timeout=DEADLINE,
        what="an err line",
    )
    assert any(f"trouble {word}" in text for text in marked)
    assert driver.find_element("id", "title").text == f"talker (pm_id {app['pm_id']})"
    assert driver.find_element("id", "status").text == "online"


def test_read_only_hides_the_buttons_and_its_api_refuses(web_pm, start_dashboard, driver, tmp_path):
    app = start_talker(web_pm, tmp_path)
    dash = start_dashboard("--readonly")
    first = open_list(driver, dash, "talker")
    assert first["buttons"] == 0
    buttons = "return [...document.querySelectorAll('button')].map((b) => b.id)"
    assert driver.execute_script(buttons) == ["logout"]  # no action: logging out only
    assert not driver.find_element("css selector", "th.actions-head").is_displayed()
    assert driver.find_element("id", "readonly-note").is_displayed()

    driver.get(f"{dash.base}/app/{app['pm_id']}")
    wait_for(lambda: "ready" in driver.find_element("id", "log").text, timeout=DEADLINE)
    assert not driver.find_element("id", "actions").is_displayed()
    # what a button would have sent, sent by hand from the page with its key
    answer = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const key = localStorage.getItem("corral-key");
        fetch(`/api/processes/${arguments[0]}/restart`, {method: "POST",
              headers: {"X-Corral-Key": key}, credentials: "same-origin"})
          .then(async (r) => done([r.status, await r.text()]));
        """,
        app["pm_id"],
    )
    assert answer[0] == 403 and json.loads(answer[1]) == {"error": "the dashboard is read-only"}
    (info,) = web_pm.describe("talker")
    assert (info.pid, info.restart_time) == (app["pid"], 0)


def login(driver: Any, url: str, base: str) -> None:
    """Open a login URL; wait for the list it goes on to."""
    driver.get(url)
    wait_for(lambda: driver.current_url == f"{base}/", timeout=DEADLINE, what="the list")


def live(driver: Any) -> bool:
    return driver.find_element("id", "connection").text == "live"


def test_two_dashboards_on_two_ports_stay_logged_in_side_by_side(
    web_pm, start_dashboard, driver, tmp_path
):
    start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    # a second dashboard of the same home on another port (its own process, ours to stop)
    port = free_port()
    second = subprocess.Popen(
        [sys.executable, "-m", "corral.plugins.web.server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        other = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(other), timeout=DEADLINE, what="the second dashboard serving")
        login(driver, dash.new_login_url(), dash.base)
        login(driver, dash.new_login_url().replace(dash.base, other), other)
        for base in (dash.base, other, dash.base):  # each still logged in, in one browser
            driver.get(f"{base}/")
            wait_for(lambda: row(driver, "talker"), timeout=DEADLINE, what=f"the list of {base}")
            wait_for(lambda: live(driver), timeout=DEADLINE, what=f"the stream of {base}")
        cookies = sorted(c["name"] for c in driver.get_cookies())
        assert cookies == sorted([f"corral_session_{dash.port}", f"corral_session_{port}"])
    finally:
        second.terminate()  # uvicorn waits for open streams to end: then a kill
        try:
            second.wait(5)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait(5)


def _answers(base: str) -> bool:
    try:
        return request("GET", f"{base}/favicon.ico", timeout=1).status == 204
    except OSError:
        return False


def test_a_login_link_opened_from_another_site_lands_on_the_list(
    web_pm, start_dashboard, driver, tmp_path
):
    start_talker(web_pm, tmp_path)
    dash = start_dashboard()
    url = dash.new_login_url()
    # a page of another site (here: an opaque data: origin) with the link, clicked
    driver.get("data:text/html," + quote(f'<a id="go" href="{url}">log in</a>'))
    driver.find_element("id", "go").click()
    wait_for(lambda: driver.current_url == f"{dash.base}/", timeout=DEADLINE, what="the list")
    wait_for(lambda: row(driver, "talker"), timeout=DEADLINE, what="the row of talker")


def test_log_out_and_the_app_page_shows_masked_variables(web_pm, start_dashboard, driver, tmp_path):
    app = start_talker(
        web_pm,
        tmp_path,
        env={"SAY": str(tmp_path / "talker.say"), "DB_PASSWORD": "hunter2-db-pass"},
    )
    dash = start_dashboard()
    login(driver, dash.new_login_url(), dash.base)
    driver.get(f"{dash.base}/app/{app['pm_id']}")
    shown = wait_for(
        lambda: driver.execute_script(
            "const tr = document.querySelector('#settings tr[data-key=\"env DB_PASSWORD\"]');"
            "return tr && tr.querySelector('td').textContent"
        ),
        timeout=DEADLINE,
        what="the app's variables in the settings",
    )
    assert shown == "****"
    assert "hunter2-db-pass" not in driver.page_source
    wait_for(lambda: live(driver), timeout=DEADLINE, what="the stream")
    key = driver.execute_script("return localStorage.getItem('corral-key')")
    cookie = next(c for c in driver.get_cookies() if c["name"] == f"corral_session_{dash.port}")
    driver.find_element("id", "logout").click()
    wait_for(
        lambda: driver.find_element("id", "connection").text.startswith("logged out"),
        timeout=DEADLINE,
        what="the page logged out",
    )
    assert driver.execute_script("return localStorage.getItem('corral-key')") is None
    # the session is over on the server too: the old cookie and key open nothing
    replay = {"Cookie": f"{cookie['name']}={cookie['value']}", "X-Corral-Key": key}
    assert request("GET", f"{dash.base}/api/processes", headers=replay).status == 401
    # a page without the key says how to log in, and asks nothing of the API
    driver.get(f"{dash.base}/")
    assert driver.current_url == f"{dash.base}/"


# -- the screenshots of the docs (CORRAL_SCREENSHOTS=1) --------------------------------------

API = """\
import http.server, os, random, time

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f'{self.address_string()} "{self.requestline}" 200', flush=True)

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print(f"listening on 127.0.0.1:{os.environ['PORT']}", flush=True)
server.serve_forever()
"""

WORKER = """\
import hashlib, random, sys, time
print("worker up: queue emails, 4 threads", flush=True)
cache = []
job = 1000
while True:
    job += 1
    began = time.monotonic()
    for _ in range(random.randint(2000, 40000)):
        hashlib.sha256(str(random.random()).encode()).digest()
    cache.append(b"x" * random.randint(20000, 200000))
    cache = cache[-200:]
    took = (time.monotonic() - began) * 1000
    if job % 9 == 0:
        print(f"job {job}: smtp timeout after 5000 ms, retrying", file=sys.stderr, flush=True)
    else:
        print(f"job {job}: sent welcome email in {took:.0f} ms", flush=True)
    time.sleep(random.uniform(0.2, 0.6))
"""

MAILER = """\
import sys
print("connecting to smtp://127.0.0.1:2525", flush=True)
print("ConnectionRefusedError: [Errno 111] Connection refused", file=sys.stderr, flush=True)
sys.exit(1)
"""


@pytest.mark.skipif(
    os.environ.get("CORRAL_SCREENSHOTS") != "1",
    reason="rewrites docs/img/web-*.png: run with CORRAL_SCREENSHOTS=1",
)
@pytest.mark.parametrize("web_plugins", ["bus,web,health"])
def test_screenshots(web_pm, start_dashboard, tmp_path):
    if _missing():
        pytest.fail("the screenshots need " + ", ".join(_missing()))
    timed = {"log_date_format": "YYYY-MM-DD HH:mm:ss", "exec_interpreter": PY}
    port = free_port()
    web_pm.start(
        {"name": "api", "script": python_app(tmp_path, "api.py", API), "env": {"PORT": str(port)},
         "namespace": "shop", "health": {"http": f"http://127.0.0.1:{port}/healthz",
         "interval": "2s"}, **timed}
    )  # fmt: skip
    (worker,) = web_pm.start(
        {"name": "worker", "script": python_app(tmp_path, "worker.py", WORKER),
         "namespace": "shop", **timed}
    )  # fmt: skip
    web_pm.start(
        {"name": "mailer", "script": python_app(tmp_path, "mailer.py", MAILER),
         "namespace": "shop", "max_restarts": 3, "min_uptime": 1000, **timed}
    )  # fmt: skip
    web_pm.start(
        {"name": "nightly-report", "script": "/bin/sleep", "args": ["3600"],
         "interpreter": "none", "namespace": "batch"}
    )  # fmt: skip
    web_pm.stop("nightly-report")
    dash = start_dashboard()
    run_cli("restart", "worker")  # an event or two for its page
    for _ in range(20):  # a few requests for the api's log
        request("GET", f"http://127.0.0.1:{port}/orders?page={_}")
    wait_for(
        lambda: {i.name: i.status for i in web_pm.list()}.get("mailer") == "errored",
        timeout=30,
        what="mailer errored",
    )
    time.sleep(20)  # 20 samples for the charts
    browser = make_driver(1280, 520)
    try:
        browser.get(dash.new_login_url())
        wait_for(lambda: row(browser, "worker"), timeout=DEADLINE)
        wait_for(lambda: row(browser, APP), timeout=DEADLINE)
        wait_for(
            lambda: (
                browser.execute_script(
                    "return document.querySelector('tr[data-name=api] td.health').textContent"
                )
                == "healthy"
            ),
            timeout=DEADLINE,
        )
        time.sleep(1.5)
        DOCS_IMG.mkdir(exist_ok=True)
        browser.save_screenshot(str(DOCS_IMG / "web-list.png"))
        browser.set_window_size(1280, 1180)
        browser.get(f"{dash.base}/app/{worker.pm_id}")
        wait_for(lambda: "sent welcome" in browser.find_element("id", "log").text, timeout=10)
        time.sleep(3)
        browser.save_screenshot(str(DOCS_IMG / "web-app.png"))
    finally:
        browser.quit()
    assert corral.connect().list()

"""``corral web start|stop|url``: the dashboard as an app the daemon supervises."""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

import click
import psutil

import corral
from corral import OptionError, PluginError, StateError, api

from .loopback import is_loopback
from .tokens import api_token, new_login_token

APP = "corral-web"  # the dashboard's name in `corral ls`
EXTRA = "pip install 'corral[web]'"
START_WAIT = 15.0  # seconds `web start` waits for the port to answer


@click.group("web")
def web_group() -> None:
    """The dashboard: the process list, logs, charts and actions, in a browser."""


@web_group.command("start")
@click.option("--port", type=click.IntRange(1, 65535), default=9615, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--readonly", is_flag=True, help="No action: look, never touch.")
def start_command(port: int, host: str, readonly: bool) -> None:
    """Start the dashboard (the app corral-web) and print a login URL."""
    _check_extra()
    _check_host(host)
    _check_port(host, port)
    client = corral.connect()
    _check_bus(client)
    before = [info for info in client.list() if info.name == APP]
    if any(info.status != "stopped" and info.status != "errored" for info in before):
        raise StateError(f"{APP} runs already: `corral web stop` first, or `corral web url`")
    if before:  # a dashboard that was stopped, or gave up: this start replaces it
        client.delete(APP)
    api_token(api.corral_home())  # made now, so a script finds it at once
    args = ["-m", "corral.plugins.web.server", "--host", host, "--port", str(port)]
    client.start(
        {
            "name": APP,
            "script": sys.executable,
            "interpreter": "none",
            "args": [*args, "--readonly"] if readonly else args,
            "max_restarts": 5,
        }
    )
    _wait_serving(client, host, port)
    if not is_loopback(host):
        click.echo(
            f"warning: the dashboard listens on {host}: anyone who can reach it "
            "and holds a login URL or the API token can act on your apps",
            err=True,
        )
    click.echo(_login_url(host, port))


@web_group.command("stop")
def stop_command() -> None:
    """Stop the dashboard and remove it from the list."""
    client = corral.connect()
    if not any(info.name == APP for info in client.list()):
        raise StateError(f"{APP} does not run")
    client.delete(APP)
    click.echo(f"stopped {APP}")


@web_group.command("url")
def url_command() -> None:
    """Print a login URL for the running dashboard (its token works once, for 5 minutes)."""
    client = corral.connect()
    host, port = _address(client)
    click.echo(_login_url(host, port))


def _check_extra() -> None:
    try:
        import starlette  # noqa: F401  (deferred: only to see that the extra is installed)
        import uvicorn  # noqa: F401  (deferred: as above)
    except ImportError as exc:
        raise PluginError(f"corral web needs {exc.name}: install it with {EXTRA}") from None


def _check_host(host: str) -> None:
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        raise OptionError(f"--host {host!r} is no address of this machine") from None


def _check_bus(client: Any) -> None:
    names = {p.get("name") for p in client.plugins()}
    if "bus" not in names:
        raise PluginError(
            "the daemon runs without the bus plugin, which the dashboard reads: "
            "restart it with the bus (`corral kill`, then unset CORRAL_PLUGINS or add bus)"
        )


def _address(client: Any) -> tuple[str, int]:
    """The host and port the running dashboard serves, from its arguments."""
    info = next((i for i in client.list() if i.name == APP), None)
    if info is None or info.status != "online":
        raise StateError(f"{APP} does not run: start it with `corral web start`")
    args = list(info.pm2_env.get("args") or [])
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    port = int(args[args.index("--port") + 1]) if "--port" in args else 9615
    return host, port


def _login_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/login?token={new_login_token(api.corral_home())}"


def _check_port(host: str, port: int) -> None:
    """Refuse a port something else listens on: the login URL would go to it."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _name, address = found[0]  # the address uvicorn binds
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise StateError(
                f"{host}:{port} is taken ({exc.strerror}): choose another --port"
            ) from None


def _wait_serving(client: Any, host: str, port: int) -> None:
    """Wait until the dashboard's own process listens on ``port`` (not merely until
    something answers there: a login URL must never go to another program)."""
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        info = next((i for i in client.list() if i.name == APP), None)
        if info is not None and info.status == "online" and info.pid:
            if _listens(info.pid, port):
                return
        time.sleep(0.1)
    client.delete(APP)
    raise StateError(
        f"{APP} did not serve {host}:{port} within {START_WAIT:g} s; "
        "its log: corral logs corral-web --lines 50"
    )


def _listens(pid: int, port: int) -> bool:
    """Whether the process ``pid`` listens on ``port``."""
    try:
        found = psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in found)

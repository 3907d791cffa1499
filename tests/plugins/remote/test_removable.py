"""Without the remote plugin there is no TCP, no tcp:// client and no `corral keys`; each
refusal names the plugin. With it, each is back. A local client never loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import corral
from tests.faults.test_security import free_port, inet_listeners, run_cli

PY = sys.executable


def test_rpc_address_without_the_plugin_stops_the_start_naming_it(
    corral_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    (corral_home / "corral.yaml").write_text(f"rpc_address: tcp://127.0.0.1:{port}\n")
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    with pytest.raises(corral.ConfigError, match=r"rpc_address.*the plugin 'remote'") as caught:
        corral.connect()
    assert "\n" not in str(caught.value)
    # the daemon's own check, for a daemon started by other means (a boot script)
    done = subprocess.run(
        [PY, "-m", "corral.daemon.main"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "the plugin 'remote'" in done.stderr
    for left in ("rpc.sock", "corral.pid", "keys", "tcp.sock"):
        assert not (corral_home / left).exists(), left
    # the same home with the plugin: the daemon starts and listens on the port
    monkeypatch.setenv("CORRAL_PLUGINS", "remote")
    pm = corral.connect()
    try:
        assert ("127.0.0.1", port) in inet_listeners(pm.daemon_pid)
    finally:
        pm.kill_daemon()


def test_a_tcp_address_without_the_plugin_is_a_plugin_error_naming_it(
    corral_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    with pytest.raises(corral.PluginError, match="plugin 'remote'"):
        corral.connect(address=address)
    monkeypatch.setenv("CORRAL_ADDRESS", address)
    with pytest.raises(corral.PluginError, match="plugin 'remote'"):
        corral.connect()
    assert not (corral_home / "corral.pid").exists()  # no local daemon started instead
    # with the plugin the address is the remote plugin's: it wants the daemon's keys
    monkeypatch.setenv("CORRAL_PLUGINS", "remote")
    with pytest.raises(corral.ConfigError, match="needs server_key"):
        corral.connect()


def test_corral_keys_is_the_plugins_command(corral_home: Path) -> None:
    env = dict(os.environ, CORRAL_PLUGINS="")
    absent = run_cli("keys", env=env)
    assert absent.returncode != 0
    assert "No such command 'keys'" in absent.stderr
    assert not (corral_home / "keys").exists()
    present = run_cli("keys", env=dict(env, CORRAL_PLUGINS="remote"))
    assert present.returncode == 0, present.stderr
    assert "server key" in present.stdout
    assert (corral_home / "keys" / "server.key").exists()


def test_a_local_client_loads_no_plugin(corral_home: Path) -> None:
    """The common case: corral.connect() and list() on this machine scan no entry point."""
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_PLUGINS"}  # every plugin
    code = (
        "import sys, corral\n"
        "pm = corral.connect()\n"
        "pm.list()\n"
        "loaded = [m for m in ('corral.hooks', 'corral.plugins.remote') if m in sys.modules]\n"
        "pm.kill_daemon()\n"
        "print(loaded)\n"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

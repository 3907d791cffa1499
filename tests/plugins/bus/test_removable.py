"""The bus is the bus plugin's alone: gone with ``plugins=[]``, back with it, one per daemon."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

import corral
from corral.errors import PluginError
from corral.plugins.bus import Bus
from tests.conftest import APPS
from tests.plugins.bus.test_bus import collect, words

SLEEPER = str(APPS / "sleeper.py")


def test_no_bus_plugin_no_bus(corral_home):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        client.start(SLEEPER, {"name": "quiet"})
        assert not (corral_home / "pub.sock").exists()
        with pytest.raises(PluginError, match="plugin 'bus'"):
            client.launch_bus()
        with pytest.raises(PluginError, match="plugin 'bus'"):
            asyncio.run(corral.AsyncClient(corral_home, client.daemon_pid).launch_bus())


def test_with_the_bus_plugin_the_bus_is_back(corral_home):
    with corral.connect(no_daemon=True, plugins=["bus"]) as client:
        assert (corral_home / "pub.sock").exists()
        with client.launch_bus("process:event") as bus:
            assert isinstance(bus, Bus)
            client.start(SLEEPER, {"name": "heard"})
            collect(bus, lambda got: "online" in words(got, "heard"))


def test_a_client_without_the_plugin_cannot_subscribe(corral_home, monkeypatch):
    """The daemon serves a bus, but this process loads no plugin (CORRAL_PLUGINS=)."""
    with corral.connect(no_daemon=True, plugins=["bus"]):
        bare = corral.connect(corral_home)  # the same daemon, CORRAL_PLUGINS= from corral_home
        try:
            with pytest.raises(PluginError, match=r"plugin 'bus'.*not loaded in this process"):
                bare.launch_bus()
        finally:
            bare.disconnect()
        monkeypatch.setenv("CORRAL_PLUGINS", "bus")
        with corral.connect(corral_home) as named, named.launch_bus() as bus:
            assert isinstance(bus, Bus)


class RoomyBus(Bus):
    """A subscriber with a deeper queue."""


class Roomy:
    """A plugin whose subscriber replaces the bus plugin's (``tryfirst``)."""

    @corral.hookimpl(tryfirst=True)
    def corral_bus_subscriber(self, address, topics):
        return RoomyBus(address, topics, hwm=100_000)


def test_the_first_subscriber_wins(corral_home):
    with corral.connect(no_daemon=True, plugins=["bus", Roomy()]) as client:
        with client.launch_bus("process:event") as bus:
            assert type(bus) is RoomyBus
            client.start(SLEEPER, {"name": "roomy"})
            collect(bus, lambda got: "online" in words(got, "roomy"))


def test_two_embedded_daemons_each_publish_on_their_own_bus(corral_home):
    other = Path(tempfile.mkdtemp(prefix="corral-", dir="/tmp"))
    try:
        with (
            corral.connect(corral_home, no_daemon=True, plugins=["bus"]) as one,
            corral.connect(other, no_daemon=True, plugins=["bus"]) as two,
        ):
            assert one.call("bus_address")["address"] == f"ipc://{corral_home}/pub.sock"
            assert two.call("bus_address")["address"] == f"ipc://{other}/pub.sock"
            with one.launch_bus("process:event") as ear_one, two.launch_bus("process:*") as ear_two:
                one.start(SLEEPER, {"name": "first"})
                two.start(SLEEPER, {"name": "second"})
                heard_one = collect(ear_one, lambda got: "online" in words(got, "first"))
                heard_two = collect(ear_two, lambda got: "online" in words(got, "second"))
                one.stop("first")
                heard_one += collect(ear_one, lambda got: "stop" in words(got, "first"))
            assert {e.payload["process"]["name"] for e in heard_one} == {"first"}
            assert {e.payload["process"]["name"] for e in heard_two} == {"second"}
        assert not (corral_home / "pub.sock").exists()
        assert not (other / "pub.sock").exists()
    finally:
        shutil.rmtree(other, ignore_errors=True)

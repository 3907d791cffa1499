"""Bad input: random option dicts, garbage at the RPC socket, broken config files.

Whatever comes in, the daemon stays up, answers with an error whose one-line
message names the field at fault, and the apps it already runs are left as
they were: nothing half-started, nothing stopped by mistake.

Random values go everywhere except where they could do harm on this machine:
the script, the interpreter and its arguments, paths and stop signals are
drawn from lists of good and bad values kept inside the test's directory.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import stat
import sys
import warnings
from pathlib import Path

import psutil
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corral
from corral.errors import CorralError, OptionError, PluginError, ScriptError
from corral.options.schema import PM2_IGNORED, camel, installed_plugin_options
from corral.options.table import CORE_OPTIONS
from corral.testing import apps_of
from tests.conftest import python_app, wait_for
from tests.core.test_daemon import ACTING, alive, apps_snapshot, ask, assert_error, json_values

settings.register_profile(
    "faults",
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("faults")
SLEEP = shutil.which("sleep") or "/bin/sleep"


@pytest.fixture
def running(pm) -> list[tuple]:
    """One app online, one stopped, before the bad input; returns their snapshot."""
    pm.start(SLEEP, {"name": "up", "args": ["3600"]})
    pm.start(SLEEP, {"name": "down", "args": ["3600"]})
    pm.stop("down")
    return apps_snapshot(pm)


def unchanged(pm, before: list[tuple]) -> None:
    assert apps_snapshot(pm) == before
    assert all(alive(pid) for _, _, pid, status, _ in before if status == "online")


# -- random option dicts to start() ------------------------------------------------


def keys_of(name: str, aliases: tuple[str, ...] = ()) -> list[str]:
    return list(dict.fromkeys(k for n in (name, *aliases) for k in (n, camel(n))))


PLUGIN_OPTIONS = installed_plugin_options()  # name -> plugin, of every installed plugin
CANONICAL = {key: o.name for o in CORE_OPTIONS for key in keys_of(o.name, o.aliases)}
CANONICAL.update({key: name for name in PLUGIN_OPTIONS for key in keys_of(name)})
ALIASES = {o.name: set(keys_of(o.name, o.aliases)) for o in CORE_OPTIONS}

junk = st.none() | st.booleans() | st.text(max_size=12) | st.lists(st.text(max_size=4), max_size=3)
texts = st.text(max_size=12)


def pick(good: list, bad: list) -> st.SearchStrategy:
    """Good and bad values as often as each other (sampled_from favours its first items)."""
    return st.sampled_from(good) | st.sampled_from(bad)


def value_strategies(tmp: Path, script: str) -> dict[str, st.SearchStrategy]:
    """Per core option: values good and bad; only harmless ones where it matters.

    No path is relative (a number is one, ``5`` -> ``./5``): it would land in the
    caller's directory, the repository."""
    a_file = tmp / "file.txt"
    a_file.write_text("not a directory")
    paths = pick(
        [str(tmp / "logs" / "x.log"), "NULL", "/dev/null", "", True],
        [str(a_file / "x.log"), str(tmp), [], {}, "a\x00b"],
    )
    ms = st.integers(0, 1500) | pick(["1s", "250ms", "0"], ["-5", "soon", -1, 1.5, []])
    ints = st.integers(-3, 40) | pick(["7", 2.0], ["x", 2.5, 1e300, "1e300"])
    bools = pick([True, False, "true", "false"], ["yes", 0, "", None, []])
    kinds = {
        "str": texts | junk,
        "bool": bools,
        "int": ints | junk,
        "number": ints | junk,
        "ms": ms | junk,
        "list": st.lists(texts, max_size=3) | texts | junk,
        "dict": st.dictionaries(texts, json_values, max_size=3) | junk,
        "int_list": st.lists(ints, max_size=3) | ints | junk,
        "bool_or_str": bools | texts | junk,
        "bool_or_list": bools | st.lists(texts, max_size=2) | junk,
    }
    special = {
        "script": pick([script], [str(tmp / "missing.py"), str(a_file), "", 5, None, "a\x00"]),
        "exec_interpreter": pick(
            ["python3", sys.executable, None], ["none", "bash", "no-such-interpreter-fz", "", 3]
        ),
        "node_args": pick([[], ["-u"], "-u -B"], ["'unclosed", 5, [["-u"]], ["-\x00"]]),
        "cwd": pick([str(tmp), ""], [str(tmp / "missing-dir"), str(a_file), 5, []]),
        "instances": st.integers(-3, 3) | pick(["max", "2"], [10**9, 1e300, "x", 1.5]),
        "kill_signal": pick(
            ["SIGINT", "SIGTERM", "SIGKILL", "term", 15, "15"], ["SIGNOPE", 0, 999, 1.5, True]
        ),
        "kill_timeout": ms,
        "listen_timeout": ms,
        "listen": pick(
            ["127.0.0.1:0", ":0", f"unix:{tmp}/s.sock"], ["nowhere", "127.0.0.1:99999", 5, ""]
        ),
        "port": st.integers(0, 65535) | pick(["80"], [-1, 70000, 1e300, "http"]),
        "uid": pick(["root", "0", 0], ["no-such-user-fz", "", "-1", -1, True, 2.5]),
        "gid": pick(["root", "0", 0], ["no-such-group-fz", "", -1, True]),
        # never "up" or "down": starting those would rightly touch the apps already there
        "name": texts.map(lambda t: f"fz-{t}") | pick([7], ["fz-\ud800", None, True, ["x"]]),
        "env": st.dictionaries(texts, texts | json_values, max_size=3) | junk,
        "log_type": pick(["json"], ["xml", 1]),
        "exec_mode": pick(["fork", "cluster", "cluster_mode"], ["forks", 1]),
        "instance_var": pick(["NODE_APP_INSTANCE", "IDX"], ["", "A=B", 3, None]),
        "increment_var": pick(["PORT_BASE", "PATH"], ["A=B", 3]),
    }
    for key in ("out_file", "error_file", "log_file"):
        special[key] = paths
    # never "NULL" or "/dev/null": the daemon unlinks its pid file when the app exits,
    # and as root that removes the device node /dev/null itself
    special["pid_file"] = pick(
        [str(tmp / "pids" / "x.pid"), ""], [str(a_file / "x.pid"), str(tmp), [], "a\x00b"]
    )
    return {o.name: special[o.name] if o.name in special else kinds[o.type] for o in CORE_OPTIONS}


def option_dicts(tmp: Path, script: str) -> st.SearchStrategy[dict]:
    """``{"script": ..., some core options}``, and in one dict out of four keys that are
    not core options: a plugin's (not loaded), PM2's unused ones, ``env_*``, unknown ones."""
    by_name = value_strategies(tmp, script)
    spellings = {}  # canonical name -> every key that means it
    for o in CORE_OPTIONS:
        spellings[o.name] = keys_of(o.name, o.aliases)

    def values(names: list[str]) -> st.SearchStrategy[dict]:
        keys = st.tuples(*(st.sampled_from(spellings[name]) for name in names))
        return keys.flatmap(
            lambda ks: st.fixed_dictionaries(
                {k: by_name[name] for k, name in zip(ks, names, strict=True)}
            )
        )

    chosen = st.lists(st.sampled_from(sorted(spellings)), unique=True, max_size=6).flatmap(values)
    extra = st.dictionaries(
        # unknown keys only: hypothesis also tries strings found in this module, and an
        # option such as pid_file must never get an unchecked value (see value_strategies)
        st.text(min_size=1, max_size=10).filter(lambda k: k not in CANONICAL)
        | st.sampled_from(sorted(k for k, n in CANONICAL.items() if n in PLUGIN_OPTIONS))
        | st.sampled_from(sorted(PM2_IGNORED))
        | texts.map(lambda t: f"env_{t}"),
        json_values,
        min_size=1,
        max_size=2,
    )
    sometimes = st.integers(0, 3).map(lambda n: n == 0)
    return st.tuples(chosen, extra, sometimes).map(
        lambda parts: {"script": script, **parts[0], **(parts[1] if parts[2] else {})}
    )


def field_names(options: dict) -> set[str]:
    """Every name a message may use for the keys given: as written, canonical, aliases."""
    names = set()
    for key in options:
        names.add(key)
        canonical = CANONICAL.get(key)
        if canonical:
            names |= {canonical, *ALIASES.get(canonical, ())}
    return names


def names_a_field(error: CorralError, options: dict) -> bool:
    names = field_names(options)
    if isinstance(error, OptionError) and error.field is not None:
        return error.field in names
    return any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", str(error)) for n in names)


def test_random_options_to_start(pm, running, tmp_path: Path, scripted_app, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the caller's directory, where anything relative would go
    script = scripted_app("fuzzapp", ready=True)
    outcomes = {"started": 0, "refused": 0}

    @FUZZ
    @given(options=option_dicts(tmp_path, script))
    def check(options: dict) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                started = pm.start(options)
        except CorralError as error:
            outcomes["refused"] += 1
            message = str(error)
            assert type(error) in (OptionError, ScriptError, PluginError), repr(error)
            assert message and "\n" not in message, message
            assert names_a_field(error, options), f"{message!r} names none of {sorted(options)}"
            assert not message.startswith("internal error"), message
        else:
            outcomes["started"] += 1
            assert started and all(p.name and p.pm_id is not None for p in started)
            pm.delete([p.pm_id for p in started])
        unchanged(pm, running)

    check()
    print(f"\nrandom start options: {outcomes}")
    assert pm.ping()["pid"] == pm.daemon_pid
    unchanged(pm, running)


# cases a fuzzer would rarely find; each was an internal error or a half-started batch
EXPLICIT = [
    ({"uid": "no-such-user-fz"}, "uid"),
    ({"gid": "no-such-group-fz"}, "gid"),
    ({"name": "fz-\ud800"}, "name"),
    ({"args": ["a\x00b"]}, "args"),
    ({"env": {"A=B": "1"}}, "env"),
    ({"env": {"A": "x\x00"}}, "env"),
    ({"increment_var": "COUNT", "env": {"COUNT": "abc"}}, "increment_var"),
    ({"instance_var": "A=B"}, "instance_var"),
    ({"instances": 10**9}, "instances"),
    ({"instances": 1e300}, "instances"),
    ({"port": 70000}, "port"),
    ({"out_file": "{file}/x.log"}, "out_file"),
    ({"pid_file": "{tmp}"}, "pid_file"),
]


@pytest.mark.parametrize(("extra", "field"), EXPLICIT, ids=[f for _, f in EXPLICIT])
def test_bad_value_in_a_batch_starts_nothing(pm, running, tmp_path, extra, field) -> None:
    (tmp_path / "file.txt").write_text("")
    extra = {
        k: v.format(file=tmp_path / "file.txt", tmp=tmp_path) if isinstance(v, str) else v
        for k, v in extra.items()
    }
    good = {"script": SLEEP, "args": ["3600"], "name": "fz-good"}
    bad = {"script": SLEEP, "args": ["3600"], "name": "fz-bad", **extra}
    with pytest.raises(OptionError) as caught:
        pm.start([good, bad])
    assert caught.value.field == field and "\n" not in str(caught.value), str(caught.value)
    unchanged(pm, running)


def test_a_log_file_that_cannot_be_opened_starts_nothing(pm, running) -> None:
    good = {"script": SLEEP, "args": ["3600"], "name": "fz-good"}
    bad = {"script": SLEEP, "args": ["3600"], "name": "fz-bad", "error_file": "/proc/fz.log"}
    try:
        with pytest.raises(OptionError, match="error_file"):
            pm.start([good, bad])
        unchanged(pm, running)
    finally:
        leftovers = [p.pm_id for p in pm.list() if p.name.startswith("fz-")]
        if leftovers:
            pm.delete(leftovers)


# -- garbage at the RPC socket -------------------------------------------------------


def test_multi_frame_garbage(pm, raw, running) -> None:
    @FUZZ
    @given(frames=st.lists(st.binary(max_size=64), min_size=2, max_size=6))
    def check(frames: list[bytes]) -> None:
        reply = ask(raw, *frames)
        assert_error(reply, "ProtocolError")
        assert "frame" in reply["error"]["message"]

    check()
    assert pm.ping()["pid"] == pm.daemon_pid
    unchanged(pm, running)


def surrogate_request(target: str) -> bytes:
    """A request whose string holds lone surrogates, written as the invalid UTF-8 they make."""
    text = json.dumps({"cmd": "describe", "args": {"target": target}}, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def test_single_frames_of_random_bytes_and_bad_utf8(pm, raw, running) -> None:
    surrogates = st.text(st.characters(categories=["Cs"]) | st.characters(), min_size=1)
    # hypothesis also tries the strings it finds in this module, such as real command
    # names: never one that acts (``{"cmd": "flush"}`` in UTF-16 is a valid request)
    commands = st.text(max_size=20).filter(lambda t: t not in ACTING)
    other_codecs = commands.map(lambda t: json.dumps({"cmd": t}).encode("utf-16"))

    @FUZZ
    @given(
        frame=st.binary(min_size=1, max_size=200) | surrogates.map(surrogate_request) | other_codecs
    )
    def check(frame: bytes) -> None:
        reply = ask(raw, frame)
        if reply["ok"]:  # a frame that happens to be a valid read-only request
            assert json.loads(frame)["cmd"] in ("ping", "list", "describe", "plugins", "options")
        else:
            assert_error(reply)

    check()
    assert pm.ping()["pid"] == pm.daemon_pid
    unchanged(pm, running)


def test_huge_frames_just_under_the_limit(pm, raw, running) -> None:
    big = "x" * (15 * 1024 * 1024)
    requests = {
        "a huge target": ({"cmd": "describe", "args": {"target": big}}, "NotFoundError"),
        "a huge env": (
            {
                "cmd": "start",
                "args": {"apps": [{"script": SLEEP, "env": {"BIG": big}}], "cwd": "/"},
            },
            None,
        ),
        "many apps": (
            {"cmd": "start", "args": {"apps": [{"script": "/nonexistent"}] * 200_000, "cwd": "/"}},
            "ScriptError",
        ),
        "a long target list": (
            {"cmd": "stop", "args": {"target": list(range(500_000))}},
            "NotFoundError",
        ),
    }
    for label, (request, error_type) in requests.items():
        frame = json.dumps({"id": 1, **request}).encode()
        assert len(frame) < 16 * 1024 * 1024
        reply = ask(raw, frame, timeout=30)
        try:
            assert_error(reply, error_type)
            assert "\n" not in reply["error"]["message"]
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
    assert pm.ping()["pid"] == pm.daemon_pid
    unchanged(pm, running)


def test_a_pipelined_flood_is_answered_in_full(pm, raw, running) -> None:
    count = 3000
    for i in range(count):
        raw.send(json.dumps({"id": i, "cmd": "ping"}).encode() if i % 3 == 0 else b"junk %d" % i)
    replies = []
    while len(replies) < count and raw.poll(30_000):
        replies.append(json.loads(raw.recv()))
    assert len(replies) == count
    pongs = [r for r in replies if r["ok"]]
    assert sorted(r["id"] for r in pongs) == list(range(0, count, 3))
    assert all(r["error"]["type"] == "ProtocolError" for r in replies if not r["ok"])
    unchanged(pm, running)


def test_bytes_below_zmq_on_the_socket_file(pm, corral_home, running) -> None:
    """Not even ZMTP: raw bytes on the unix socket; zmq drops the peer, the daemon goes on."""
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f"  # a ZMTP signature, then nonsense
    fds_before = psutil.Process(pm.daemon_pid).num_fds()

    @FUZZ
    @given(payload=st.binary(min_size=1, max_size=4096) | st.binary().map(greeting.__add__))
    def check(payload: bytes) -> None:
        with socket.socket(socket.AF_UNIX) as peer:
            peer.settimeout(5)
            peer.connect(str(corral_home / "rpc.sock"))
            try:
                peer.sendall(payload)
            except OSError:
                pass  # the daemon's zmq hung up on us mid-send: that is its right

    check()
    assert pm.ping()["pid"] == pm.daemon_pid
    unchanged(pm, running)
    wait_for(
        lambda: psutil.Process(pm.daemon_pid).num_fds() <= fds_before + 4,
        what="every dropped peer closed by the daemon",
    )


# -- config files --------------------------------------------------------------------

CONFIG_CASES = [
    # label, app options, the field the error must name, words it must contain
    ("instances not a number", {"instances": "many"}, "instances", []),
    ("autorestart not a bool", {"autorestart": "maybe"}, "autorestart", []),
    ("env not a mapping", {"env": ["A=1"]}, "env", []),
    ("args a mapping", {"args": {"a": 1}}, "args", []),
    ("max_restarts negative", {"max_restarts": -1}, "max_restarts", []),
    ("name a list", {"name": ["web"]}, "name", []),
    ("min_uptime a word", {"minUptime": "a while"}, "min_uptime", ["minUptime"]),
    ("unknown key", {"instanses": 2}, "instanses", ["did you mean 'instances'"]),
    ("unknown camelCase key", {"autoRestrat": False}, "autoRestrat", ["did you mean"]),
    ("missing script", {"script": "missing.py"}, "script", ["not found"]),
    ("non-executable binary", {"script": "tool"}, "script", ["not executable"]),
    ("bad cron", {"cron_restart": "61 * * * *"}, "cron_restart", []),
    ("bad cron alias", {"cron": "every day"}, "cron_restart", []),
    ("bad memory size", {"max_memory_restart": "lots"}, "max_memory_restart", []),
    ("memory size with decimals", {"max_memory_restart": "1.5G"}, "max_memory_restart", []),
    ("bad kill signal", {"kill_signal": "SIGNOPE"}, "kill_signal", []),
    ("kill signal out of range", {"killSignal": 999}, "kill_signal", ["killSignal"]),
]


@pytest.fixture
def pm_with_plugins(corral_home, monkeypatch):
    """A detached daemon with the cron and memory plugins, so their options are checked."""
    monkeypatch.setenv("CORRAL_PLUGINS", "cron,memory")
    client = corral.connect()
    yield client
    client.kill_daemon()


def apps_forked_by(daemon_pid: int) -> list[tuple[int, list[str]]]:
    """The live processes the daemon started for apps (corral.testing.apps_of)."""
    found = []
    for child in apps_of(daemon_pid):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if cmdline and child.status() != "zombie":
                found.append((child.pid, cmdline))
    return found


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_bad_config_files(pm_with_plugins, tmp_path: Path, fmt: str) -> None:
    pm = pm_with_plugins
    script = python_app(tmp_path, "app.py", "import time\ntime.sleep(3600)\n")
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\nsleep 3600\n")
    tool.chmod(stat.S_IRUSR | stat.S_IWUSR)
    wrong = []
    for label, options, field, words in CONFIG_CASES:
        app = {"name": "cfg", "script": script, **options}
        path = tmp_path / f"ecosystem.{fmt}"
        document = {"apps": [app]}
        path.write_text(json.dumps(document) if fmt == "json" else yaml.safe_dump(document))
        try:
            pm.start(str(path))
        except CorralError as error:
            message = str(error)
            problems = [
                "more than one line" if "\n" in message else "",
                f"does not name {field}" if not re.search(rf"\b{field}\b", message) else "",
                *(f"lacks {word!r}" for word in words if word not in message),
            ]
            if any(problems):
                wrong.append(f"{label}: {', '.join(p for p in problems if p)}: {message}")
        else:
            wrong.append(f"{label}: started")
        listed, forked = pm.list(), apps_forked_by(pm.daemon_pid)
        if listed or forked:
            wrong.append(f"{label}: something started: {listed} {forked}")
            pm.delete("all")
    assert not wrong, "\n".join(wrong)

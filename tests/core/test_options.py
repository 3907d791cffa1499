"""The option schema: kinds, aliases, PM2's conversions, and the errors for bad keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import corral.options.convert
import corral.options.schema
import corral.options.table
from corral.errors import OptionError, PluginError
from corral.hooks import load_plugins
from corral.options.schema import (
    KINDS,
    PM2_IGNORED,
    Option,
    OptionSchema,
    camel,
    installed_plugin_options,
)
from corral.options.table import CORE_OPTIONS


@pytest.fixture
def schema() -> OptionSchema:
    return OptionSchema(CORE_OPTIONS)


def normalize(schema: OptionSchema, **raw):
    options, _ = schema.normalize({"script": "app.py", **raw})
    return options


def plugin_options(plugin: str, *options: Option) -> list[Option]:
    return [dataclasses.replace(option, plugin=plugin) for option in options]


# --- camelCase -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("max_memory_restart", "maxMemoryRestart"),
        ("exp_backoff_restart_delay", "expBackoffRestartDelay"),
        ("script", "script"),
        ("a_b_cd", "abCd"),  # PM2 leaves one-letter parts lowercase
        ("interpreter_args", "interpreterArgs"),
    ],
)
def test_camel(name, expected):
    assert camel(name) == expected


# --- defaults --------------------------------------------------------------


def test_defaults_are_filled(schema):
    options, warnings = schema.normalize({"script": "app.py"})
    assert warnings == []
    assert options["script"] == "app.py"
    assert options["name"] is None
    assert options["namespace"] == "default"
    assert options["exec_mode"] is None  # decided at start: cluster for node with instances
    assert options["instances"] == 1
    assert options["wait_ready"] is False
    assert options["listen_timeout"] == 3000
    assert options["listen"] is None
    assert options["shutdown_with_message"] is False
    assert options["min_uptime"] == 1000
    assert options["max_restarts"] == 16
    assert options["kill_timeout"] == 1600
    assert options["restart_delay"] == 0
    assert options["exp_backoff_restart_delay"] == 0
    assert options["autorestart"] is True
    assert options["autostart"] is True
    assert options["treekill"] is True
    assert options["merge_logs"] is None  # decided at runtime
    assert options["env"] == {}
    assert options["args"] == []
    assert options["node_args"] == []
    assert options["stop_exit_codes"] == []
    assert options["instance_var"] == "NODE_APP_INSTANCE"
    assert options["increment_var"] is None
    assert set(options) == {option.name for option in CORE_OPTIONS}


def test_defaults_are_not_shared_between_apps(schema):
    first = normalize(schema)
    first["env"]["X"] = "1"
    first["args"].append("--x")
    second = normalize(schema)
    assert second["env"] == {}
    assert second["args"] == []


def test_core_options_are_marked_core_and_typed():
    assert all(option.plugin == "core" for option in CORE_OPTIONS)
    assert all(option.type in KINDS for option in CORE_OPTIONS)
    assert all(option.help for option in CORE_OPTIONS)


def test_none_means_the_default(schema):
    assert normalize(schema, kill_timeout=None)["kill_timeout"] == 1600


# --- script ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["script", "exec", "cmd", "command"])
def test_script_and_its_aliases(schema, key):
    options, _ = schema.normalize({key: "worker.py"})
    assert options["script"] == "worker.py"


@pytest.mark.parametrize("raw", [{}, {"script": ""}, {"name": "x"}, {"script": None}])
def test_script_is_required(schema, raw):
    with pytest.raises(OptionError, match="script is required") as info:
        schema.normalize(raw)
    assert info.value.field == "script"


# --- aliases and camelCase -------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "name", "expected"),
    [
        ("maxRestarts", 3, "max_restarts", 3),
        ("interpreterArgs", ["-u"], "node_args", ["-u"]),
        ("interpreter_args", "-X dev", "node_args", ["-X", "dev"]),
        ("nodeArgs", ["-u"], "node_args", ["-u"]),
        ("interpreter", "python3", "exec_interpreter", "python3"),
        ("execInterpreter", "bash", "exec_interpreter", "bash"),
        ("combine_logs", True, "merge_logs", True),
        ("combineLogs", True, "merge_logs", True),
        ("mergeLogs", False, "merge_logs", False),
        ("out", "/tmp/o.log", "out_file", "/tmp/o.log"),
        ("output", "/tmp/o.log", "out_file", "/tmp/o.log"),
        ("out_log", "/tmp/o.log", "out_file", "/tmp/o.log"),
        ("outLog", "/tmp/o.log", "out_file", "/tmp/o.log"),
        ("outFile", "/tmp/o.log", "out_file", "/tmp/o.log"),
        ("err", "/tmp/e.log", "error_file", "/tmp/e.log"),
        ("error", "/tmp/e.log", "error_file", "/tmp/e.log"),
        ("err_file", "/tmp/e.log", "error_file", "/tmp/e.log"),
        ("errLog", "/tmp/e.log", "error_file", "/tmp/e.log"),
        ("errorFile", "/tmp/e.log", "error_file", "/tmp/e.log"),
        ("log", "/tmp/all.log", "log_file", "/tmp/all.log"),
        ("pid", "/tmp/a.pid", "pid_file", "/tmp/a.pid"),
        ("user", "www", "uid", "www"),
        ("killTimeout", "5s", "kill_timeout", 5000),
        ("minUptime", "2m", "min_uptime", 120_000),
        ("stopExitCodes", [0, 2], "stop_exit_codes", [0, 2]),
        ("instanceVar", "INSTANCE_ID", "instance_var", "INSTANCE_ID"),
    ],
)
def test_aliases_and_camel_case(schema, key, value, name, expected):
    options, warnings = schema.normalize({"script": "app.py", key: value})
    assert options[name] == expected
    assert warnings == []


def test_get_finds_an_option_by_any_of_its_keys(schema):
    assert schema.get("max_restarts").name == "max_restarts"
    assert schema.get("maxRestarts").name == "max_restarts"
    assert schema.get("combine_logs").name == "merge_logs"
    assert schema.get("exec").name == "script"
    assert schema.get("nope") is None
    assert schema.get("max_memory_restart") is None  # its plugin is not loaded


def test_iterating_gives_every_option_in_order(schema):
    assert [option.name for option in schema] == [option.name for option in CORE_OPTIONS]


def test_a_truthy_canonical_key_wins_with_a_warning(schema):
    options, warnings = schema.normalize({"script": "a.py", "out": "/x", "out_file": "/y"})
    assert options["out_file"] == "/y"
    assert warnings == [
        "'out' and 'out_file' both set out_file, to different values: using 'out_file'"
    ]


def test_a_falsy_canonical_key_loses_to_a_truthy_alias(schema):
    options, warnings = schema.normalize(
        {"script": "a.py", "merge_logs": False, "combine_logs": True}
    )
    assert options["merge_logs"] is True
    assert len(warnings) == 1 and "using 'combine_logs'" in warnings[0]


def test_the_same_value_under_two_keys_gives_no_warning(schema):
    options, warnings = schema.normalize({"script": "a.py", "maxRestarts": 4, "max_restarts": 4})
    assert options["max_restarts"] == 4
    assert warnings == []


# --- kinds -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
    ],
)
def test_bool(schema, value, expected):
    assert normalize(schema, autorestart=value)["autorestart"] is expected


@pytest.mark.parametrize("value", ["yes", 1, 0, "1", [], {}])
def test_bool_rejects_other_values(schema, value):
    with pytest.raises(OptionError, match="autorestart must be true or false") as info:
        normalize(schema, autorestart=value)
    assert info.value.field == "autorestart"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("3", 3), (" 7 ", 7), (2.0, 2), ("0", 0)],
)
def test_int_accepts_numeric_strings(schema, value, expected):
    assert normalize(schema, max_restarts=value)["max_restarts"] == expected


@pytest.mark.parametrize("value", ["abc", 2.5, "2.5", True, [], "nan", float("inf")])
def test_int_rejects_non_integers(schema, value):
    with pytest.raises(OptionError, match="max_restarts must be an integer"):
        normalize(schema, max_restarts=value)


def test_int_minimum(schema):
    with pytest.raises(OptionError) as info:
        normalize(schema, max_restarts=-1)
    assert str(info.value) == "max_restarts must be an integer >= 0, got -1"
    assert info.value.field == "max_restarts"


def test_an_error_names_the_key_the_user_wrote(schema):
    with pytest.raises(OptionError) as info:
        normalize(schema, maxRestarts="abc")
    assert (
        str(info.value)
        == "max_restarts must be an integer >= 0, got 'abc' (given as 'maxRestarts')"
    )
    assert info.value.field == "max_restarts"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(4, 4), ("1", 1), ("max", 0), (0, 0), (-1, -1), ("-2", -2)],
)
def test_instances(schema, value, expected):
    assert normalize(schema, instances=value)["instances"] == expected


def test_instances_rejects_words(schema):
    with pytest.raises(OptionError, match="instances must be an integer"):
        normalize(schema, instances="many")


def test_number_kind():
    schema = OptionSchema([Option("ratio", "number", plugin="x"), *CORE_OPTIONS])
    assert normalize(schema, ratio="1.5")["ratio"] == 1.5
    assert normalize(schema, ratio=2)["ratio"] == 2
    assert normalize(schema, ratio="3")["ratio"] == 3
    with pytest.raises(OptionError, match="ratio must be a number, got 'x'"):
        normalize(schema, ratio="x")


def test_parse_bytes_and_parse_ms_are_importable_from_options():
    assert corral.options.schema.parse_bytes is corral.options.convert.parse_bytes
    assert corral.options.schema.parse_ms is corral.options.convert.parse_ms


def test_ms_error_text(schema):
    with pytest.raises(OptionError) as info:
        normalize(schema, kill_timeout="soon")
    assert str(info.value) == "kill_timeout must be milliseconds (an integer or '10s'), got 'soon'"
    assert info.value.field == "kill_timeout"


def test_min_uptime_minimum_is_100(schema):
    assert normalize(schema, min_uptime=100)["min_uptime"] == 100
    with pytest.raises(OptionError, match=">= 100, got 50"):
        normalize(schema, min_uptime=50)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("--a 'b c' k=\"v\"", ["--a", "b c", "k=v"]),
        ("  -v   --port 80 ", ["-v", "--port", "80"]),
        ("", []),
        (["--port", 8080, True], ["--port", "8080", "true"]),
        (("a", "b c"), ["a", "b c"]),
    ],
)
def test_list_is_shell_split(schema, value, expected):
    assert normalize(schema, args=value)["args"] == expected


@pytest.mark.parametrize("value", ["a 'b", 42, {"a": 1}, [["nested"]], [None]])
def test_list_rejects(schema, value):
    with pytest.raises(OptionError, match="args must be a list of strings"):
        normalize(schema, args=value)


def test_list_reports_an_unclosed_quote(schema):
    with pytest.raises(OptionError, match="No closing quotation"):
        normalize(schema, args="--name 'x")


def test_dict_values_become_strings(schema):
    env = {"A": 1, "B": True, "C": False, "D": None, "E": "e", "F": 1.5, "G": 2.0, "H": {"k": [1]}}
    assert normalize(schema, env=env)["env"] == {
        "A": "1",
        "B": "true",
        "C": "false",
        "D": None,  # delete the variable
        "E": "e",
        "F": "1.5",
        "G": "2",
        "H": '{"k":[1]}',
    }


@pytest.mark.parametrize("value", ["A=1", ["A=1"], 3])
def test_dict_rejects_non_mappings(schema, value):
    with pytest.raises(OptionError, match="env must be a mapping of names to values"):
        normalize(schema, env=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, [0]), ("2", [2]), ([0, "3", 4.0], [0, 3, 4]), ((), [])],
)
def test_int_list(schema, value, expected):
    assert normalize(schema, stop_exit_codes=value)["stop_exit_codes"] == expected


@pytest.mark.parametrize("value", ["x", [1, "x"], [1.5], True])
def test_int_list_rejects(schema, value):
    with pytest.raises(
        OptionError, match="stop_exit_codes must be an integer or a list of integers"
    ):
        normalize(schema, stop_exit_codes=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), ("false", False), ("/var/log/all.log", "/var/log/all.log")],
)
def test_bool_or_str(schema, value, expected):
    assert normalize(schema, log_file=value)["log_file"] == expected


def test_bool_or_str_rejects(schema):
    with pytest.raises(OptionError, match="log_file must be true, false or a string, got 3"):
        normalize(schema, log_file=3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (["SECRET", "TOKEN"], ["SECRET", "TOKEN"]),
        ("SECRET", ["SECRET"]),  # one substring, not shell-split
    ],
)
def test_bool_or_list(schema, value, expected):
    assert normalize(schema, filter_env=value)["filter_env"] == expected


@pytest.mark.parametrize("value", [3, [1], {"a": 1}])
def test_bool_or_list_rejects(schema, value):
    with pytest.raises(OptionError, match="filter_env must be true, false, a string or a list"):
        normalize(schema, filter_env=value)


@pytest.mark.parametrize(("value", "expected"), [("name", "name"), (42, "42"), (1000.0, "1000")])
def test_str_takes_numbers_as_yaml_writes_them(schema, value, expected):
    assert normalize(schema, name=value)["name"] == expected


@pytest.mark.parametrize("value", [True, ["a"], {"a": 1}])
def test_str_rejects(schema, value):
    with pytest.raises(OptionError, match="name must be a string"):
        normalize(schema, name=value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("uid", 1000, 1000), ("uid", "1000", 1000), ("user", "www-data", "www-data"), ("gid", "0", 0)],
)
def test_uid_and_gid_are_names_or_numeric_ids(schema, key, value, expected):
    name = "gid" if key == "gid" else "uid"
    assert normalize(schema, **{key: value})[name] == expected


def test_uid_rejects_a_bool(schema):
    with pytest.raises(OptionError, match="uid must be a string"):
        normalize(schema, uid=True)


def test_any_kind_passes_values_through():
    schema = OptionSchema([*CORE_OPTIONS, Option("extra", "any", plugin="x")])
    assert normalize(schema, extra={"deep": [1, {"x": None}]})["extra"] == {
        "deep": [1, {"x": None}]
    }


def test_choices(schema):
    assert normalize(schema, log_type="json")["log_type"] == "json"
    with pytest.raises(OptionError) as info:
        normalize(schema, log_type="xml")
    assert str(info.value) == "log_type must be one of 'json', got 'xml'"


# --- exec_mode -------------------------------------------------------------


@pytest.mark.parametrize("value", ["fork", "fork_mode"])
def test_exec_mode_fork(schema, value):
    assert normalize(schema, exec_mode=value)["exec_mode"] == "fork"


@pytest.mark.parametrize("value", ["cluster", "cluster_mode"])
def test_exec_mode_cluster(schema, value):
    assert normalize(schema, exec_mode=value)["exec_mode"] == "cluster"


def test_exec_mode_rejects_other_words(schema):
    with pytest.raises(
        OptionError, match="exec_mode must be one of 'fork', 'cluster', got 'thread'"
    ):
        normalize(schema, exec_mode="thread")


def test_cluster_options(schema):
    options = normalize(schema, waitReady="true", listenTimeout="5s", listen=":8000")
    assert options["wait_ready"] is True and options["listen_timeout"] == 5000
    assert options["listen"] == ":8000"


# --- env_<name> ------------------------------------------------------------


def test_env_sections_are_kept(schema):
    options = normalize(schema, env_production={"NODE_ENV": "production", "WORKERS": 4})
    assert options["env_production"] == {"NODE_ENV": "production", "WORKERS": "4"}


def test_env_section_must_be_a_mapping(schema):
    with pytest.raises(OptionError, match="env_staging must be a mapping") as info:
        normalize(schema, env_staging="NODE_ENV=staging")
    assert info.value.field == "env_staging"


# --- keys corral refuses or ignores ----------------------------------------


def test_unknown_key_names_the_closest(schema):
    with pytest.raises(OptionError) as info:
        normalize(schema, max_restart=3)
    assert str(info.value) == "unknown option 'max_restart': did you mean 'max_restarts'?"
    assert info.value.field == "max_restart"


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("maxRestart", "maxRestarts"),
        ("KILL_TIMEOUT", "kill_timeout"),
        ("instance", "instances"),
        ("max_memory_restarts", "max_memory_restart"),  # known, though its plugin is not loaded
    ],
)
def test_unknown_key_suggestions(schema, key, suggestion):
    with pytest.raises(OptionError, match=f"did you mean '{suggestion}'"):
        normalize(schema, **{key: 1})


def test_unknown_key_with_nothing_close(schema):
    with pytest.raises(OptionError) as info:
        normalize(schema, zzzzqqq=1)
    assert str(info.value) == "unknown option 'zzzzqqq'; see `corral start --help` for the list"


def test_pm2_keys_are_ignored_with_a_warning(schema):
    options, warnings = schema.normalize(
        {"script": "a.py", "vizion": False, "windowsHide": True, "automation": False}
    )
    assert "vizion" not in options
    assert warnings == [
        "ignoring PM2 option 'vizion': corral has no use for it",
        "ignoring PM2 option 'windowsHide': corral has no use for it",
        "ignoring PM2 option 'automation': corral has no use for it",
    ]


def test_pm2_ignored_includes_the_schema_plumbing():
    assert {"vizion", "pmx", "automation", "append_env_to_name", "kill_retry_time"} <= PM2_IGNORED


@pytest.mark.parametrize(
    ("key", "name", "plugin"),
    [
        ("max_memory_restart", "max_memory_restart", "memory"),
        ("maxMemoryRestart", "max_memory_restart", "memory"),
        ("watch", "watch", "watch"),
        ("ignore_watch", "ignore_watch", "watch"),
        ("watchDelay", "watch_delay", "watch"),
        ("cron", "cron_restart", "cron"),
        ("cronRestart", "cron_restart", "cron"),
        ("cron_tz", "cron_tz", "cron"),
        ("source_map_support", "source_map_support", "sourcemap"),
        ("disableSourceMapSupport", "disable_source_map_support", "sourcemap"),
    ],
)
def test_an_option_of_a_missing_plugin_names_the_plugin(schema, key, name, plugin):
    with pytest.raises(PluginError) as info:
        normalize(schema, **{key: "1G"})
    message = str(info.value)
    assert message.startswith(name)
    assert f"needs the plugin '{plugin}', which is not loaded" in message
    assert message.endswith("install or enable it (CORRAL_PLUGINS)")
    assert installed_plugin_options()[name] == plugin


def test_the_plugin_error_text(schema):
    with pytest.raises(PluginError) as info:
        normalize(schema, max_memory_restart="150M")
    assert str(info.value) == (
        "max_memory_restart needs the plugin 'memory', which is not loaded: "
        "install or enable it (CORRAL_PLUGINS)"
    )


def test_the_core_names_no_plugin_option():
    source = "".join(
        Path(module.__file__).read_text()
        for module in (corral.options.schema, corral.options.table)
    )
    for name in installed_plugin_options():
        assert repr(name) not in source and f'"{name}"' not in source


@pytest.mark.parametrize("plugins", [["cron"], []], ids=["cron", "none"])
def test_an_installed_plugin_not_loaded_is_named(monkeypatch, plugins):
    monkeypatch.setenv("CORRAL_PLUGINS", ",".join(plugins))
    manager = load_plugins()
    assert manager.names() == plugins
    schema = OptionSchema(manager.app_options())
    with pytest.raises(PluginError) as info:
        normalize(schema, max_memory_restart="150M")
    assert str(info.value) == (
        "max_memory_restart needs the plugin 'memory', which is not loaded: "
        "install or enable it (CORRAL_PLUGINS)"
    )
    if plugins:
        assert normalize(schema, cron="0 * * * *")["cron_restart"] == "0 * * * *"
    else:
        with pytest.raises(
            PluginError, match=r"^cron_restart \(given as 'cron'\) needs the plugin"
        ):
            normalize(schema, cron="0 * * * *")


def test_an_unloaded_plugin_option_is_not_an_unknown_key_of_a_config(schema):
    apps = [{"script": "a.py", "maxMemoryRestart": "1G", "max_memory_restarts": 1}]
    assert schema.unknown_keys(apps[0]) == ["max_memory_restarts"]
    with pytest.raises(OptionError, match="did you mean 'max_memory_restart'"):
        schema.check_unknown(apps, labels=False)


def test_an_option_no_installed_plugin_declares_is_an_unknown_key(schema):
    with pytest.raises(OptionError) as info:
        normalize(schema, max_memory_restrt="1G")
    assert (
        str(info.value) == "unknown option 'max_memory_restrt': did you mean 'max_memory_restart'?"
    )
    with pytest.raises(OptionError, match="unknown option 'gpu_slots'; see"):
        normalize(schema, gpu_slots=2)


def test_a_loaded_plugin_option_is_validated():
    memory = plugin_options("memory", Option("max_memory_restart", "bytes", help="limit"))
    cron = plugin_options("cron", Option("cron_restart", "str", aliases=("cron",)))
    schema = OptionSchema([*CORE_OPTIONS, *memory, *cron])
    options = normalize(schema, maxMemoryRestart="150M", cron=0)
    assert options["max_memory_restart"] == 150 * 1024**2
    assert options["cron_restart"] == "0"
    with pytest.raises(OptionError, match="max_memory_restart must be bytes"):
        normalize(schema, max_memory_restart="1.5G")


def test_the_first_error_raises_and_nothing_is_returned(schema):
    raw = {"script": "a.py", "kill_timeout": "soon", "max_restarts": "x"}
    with pytest.raises(OptionError, match="kill_timeout"):
        schema.normalize(raw)


def test_raw_must_be_a_mapping(schema):
    with pytest.raises(OptionError, match="app options must be a mapping"):
        schema.normalize(["app.py"])


# --- declaring options -----------------------------------------------------


def test_a_name_declared_twice_names_both_owners():
    mine = plugin_options("mywatch", Option("watch", "bool"))
    theirs = plugin_options("watch", Option("watch", "bool_or_list"))
    with pytest.raises(PluginError) as info:
        OptionSchema([*CORE_OPTIONS, *theirs, *mine])
    assert (
        str(info.value)
        == "option 'watch' is declared twice: by plugin 'watch' and by plugin 'mywatch'"
    )


def test_an_alias_declared_twice_names_both_owners():
    clash = plugin_options("logs2", Option("log_everything", "bool", aliases=("log",)))
    with pytest.raises(PluginError) as info:
        OptionSchema([*CORE_OPTIONS, *clash])
    message = str(info.value)
    assert "'log' is declared twice" in message
    assert "'log_file' by core" in message and "'log_everything' by plugin 'logs2'" in message


def test_a_camel_case_clash_is_a_duplicate():
    clash = plugin_options("x", Option("killTimeout", "int"))
    with pytest.raises(PluginError, match="'killTimeout' is declared twice"):
        OptionSchema([*CORE_OPTIONS, *clash])


def test_an_unknown_type_is_refused():
    with pytest.raises(PluginError, match="unknown type 'float'"):
        Option("ratio", "float", plugin="x")


def test_a_bad_default_is_the_plugin_s_fault():
    bad = plugin_options("memory", Option("max_memory_restart", "bytes", default="lots"))
    with pytest.raises(PluginError, match="default of plugin 'memory' is invalid"):
        OptionSchema([*CORE_OPTIONS, *bad])


def test_plugin_defaults_are_filled_and_converted():
    memory = plugin_options("memory", Option("max_memory_restart", "bytes", default="1G"))
    schema = OptionSchema([*CORE_OPTIONS, *memory])
    assert normalize(schema)["max_memory_restart"] == 1024**3


# --- normalize_update ------------------------------------------------------


def test_normalize_update_returns_only_the_given_keys(schema):
    options, warnings = schema.normalize_update({"killTimeout": "3s", "env": {"A": 1}})
    assert options == {"kill_timeout": 3000, "env": {"A": "1"}}
    assert warnings == []


def test_normalize_update_needs_no_script(schema):
    assert schema.normalize_update({}) == ({}, [])


def test_normalize_update_validates(schema):
    with pytest.raises(OptionError, match="unknown option 'max_restart'"):
        schema.normalize_update({"max_restart": 1})
    with pytest.raises(OptionError, match="max_restarts must be an integer"):
        schema.normalize_update({"max_restarts": "x"})


def test_normalize_update_none_resets_to_the_default(schema):
    options, _ = schema.normalize_update({"max_restarts": None, "name": None})
    assert options == {"max_restarts": 16, "name": None}


def test_normalized_options_normalize_to_themselves(schema):
    """A dump stores normalized options and resurrect validates them again."""
    raw = {
        "cmd": "app.py",
        "maxRestarts": "3",
        "args": "--a 'b c'",
        "instances": "max",
        "min_uptime": "10s",
        "env": {"A": 1, "B": None},
        "env_production": {"C": True},
        "stop_exit_codes": 0,
        "uid": "1000",
        "log_file": "true",
        "filter_env": "SECRET",
    }
    once, _ = schema.normalize(raw)
    twice, warnings = schema.normalize(once)
    assert twice == once
    assert warnings == []


def test_a_plugin_validator_checks_the_converted_value():
    def even(value):
        if value % 2:
            raise ValueError(f"must be even, got {value}")
        return value

    option = Option("pairs", "int", validate=even, plugin="demo")
    schema = OptionSchema([*CORE_OPTIONS, option])
    assert normalize(schema, pairs="4")["pairs"] == 4
    with pytest.raises(OptionError, match="pairs: must be even, got 3") as info:
        normalize(schema, pairs=3)
    assert info.value.field == "pairs"

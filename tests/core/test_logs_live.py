"""Log files written by a real daemon from real children's pipes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import python_app, wait_for


def finished(pm, name: str) -> bool:
    return pm.describe(name)[0].status == "stopped"


def test_200k_lines_none_lost_torn_or_duplicated(pm, app_path):
    info = pm.start(
        app_path("lines.py"), {"name": "lines", "args": ["200000"], "autorestart": False}
    )[0]
    wait_for(lambda: finished(pm, "lines"), timeout=60)
    data = Path(info.out_log).read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b""  # the partial last line was written, with a newline added
    assert lines[-2] == b"partial-no-newline"
    body = lines[:-2]
    assert len(body) == 200_000
    for i, line in enumerate(body):
        assert line == b"%010d" % i + b"x" * 89, f"line {i} is {line[:40]!r}"


def test_binary_output_passes_through(pm, tmp_path):
    script = python_app(
        tmp_path,
        "binary.py",
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe bad utf8 \\x00 nul\\n')\n",
    )
    info = pm.start(script, {"autorestart": False})[0]
    wait_for(lambda: finished(pm, "binary"))
    assert Path(info.out_log).read_bytes() == b"\xff\xfe bad utf8 \x00 nul\n"


def test_out_and_err_in_one_file_with_a_date_prefix(pm, tmp_path):
    script = python_app(
        tmp_path,
        "both.py",
        "import sys\n"
        "for i in range(2000):\n"
        "    print('out', i, flush=True)\n"
        "    print('err', i, file=sys.stderr, flush=True)\n",
    )
    target = tmp_path / "all.log"
    pm.start(
        script,
        {
            "output": str(target),
            "error": str(target),
            "log_date_format": "YYYY-MM-DD HH:mm:ss Z",
            "autorestart": False,
        },
    )
    wait_for(lambda: finished(pm, "both"))
    lines = target.read_text().splitlines()
    assert len(lines) == 4000
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d: (out|err) (\d+)$")
    seen = {"out": [], "err": []}
    for line in lines:
        match = pattern.match(line)
        assert match, line
        seen[match[1]].append(int(match[2]))
    assert seen["out"] == list(range(2000)) == seen["err"]


def test_strftime_date_format_and_time_option(pm, tmp_path):
    script = python_app(tmp_path, "once.py", "print('hello', flush=True)\n")
    a = pm.start(script, {"name": "a", "log_date_format": "%Y/%m/%d", "autorestart": False})[0]
    b = pm.start(script, {"name": "b", "time": True, "autorestart": False})[0]
    wait_for(lambda: finished(pm, "a") and finished(pm, "b"))
    assert re.fullmatch(r"\d{4}/\d\d/\d\d: hello\n", Path(a.out_log).read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: hello\n", Path(b.out_log).read_text())


def test_json_log_type(pm, tmp_path):
    import json

    script = python_app(tmp_path, "j.py", "print('one', flush=True)\n")
    info = pm.start(script, {"log_type": "json", "autorestart": False})[0]
    wait_for(lambda: finished(pm, "j"))
    record = json.loads(Path(info.out_log).read_text())
    assert record["message"] == "one" and record["app_name"] == "j" and record["type"] == "out"


def test_null_output_and_merge_logs(pm, app_path, corral_home):
    a = pm.start(app_path("sleeper.py"), {"name": "quiet", "output": "/dev/null"})[0]
    assert a.out_log == "/dev/null"  # as PM2's pm_out_log_path shows it
    merged = pm.start(app_path("sleeper.py"), {"name": "m", "instances": 2, "merge_logs": True})
    assert {m.out_log for m in merged} == {str(corral_home / "logs" / "m-out.log")}
    wait_for(lambda: len(Path(merged[0].out_log).read_text().splitlines()) >= 2 * 3)


def test_bad_date_format_is_refused(pm, app_path):
    import pytest

    from corral.errors import OptionError

    with pytest.raises(OptionError, match="log_date_format"):
        pm.start(app_path("sleeper.py"), {"log_date_format": "%Q"})
    assert pm.list() == []

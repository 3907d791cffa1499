"""Status beside readiness (issue 12, point 3), measured on a private home.

    python bench/readiness.py

1. Four cluster instances with ``listen`` that send no readiness signal: their
   statuses when ``start()`` returns, and the time until all show ``online``
   (PM2: online at once; corral before: ``launching`` until ``listen_timeout``).
2. ``restart`` and ``reload`` of a ``wait_ready`` fork app that says ready 1 s
   after its spawn: how long each call takes (PM2 and corral now: ~1 s; corral
   before: it returned at once).
3. ``corral start`` of an app that dies at once, of a healthy one, and of a
   healthy one with ``--no-wait``: exit code and seconds.

Prints the figures; asserts nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY = "import time\nimport corral.child\ntime.sleep(1)\ncorral.child.ready()\ntime.sleep(600)\n"
QUIET = "import time\ntime.sleep(600)\n"
CRASHER = "raise RuntimeError('db unreachable')\n"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="corral-readiness-", dir="/tmp"))
    os.environ.update(CORRAL_HOME=str(work / "home"), CORRAL_PLUGINS="")
    for name, text in (("ready.py", READY), ("quiet.py", QUIET), ("crasher.py", CRASHER)):
        (work / name).write_text(text)
    import corral

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pm = corral.connect()
    try:
        options = {"name": "q", "exec_mode": "cluster", "instances": 4}
        infos = pm.start(str(work / "quiet.py"), {**options, "listen": f"127.0.0.1:{port}"})
        print("cluster x4, no signal, statuses as start returns:", [i.status for i in infos])
        begun = time.monotonic()
        while any(i.status != "online" for i in pm.describe("q")):
            time.sleep(0.01)
        print(f"  all online {time.monotonic() - begun:.2f} s later")
        pm.start(str(work / "ready.py"), {"name": "r", "wait_ready": True, "listen_timeout": 5000})
        for verb in ("restart", "reload"):
            begun = time.monotonic()
            getattr(pm, verb)("r")
            print(f"{verb} of a wait_ready app ready 1 s after spawn: "
                  f"{time.monotonic() - begun:.2f} s")  # fmt: skip
        for args in (["crasher.py"], ["quiet.py", "--name", "ok"], ["quiet.py", "--no-wait"]):
            begun = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "corral", "start", *args],
                cwd=work,
                capture_output=True,
                text=True,
            )
            took = time.monotonic() - begun
            print(f"corral start {' '.join(args)}: exit {done.returncode} in {took:.2f} s")
    finally:
        pm.kill_daemon()


if __name__ == "__main__":
    main()

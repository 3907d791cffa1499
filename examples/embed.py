"""Run corral inside your own program: two apps, a hook that sees what they do, a clean exit.

    python examples/embed.py              # until Ctrl-C
    python examples/embed.py --seconds 5  # or for 5 seconds

The daemon runs on a thread of this process (``connect(no_daemon=True)``), with
the ``memory`` and ``cron`` plugins and a hook object of our own. It starts
examples/web.py on a free port and examples/worker.py, says when web is online
and what it answers, and restarts the worker once after its third job. Ctrl-C
(or the end of --seconds) stops both apps before the program exits.

Hooks run on the daemon's event loop, so ``MyHook`` only prints and hands what
it saw to the main thread through a queue: a hook must never block, nor call
the client (the client waits for that same loop).
"""

from __future__ import annotations

import argparse
import queue
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import corral

HERE = Path(__file__).resolve().parent


class MyHook:
    """Prints every process event and queues events and output lines for the main thread."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[tuple[str, str, str]] = queue.Queue()

    @corral.hookimpl
    def corral_process_event(self, event: corral.ProcessEvent) -> None:
        reason = f" ({event.reason})" if event.reason else ""
        print(f"event: {event.name} {event.event}{reason}", flush=True)
        self.inbox.put((event.name, event.event, event.reason))

    @corral.hookimpl
    def corral_log_chunk(self, app: Any, stream: str, data: bytes) -> None:
        for line in data.decode(errors="replace").splitlines():
            self.inbox.put((app.name, "line", line))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
        return reply.read().decode().strip()


def supervise(pm: corral.Client, hook: MyHook, seconds: float | None) -> None:
    """Start both apps, then react to what the hook saw until the time is up."""
    port = free_port()
    [web] = pm.start(
        str(HERE / "web.py"),
        {"name": "web", "port": port, "cron_restart": "0 4 * * *"},  # a fresh web every night
    )
    [worker] = pm.start(str(HERE / "worker.py"), {"name": "worker", "max_memory_restart": "200M"})
    print(f"started web (pid {web.pid}) on port {port} and worker (pid {worker.pid})", flush=True)
    print("ready", flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    restarted = False
    while deadline is None or time.monotonic() < deadline:
        wait = 1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            name, what, detail = hook.inbox.get(timeout=wait)
        except queue.Empty:
            continue
        if what == "online":
            pid = next((p.pid for p in pm.describe(name)), None)
            print(f"{name} is online (pid {pid})", flush=True)
        elif name == "web" and what == "line" and detail.startswith("listening on"):
            print(f"web answered: {fetch(port)}", flush=True)
        elif name == "worker" and what == "line" and "job 3 done" in detail and not restarted:
            restarted = True
            print("worker did 3 jobs: restarting it once", flush=True)
            pm.restart("worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--home", help="CORRAL_HOME to use (default: a temporary directory)")
    args = parser.parse_args(argv)
    home = args.home or tempfile.mkdtemp(prefix="corral-embed-")
    hook = MyHook()
    pm = corral.connect(home, no_daemon=True, plugins=["memory", "cron", hook])
    try:
        supervise(pm, hook, args.seconds)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        pm.disconnect()  # stops both apps (SIGINT, then SIGKILL after kill_timeout)
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print("stopped cleanly", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

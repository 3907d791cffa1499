"""The dashboard's process: ``python -m corral.plugins.web.server --port 9615``,
started by ``corral web start`` as an app the daemon supervises.

It reads the daemon through the public client API and the bus (:mod:`.hub`) and
serves the pages and the API (:mod:`.routes`) with uvicorn. None of this runs in
the daemon: starlette and uvicorn stay out of its memory.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from corral import api

from .auth import Gate
from .hub import Hub
from .routes import Dashboard
from .tokens import sweep_login_tokens


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corral-web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9615)
    parser.add_argument("--readonly", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    home = api.corral_home()
    sweep_login_tokens(home)  # and at each login attempt
    hub = Hub()
    hub.start()
    gate = Gate(home)
    app = Dashboard(hub, gate, readonly=args.readonly, port=args.port, host=args.host).app()
    mode = " (read-only)" if args.readonly else ""
    print(f"corral web: serving http://{args.host}:{args.port}/{mode}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    hub.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

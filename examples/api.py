"""A web app for a container: serves on the socket corral shares (``listen``).

`corral start examples/container.json` runs it here, `corral runtime` in the image
of examples/Dockerfile, and `corral export kubernetes examples/container.json
--image IMAGE` makes its Deployment and Service (docs/plugins/export-kubernetes.md).
GET /healthz answers the health check.
"""

import http.server
import os
import socket

import corral.child


class Api(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        greeting = os.environ.get("GREETING", "hello")
        body = b"ok\n" if self.path == "/healthz" else f"{greeting} from {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


def listening() -> socket.socket:
    """corral's socket (``listen``: bound once, shared by every instance), or our own
    on $PORT when run alone."""
    if os.environ.get("LISTEN_FDS"):
        return corral.child.listen_socket()
    return socket.create_server(("", int(os.environ.get("PORT", "8000"))))


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("", 0), Api, bind_and_activate=False)
    server.socket = listening()
    corral.child.ready()  # wait_ready: online, and ready to Kubernetes, from here
    print(f"serving on {server.socket.getsockname()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopping", flush=True)

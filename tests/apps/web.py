"""An HTTP app for cluster tests: serves its pid on the socket corral passes down.

SIGINT stops it gracefully: it stops accepting, finishes the requests in
flight, then exits, so a rolling reload drops nothing. With ``--crash`` it
exits at once (a broken new version); with ``--no-ready`` it never says ready.
"""

import http.server
import os
import signal
import sys
import threading

import corral.child as child


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        body = f"{os.getpid()} {os.environ.get('GREETING', '')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight
    block_on_close = True


if "--crash" in sys.argv:
    print("broken build", file=sys.stderr, flush=True)
    sys.exit(3)

sock = child.listen_socket()
server = Server(sock.getsockname(), Handler, bind_and_activate=False)
server.socket = sock


def stop(*_: object) -> None:
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGINT, stop)
child.on_message(lambda message: stop() if message == "shutdown" else None)
if "--no-ready" not in sys.argv:
    child.ready()
print("serving", os.getpid(), flush=True)
server.serve_forever(poll_interval=0.05)
server.server_close()
print("stopped", os.getpid(), flush=True)

"""A WSGI app for gunicorn under corral: answers with the pid of the worker that served."""

import os


def app(environ, start_response):
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

"""An ASGI app for uvicorn under corral: answers with its pid and instance index."""

import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # lifespan: nothing to set up
    body = f"{os.getpid()} {os.environ.get('CORRAL_INSTANCE')}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

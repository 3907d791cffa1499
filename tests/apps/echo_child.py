"""Sends back the data of every packet the daemon delivers, with corral.child."""

import threading

import corral.child as child


@child.on_message
def echo(message: object) -> None:
    if isinstance(message, dict) and "data" in message:
        child.send(message["data"], topic=message.get("topic"))


child.ready()
threading.Event().wait()

"""List the apps CALLS times over one connection to the daemon; print one JSON line.

    python api_list.py corral - CALLS           # corral.connect().list()
    python api_list.py supervisor SOCKET CALLS  # XML-RPC supervisor.getAllProcessInfo
    python api_list.py circus ENDPOINT CALLS    # CircusClient, the "status" command
    python api_list.py corral - CALLS env       # corral.connect().list(env=True)
    python api_list.py TOOL WHERE stdin         # one call per line read (bench/scale.py)

Run by the Python that has the tool installed. The first WARM calls open and warm
the connection and are not counted; the JSON has each counted call's wall time in
ms and the number of apps the last call listed. With ``stdin`` for CALLS it prints
``ready`` after the warm calls, then one JSON line (``ms``, ``apps``) per line it
reads, until stdin closes. A corral without ``list(env=True)`` prints ``{"na": ...}``.
"""

import inspect
import json
import sys
import time

WARM = 3


def corral_lister(_: str, env: bool = False):
    import corral

    client = corral.connect()
    if not env:
        return lambda: len(client.list())
    if "env" not in inspect.signature(client.list).parameters:
        print(json.dumps({"na": "this corral's list() takes no env argument"}), flush=True)
        sys.exit(0)
    return lambda: len(client.list(env=True))


def supervisor_lister(socket: str):
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    # one transport keeps one HTTP/1.1 connection to the unix socket open
    transport = SupervisorTransport(None, None, f"unix://{socket}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    return lambda: len(proxy.supervisor.getAllProcessInfo())


def circus_lister(endpoint: str):
    from circus.client import CircusClient

    client = CircusClient(endpoint=endpoint, timeout=30)

    def status() -> int:
        answer = client.call({"command": "status", "properties": {}})
        if answer.get("status") != "ok":
            raise RuntimeError(f"circus answered {answer}")
        return len(answer["statuses"])

    return status


LISTERS = {"corral": corral_lister, "supervisor": supervisor_lister, "circus": circus_lister}


def on_demand(listed) -> None:
    """One timed call per line of stdin, each answered with a JSON line."""
    print("ready", flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        count = listed()
        ms = (time.perf_counter() - t0) * 1000
        print(json.dumps({"ms": ms, "apps": count}), flush=True)


def measure(tool: str, where: str, calls: int, env: bool = False) -> dict:
    listed = LISTERS[tool](where, env) if env else LISTERS[tool](where)
    for _ in range(WARM):
        listed()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        count = listed()
        times.append((time.perf_counter() - t0) * 1000)
    return {"ms": times, "apps": count}


if __name__ == "__main__":
    tool, where, calls = sys.argv[1:4]
    with_env = sys.argv[4:5] == ["env"]
    if calls == "stdin":
        lister = LISTERS[tool](where, with_env) if with_env else LISTERS[tool](where)
        for _ in range(WARM):
            lister()
        on_demand(lister)
    else:
        print(json.dumps(measure(tool, where, int(calls), with_env)), flush=True)

"""List the apps CALLS times over one connection to the daemon; print one JSON line.

    python api_list.py corral - CALLS           # corral.connect().list()
    python api_list.py supervisor SOCKET CALLS  # XML-RPC supervisor.getAllProcessInfo
    python api_list.py circus ENDPOINT CALLS    # CircusClient, the "status" command

Run by the Python that has the tool installed. The first WARM calls open and warm
the connection and are not counted; the JSON has each counted call's wall time in
ms and the number of apps the last call listed.
"""

import json
import sys
import time

WARM = 3


def corral_lister(_: str):
    import corral

    client = corral.connect()
    return lambda: len(client.list())


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


def measure(tool: str, where: str, calls: int) -> dict:
    lister = {"corral": corral_lister, "supervisor": supervisor_lister, "circus": circus_lister}
    listed = lister[tool](where)
    for _ in range(WARM):
        listed()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        count = listed()
        times.append((time.perf_counter() - t0) * 1000)
    return {"ms": times, "apps": count}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))), flush=True)

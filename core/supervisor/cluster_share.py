"""Node cluster mode as PM2 users write it: the listening sockets instances ask for.

A node instance in cluster mode without ``listen``/``port`` runs with the preload
(``core/supervisor/node/preload.js``), which turns each ``server.listen(port[, host])`` into
a request on the channel, ``{"type": "corral:listen", "data": {"id", "host",
"port", "ipv6Only"}}``, as node's cluster worker asks its primary. The daemon binds
one socket per (app name, address), shared by every instance and kept across
crash restarts and reloads while any instance exists (``Listeners.share``), and
answers on the channel the way node passes handles (``NODE_HANDLE`` with the fd
as SCM_RIGHTS), or with the errno when it cannot bind, which the instance emits
as the server's ``'error'``. ``listen(0)``: the first request binds an ephemeral
port and every later request of that app for port 0 gets the same socket.

A port below ``net.ipv4.ip_unprivileged_port_start`` is refused (EACCES) to an
app that runs as another user than root, as its own bind would be: the app's code
does not get, by asking, a port its account could not bind. An operator gives
such an app port 80 with the ``listen`` option.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import TYPE_CHECKING, Any

from corral.supervisor.lifecycle import STOPPED_STATES
from corral.supervisor.listen import BACKLOG

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.credentials import Credentials
    from corral.supervisor.process import Child, ManagedProcess

# node emits a NODE_* message as 'internalMessage': the app never sees it
REPLY = "NODE_CORRAL_LISTEN"
UNPRIVILEGED_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
MAX_PER_APP = 64  # sockets an app's code may have the daemon hold: no fd exhaustion by asking


def on_listen(daemon: Daemon, proc: ManagedProcess, child: Child, data: Any) -> None:
    """Answer one instance's request for a listening socket."""
    channel = child.channel
    if channel is None or channel.closed or child.exited.done() or proc.state in STOPPED_STATES:
        return  # nobody to answer, and a socket taken now would outlive the app
    request = data if isinstance(data, dict) else {}
    reply: dict[str, Any] = {"cmd": REPLY, "id": request.get("id")}
    try:
        host, port = _address(request)
        v6only = bool(request.get("ipv6Only"))
        key = f"[{host}]:{port}" if v6only else f"{host}:{port}"
        held = [k for k in daemon.listeners.shared if k[0] == proc.name]
        if len(held) >= MAX_PER_APP and (proc.name, key) not in held:
            raise OSError(errno.EMFILE, f"{proc.name} holds {MAX_PER_APP} listening sockets")
        creds = daemon.credentials(proc)
        listener = daemon.listeners.share(
            proc.name, key, proc.pm_id, lambda: bind_tcp(host, port, v6only, creds)
        )
        reply["port"] = listener.port
        channel.send_fd({"cmd": "NODE_HANDLE", "type": "net.Native", "msg": reply}, listener.fd)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "EINVAL")
        daemon.log.warning(
            "cannot bind for a cluster instance",
            name=proc.name,
            pm_id=proc.pm_id,
            address=f"{request.get('host') or ''}:{request.get('port')}",
            error=code,
        )
        reply["error"] = {
            "errno": exc.errno or errno.EINVAL,
            "code": code,
            "message": exc.strerror or str(exc),
        }
        channel.send(reply)


def _address(request: dict[str, Any]) -> tuple[str, int]:
    """(host, port) of a request: host an IP address or "" (every interface)."""
    host, port = request.get("host") or "", request.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise OSError(errno.EINVAL, f"port {port!r} is not a port number")
    if not isinstance(host, str):
        raise OSError(errno.EINVAL, "host is not an address")
    if host:
        try:
            host = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            raise OSError(errno.EINVAL, f"host {host!r} is not an IP address") from None
    return host, port


def bind_tcp(
    host: str, port: int, v6only: bool = False, creds: Credentials | None = None
) -> tuple[socket.socket, int]:
    """A non-blocking listening TCP socket on ``host:port`` as node binds it: every
    interface is ``::`` taking IPv4 too where IPv6 is there, else ``0.0.0.0``."""
    if creds is not None and creds.uid != 0 and 0 < port < _unprivileged_start():
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    if host:
        families = [socket.AF_INET6 if ":" in host else socket.AF_INET]
    else:
        families = [socket.AF_INET6, socket.AF_INET]
    for family in families:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            if family == families[-1]:
                raise
            continue  # no IPv6 here
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
            any_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((host or any_host, port))
            sock.listen(BACKLOG)
            # O_NONBLOCK is the open file's, shared by every instance, as node's cluster
            # primary (libuv) makes it: an instance that loses the race for a connection
            # gets EAGAIN; on a blocking socket its accept would block its event loop
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock, sock.getsockname()[1]
    raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))


def _unprivileged_start() -> int:
    try:
        with open(UNPRIVILEGED_START) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024

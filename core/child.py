"""The child side of corral: what a managed Python program imports to talk to the daemon.

``import corral.child`` loads the standard library only, and nothing happens
until a function is called, so a program that uses it runs unchanged outside
corral: :func:`send`, :func:`ready` and :func:`on_message` are then no-ops and
:func:`messages` ends at once.

What the daemon hands a child, and what this module reads:

- ``CORRAL_CHANNEL_FD``: a connected unix stream socket to the daemon. Each
  message is one line of JSON, both ways (node's ``json`` IPC format).
- ``NOTIFY_SOCKET``: systemd's notify socket, used by :func:`ready` when there
  is no channel, and by :func:`heartbeat`.
- ``WATCHDOG_USEC`` / ``WATCHDOG_PID``: the ``watchdog`` option's timeout, see
  :func:`watchdog_interval`.
- ``LISTEN_FDS`` / ``LISTEN_PID``: fd 3 is the listening socket shared by every
  instance (systemd socket activation), see :func:`listen_socket`.
- ``CORRAL_INSTANCE`` / ``NODE_APP_INSTANCE``: the instance index.

Example::

    import corral.child

    sock = corral.child.listen_socket()
    corral.child.ready()
    for message in corral.child.messages():
        if corral.child.is_shutdown_message(message):
            break
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "heartbeat",
    "install_exception_hook",
    "instance",
    "is_shutdown_message",
    "listen_socket",
    "messages",
    "on_message",
    "ready",
    "send",
    "under_corral",
    "watchdog_interval",
]

LISTEN_FDS_START = 3  # systemd's SD_LISTEN_FDS_START
READ_SIZE = 65536
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)  # EPIPE, not SIGPIPE, if the daemon is gone
_END = object()  # what a message queue gets when the channel closes

Handler = TypeVar("Handler", bound=Callable[[Any], Any])


class _State:
    """Everything this module opens, created on first use (and anew after a fork)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the fields below
        self.write_lock = threading.Lock()  # one message at a time on the socket
        self.opened = False
        self.channel: socket.socket | None = None
        self.callbacks: list[Callable[[Any], Any]] = []
        self.queues: list[queue.SimpleQueue[Any]] = []
        self.reader: threading.Thread | None = None
        self.ended = False  # the reader saw the end of the channel
        self.listener: socket.socket | None = None
        self.hook_installed = False


_state = _State()


def _forget_after_fork() -> None:
    # the channel is the parent's: a forked child (multiprocessing) must not read it
    global _state
    previous = _state
    _state = _State()
    _state.opened = True
    _state.hook_installed = previous.hook_installed
    _state.listener = previous.listener  # pre-fork servers share it on purpose
    if previous.channel is not None:
        previous.channel.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def send(data: Any, topic: str | None = None) -> None:
    """Send ``data`` to the daemon, which publishes it on the bus as ``process:msg``.

    PM2's ``process.send({type: 'process:msg', data, topic})``. Without a
    channel (not under corral, or the daemon is gone) this does nothing.
    """
    message: dict[str, Any] = {"type": "process:msg", "data": data}
    if topic is not None:
        message["topic"] = topic
    _write(message)


def ready() -> None:
    """Tell the supervisor this program is ready (the ``wait_ready`` option).

    On corral's channel this sends ``"ready"`` (PM2's ``process.send('ready')``);
    under systemd (``NOTIFY_SOCKET`` set, no channel) it sends ``READY=1``;
    otherwise it does nothing.
    """
    if _channel() is not None:
        _write("ready")
    elif os.environ.get("NOTIFY_SOCKET"):
        _sd_notify(os.environ["NOTIFY_SOCKET"], b"READY=1")


def heartbeat() -> None:
    """Tell the supervisor this program is alive (the ``watchdog`` option; systemd's
    ``WatchdogSec=``): ``WATCHDOG=1`` on ``NOTIFY_SOCKET``, else on corral's channel;
    otherwise nothing. Call it more often than :func:`watchdog_interval` says, e.g.
    every half of it, from the code that must keep working (not from a thread of its
    own that would go on beating while the work is stuck)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if address:
        _sd_notify(address, b"WATCHDOG=1")
    elif _channel() is not None:
        _write({"type": "corral:notify", "data": "WATCHDOG=1"})


def watchdog_interval() -> float | None:
    """The watchdog's timeout in seconds (``WATCHDOG_USEC``) if it watches this process
    (``WATCHDOG_PID`` unset or this pid, as ``sd_watchdog_enabled``), else None."""
    try:
        usec = int(os.environ["WATCHDOG_USEC"])
    except (KeyError, ValueError):
        return None
    owner = os.environ.get("WATCHDOG_PID")
    if usec <= 0 or (owner and owner != str(os.getpid())):
        return None
    return usec / 1_000_000


def on_message(fn: Handler) -> Handler:
    """Call ``fn(message)`` for every message from the daemon; usable as a decorator.

    Calls happen on a background thread, one message at a time. An exception
    in ``fn`` is printed to stderr and the next message is still delivered.
    """
    with _state.lock:
        _state.callbacks.append(fn)
    _start_reader()
    return fn


def messages() -> Iterator[Any]:
    """Iterate over the messages from the daemon, blocking for each; ends with the channel.

    Every iterator and every :func:`on_message` callback sees every message
    that arrives after it was created. Outside corral the iterator is empty.
    """
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    with _state.lock:
        if _state.ended:
            inbox.put(_END)
        _state.queues.append(inbox)
    if not _start_reader():
        inbox.put(_END)
    return _drain(inbox)


def listen_socket() -> socket.socket:
    """The listening socket the daemon shares with every instance of this app (fd 3).

    Present when the app was started with the ``listen`` option (systemd socket
    activation: ``LISTEN_FDS`` >= 1 and ``LISTEN_PID`` is this process). The
    same object is returned on every call; accept connections on it, or hand
    it to a server (``uvicorn.run(app, fd=sock.fileno())``).
    """
    with _state.lock:
        if _state.listener is None:
            _state.listener = _inherited_listener()
        return _state.listener


def instance() -> int:
    """This instance's index, 0 to N-1 (``CORRAL_INSTANCE``, else ``NODE_APP_INSTANCE``), or 0."""
    for name in ("CORRAL_INSTANCE", "NODE_APP_INSTANCE"):
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 0


def under_corral() -> bool:
    """Whether this process has a channel to a corral daemon."""
    return _open() is not None


def is_shutdown_message(message: Any) -> bool:
    """Whether ``message`` is the daemon's request to exit cleanly (``shutdown_with_message``)."""
    return message == "shutdown"


def install_exception_hook() -> None:
    """Report uncaught exceptions to the daemon as ``process:exception``, then run the old hook.

    Called on the first use of the channel; calling it again does nothing.
    ``KeyboardInterrupt`` (corral stops apps with SIGINT) is not reported.
    """
    with _state.lock:
        if _state.hook_installed:
            return
        _state.hook_installed = True
    previous = sys.excepthook

    def report(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, Exception):
            import traceback  # here, not at import: it loads tokenize and friends

            stack = "".join(traceback.format_exception(kind, error, tb))
            data = {"name": kind.__name__, "message": str(error), "stack": stack}
            _write({"type": "process:exception", "data": data}, timeout=1.0)
        previous(kind, error, tb)

    sys.excepthook = report


def _open() -> socket.socket | None:
    """The channel socket, opened on first call; None without a usable one."""
    with _state.lock:
        if not _state.opened:
            _state.opened = True
            _state.channel = _inherited_channel(os.environ.get("CORRAL_CHANNEL_FD"))
        return _state.channel


def _channel() -> socket.socket | None:
    channel = _open()
    if channel is not None:
        install_exception_hook()
    return channel


def _inherited_channel(value: str | None) -> socket.socket | None:
    # the variable outlives the fd in grandchildren: check it is still a unix stream socket
    try:
        fd = int(value or "")
        if fd < 0 or not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=fd)
    except (ValueError, OSError):
        return None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours: leave the fd open
        return None
    sock.settimeout(None)
    return sock


def _inherited_listener() -> socket.socket:
    try:
        count = int(os.environ.get("LISTEN_FDS", ""))
        owner = int(os.environ.get("LISTEN_PID", ""))
    except ValueError:
        count = owner = 0
    if count < 1 or owner != os.getpid():
        raise RuntimeError(
            "corral.child.listen_socket(): this process was not given a listening socket "
            "(LISTEN_FDS/LISTEN_PID are not set for it). Start the app under corral with "
            "the 'listen' option, e.g. `corral start app.py -i 4 --listen :8000` or "
            "listen: ':8000' in the ecosystem file, or bind the port yourself when "
            "corral.child.under_corral() is false."
        )
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as error:
        raise RuntimeError(
            f"corral.child.listen_socket(): LISTEN_FDS is set but fd 3 is not a socket ({error})"
        ) from None
    sock.set_inheritable(
        False
    )  # as sd_listen_fds: the socket is this process's, not its children's
    return sock


def _write(message: Any, timeout: float = -1) -> None:
    channel = _channel()
    if channel is None:
        return
    line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if not _state.write_lock.acquire(timeout=timeout):
        return
    try:
        channel.sendall(line, _SEND_FLAGS)
    except OSError:
        _close_channel(channel)  # the daemon is gone: later sends do nothing
    finally:
        _state.write_lock.release()


def _close_channel(channel: socket.socket) -> None:
    # the reader thread may still be in recv(): drop the socket, leave the fd to it
    with _state.lock:
        if _state.channel is channel:
            _state.channel = None


def _sd_notify(address: str, payload: bytes) -> None:
    # "@name" is an abstract socket: a leading NUL byte instead of a path
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.send(payload)
    except OSError:
        pass  # readiness is best effort: the supervisor's timeout decides


def _start_reader() -> bool:
    """Start the reader thread once; False when there is no channel to read."""
    channel = _channel()
    if channel is None:
        return False
    with _state.lock:
        if _state.reader is None:
            _state.reader = threading.Thread(
                target=_read, args=(channel, _state), name="corral-child-reader", daemon=True
            )
            _state.reader.start()
    return True


def _read(channel: socket.socket, state: _State) -> None:
    lines = _LineBuffer()
    while True:
        try:
            data = channel.recv(READ_SIZE)
        except OSError:
            data = b""
        if not data:
            break
        for message in lines.feed(data):
            _dispatch(state, message)
    with state.lock:
        state.ended = True
        for inbox in state.queues:
            inbox.put(_END)


def _dispatch(state: _State, message: Any) -> None:
    with state.lock:
        callbacks = list(state.callbacks)
        queues = list(state.queues)
    for inbox in queues:
        inbox.put(message)
    for callback in callbacks:
        try:
            callback(message)
        except Exception:
            import traceback

            print(f"corral.child: on_message callback {callback!r} failed:", file=sys.stderr)
            traceback.print_exc()


def _drain(inbox: queue.SimpleQueue[Any]) -> Iterator[Any]:
    while True:
        message = inbox.get()
        if message is _END:
            return
        yield message


class _LineBuffer:
    """Splits a byte stream into JSON values, one per line, across any read boundaries."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """The complete values ``data`` finishes; a non-JSON line comes back as text."""
        self._pending += data
        *complete, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        values = []
        for line in complete:
            if not line.strip():
                continue
            text = line.decode("utf-8", "replace")
            try:
                values.append(json.loads(text))
            except ValueError:
                values.append(text)
        return values

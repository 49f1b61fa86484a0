"""Our hidden Erlang node: pids, mailboxes, connections, rpc.

    >>> local = LocalNode()
    >>> demo = local.connect("demo@127.0.0.1", cookie="secret")
    >>> demo.rpc("erlang", "system_info", [Atom("otp_release")])
    [50, 53]                                   # the charlist "25"
    >>> inbox = local.mailbox()
    >>> demo.send(inbox, Atom("some_registered_name"), ("hello", inbox.pid))
    >>> inbox.receive(timeout=5)

Every Python-side pid is a ``Mailbox``: a thread-safe queue that the
connection's reader thread fills. Links and monitors behave as between two
Erlang processes: a remote process linked to a mailbox gets an exit signal
when the mailbox closes or the connection drops, which is what lets the
in-node agent clean up after a kernel that died without saying goodbye.

``RemoteNode.rpc`` and ``eval_erlang`` are in ``beam/rpc.py``.
"""

from __future__ import annotations

import collections
import logging
import secrets
import ssl
import threading
import time
from typing import Any, Callable, Iterable

from ..errors import NodeDown
from . import epmd, rpc
from .address import resolve_cookie, split_node_name
from .connection import (ALIAS_SEND, DEMONITOR_P, EXIT, EXIT2, LINK, MONITOR_P, MONITOR_P_EXIT,
                         NO_MESSAGE, PAYLOAD_EXIT, PAYLOAD_EXIT2, PAYLOAD_MONITOR_P_EXIT,
                         REG_SEND, SEND, SEND_SENDER, UNLINK, UNLINK_ID, UNLINK_ID_ACK,
                         Connection)
from .handshake import Flags, client_handshake
from .terms import Atom, Pid, Reference

__all__ = ["LocalNode", "RemoteNode", "Mailbox", "resolve_cookie", "split_node_name"]

log = logging.getLogger(__name__)


A_EXIT, A_DOWN, A_PROCESS = Atom("EXIT"), Atom("DOWN"), Atom("process")
A_NOCONNECTION, A_NOPROC, A_NORMAL = Atom("noconnection"), Atom("noproc"), Atom("normal")


class Mailbox:
    """A Python-side process: a pid and a queue of messages."""

    def __init__(self, local: "LocalNode", pid: Pid):
        self.local = local
        self.pid = pid
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._watching: list[RemoteNode] = []
        self.links: set[Pid] = set()
        self.monitored_by: dict[Reference, Pid] = {}  # remote monitors on us
        self.closed = False

    def __repr__(self) -> str:
        return f"<Mailbox {self.pid} queued={len(self._queue)}>"

    def __len__(self) -> int:
        """Messages waiting to be received."""
        return len(self._queue)

    def deliver(self, message: Any) -> None:
        with self._cond:
            self._queue.append(message)
            self._cond.notify_all()

    def watch(self, remote: "RemoteNode") -> None:
        """Make ``receive`` raise NodeDown if ``remote`` goes down while waiting."""
        self._watching.append(remote)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def receive(self, timeout: float | None = None,
                match: Callable[[Any], bool] | None = None) -> Any:
        """Next message (the first that ``match`` accepts); TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                for i, message in enumerate(self._queue):
                    if match is None or match(message):
                        del self._queue[i]
                        return message
                for remote in self._watching:
                    if not remote.alive:
                        raise remote.down_error()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no message for {self.pid} within {timeout} s")
                self._cond.wait(remaining)

    def drain(self) -> list[Any]:
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            return items

    def close(self, reason: Any = A_NORMAL) -> None:
        """Exit the Python-side process: linked and monitoring remote processes are told."""
        if self.closed:
            return
        self.closed = True
        self.local._unregister(self)
        for remote_pid in list(self.links):
            remote = self.local.connections.get(str(remote_pid.node))
            if remote is not None and remote.alive:
                remote._send_exit(self.pid, remote_pid, reason)
        for ref, watcher in list(self.monitored_by.items()):
            remote = self.local.connections.get(str(watcher.node))
            if remote is not None and remote.alive:
                remote._send_monitor_exit(self.pid, watcher, ref, reason)
        self.links.clear()
        self.monitored_by.clear()

    def __enter__(self) -> "Mailbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalNode:
    """This Python process as a hidden Erlang node."""

    def __init__(self, name: str | None = None):
        self._name = name
        self.creation = secrets.randbelow(0xFFFFFFF0) + 4  # non-zero, never a legacy 1..3
        self._lock = threading.Lock()
        self._next_id = 1
        self._next_ref = 1
        self.mailboxes: dict[Pid, Mailbox] = {}
        self.registered: dict[Atom, Mailbox] = {}
        self.aliases: dict[Reference, Mailbox] = {}
        self.connections: dict[str, RemoteNode] = {}

    def name_for(self, host: str) -> str:
        # Same host part as the target keeps short/long name styles matched.
        if self._name is None:
            self._name = f"microscope_{secrets.token_hex(4)}@{host}"
        return self._name

    @property
    def name(self) -> str:
        return self._name or "(not yet connected)"

    # -- pids, refs, mailboxes

    def mailbox(self, register_as: str | None = None) -> Mailbox:
        if self._name is None:
            raise RuntimeError("connect to a node before making mailboxes: the node name, "
                               "which every pid carries, follows the target's host")
        with self._lock:
            n = self._next_id
            self._next_id += 1
        # Pid ids are 15 bits and serials 13 bits for portability to every OTP.
        pid = Pid(Atom(self.name), n & 0x7FFF, (n >> 15) & 0x1FFF, self.creation)
        box = Mailbox(self, pid)
        with self._lock:
            self.mailboxes[pid] = box
            if register_as:
                self.registered[Atom(register_as)] = box
        return box

    def make_ref(self) -> Reference:
        with self._lock:
            n = self._next_ref
            self._next_ref += 1
        return Reference(Atom(self.name), self.creation, (n & 0x3FFFF, n >> 18 & 0xFFFFFFFF,
                                                         secrets.randbits(32)))

    def alias(self, box: Mailbox) -> Reference:
        ref = self.make_ref()
        with self._lock:
            self.aliases[ref] = box
        return ref

    def _unregister(self, box: Mailbox) -> None:
        with self._lock:
            self.mailboxes.pop(box.pid, None)
            for name in [n for n, b in self.registered.items() if b is box]:
                del self.registered[name]
            for ref in [r for r, b in self.aliases.items() if b is box]:
                del self.aliases[ref]

    # -- connecting

    def connect(self, target: str, cookie: str | None = None, *, net_ticktime: float | None = None,
                timeout: float = 10.0, epmd_port: int | None = None,
                ssl_context: ssl.SSLContext | None = None, tunnel: Any = None) -> "RemoteNode":
        alive, host = split_node_name(target)
        target = f"{alive}@{host}"
        existing = self.connections.get(target)
        if existing is not None and existing.alive:
            return existing
        found = epmd.port_please(alive, host, epmd_port, timeout, tunnel and tunnel.connect)
        secret = resolve_cookie(cookie)  # after: a misspelt name is said even with no cookie
        conn = Connection.open(host, found.port, target, net_ticktime or 60.0, timeout, ssl_context,
                               tunnel)
        try:
            conn.sock.settimeout(timeout)
            peer = client_handshake(conn, self.name_for(host), secret, self.creation, target)
        except BaseException:
            conn.close("handshake failed")
            raise
        finally:
            del secret  # the cookie lives no longer than the handshake
        conn.peer_flags = peer.flags
        remote = RemoteNode(self, conn, peer.name, peer.flags)
        self.connections[peer.name] = remote
        conn.start(remote._on_message, remote._on_down)
        if net_ticktime is None:
            # Tick as often as this node expects, whatever -kernel net_ticktime it runs with.
            try:
                remote.conn.set_net_ticktime(_ticktime_seconds(
                    remote.rpc("net_kernel", "get_net_ticktime", [], timeout)))
            except BaseException:
                remote.close()
                raise
        return remote

    def close(self) -> None:
        for box in list(self.mailboxes.values()):
            box.close()
        for remote in list(self.connections.values()):
            remote.close()


class RemoteNode:
    """A live connection to one remote node."""

    def __init__(self, local: LocalNode, conn: Connection, name: str, flags: int):
        self.local = local
        self.conn = conn
        self.name = name
        self.flags = flags
        self._parsed: dict[str, Any] = {}

    def __repr__(self) -> str:
        state = "up" if self.alive else "down"
        return f"<RemoteNode {self.name} {state}>"

    @property
    def alive(self) -> bool:
        return self.conn.alive

    def down_error(self) -> NodeDown:
        return self.conn.down_error()

    def close(self) -> None:
        self.conn.close()

    # -- sending

    def send(self, sender: Mailbox, to: Pid | str | Reference, message: Any) -> None:
        """Send ``message`` from ``sender`` to a pid, a registered name or an alias."""
        if isinstance(to, Pid):
            if self.flags & Flags.SEND_SENDER:
                self.conn.send((SEND_SENDER, sender.pid, to), message, has_message=True)
            else:
                self.conn.send((SEND, Atom(""), to), message, has_message=True)
        elif isinstance(to, Reference):
            self.conn.send((ALIAS_SEND, sender.pid, to), message, has_message=True)
        else:
            self.conn.send((REG_SEND, sender.pid, Atom(""), Atom(to)), message, has_message=True)

    def link(self, box: Mailbox, to: Pid) -> None:
        box.links.add(to)
        self.conn.send((LINK, box.pid, to))

    def unlink(self, box: Mailbox, to: Pid) -> None:
        box.links.discard(to)
        if self.flags & Flags.UNLINK_ID:
            self.conn.send((UNLINK_ID, secrets.randbits(48) | 1, box.pid, to))
        else:
            self.conn.send((UNLINK, box.pid, to))

    def monitor(self, box: Mailbox, to: Pid | str) -> Reference:
        """Monitor a remote pid or registered name; a DOWN tuple arrives in ``box``."""
        ref = self.local.make_ref()
        target = to if isinstance(to, Pid) else Atom(to)
        self.conn.send((MONITOR_P, box.pid, target, ref))
        return ref

    def demonitor(self, box: Mailbox, to: Pid | str, ref: Reference) -> None:
        target = to if isinstance(to, Pid) else Atom(to)
        self.conn.send((DEMONITOR_P, box.pid, target, ref))

    def exit(self, box: Mailbox, to: Pid, reason: Any) -> None:
        """Send an exit signal (like ``exit(Pid, Reason)``)."""
        if self.flags & Flags.EXIT_PAYLOAD:
            self.conn.send((PAYLOAD_EXIT2, box.pid, to), reason, has_message=True)
        else:
            self.conn.send((EXIT2, box.pid, to, reason))

    def _send_exit(self, from_pid: Pid, to: Pid, reason: Any) -> None:
        try:
            if self.flags & Flags.EXIT_PAYLOAD:
                self.conn.send((PAYLOAD_EXIT, from_pid, to), reason, has_message=True)
            else:
                self.conn.send((EXIT, from_pid, to, reason))
        except NodeDown:
            pass

    def _send_monitor_exit(self, from_pid: Pid, watcher: Pid, ref: Reference, reason: Any) -> None:
        try:
            if self.flags & Flags.EXIT_PAYLOAD:
                self.conn.send((PAYLOAD_MONITOR_P_EXIT, from_pid, watcher, ref), reason,
                               has_message=True)
            else:
                self.conn.send((MONITOR_P_EXIT, from_pid, watcher, ref, reason))
        except NodeDown:
            pass

    # -- rpc

    def rpc(self, module: str, function: str, args: Iterable[Any] = (),
            timeout: float | None = 30.0) -> Any:
        """``rpc:call/5`` through ``rex``; BadRpc if it raised, RpcTimeout if no reply."""
        return rpc.call(self, module, function, args, timeout)

    def eval_erlang(self, source: str, bindings: dict[str, Any] | None = None,
                    timeout: float | None = 30.0) -> Any:
        """Evaluate Erlang expressions (``"X + 1."``) on the node with stdlib's erl_eval."""
        return rpc.eval_erlang(self, source, bindings, timeout, parsed=self._parsed)

    # -- receiving (reader thread)

    def _on_message(self, control: Any, message: Any) -> None:
        if not isinstance(control, tuple) or not control or type(control[0]) is not int:
            log.warning("ignoring malformed control message from %s", self.name)
            return
        op = control[0]
        local = self.local
        try:
            if op in (SEND, SEND_SENDER):
                self._deliver_to_pid(control[2], message)
            elif op == REG_SEND:
                box = local.registered.get(control[3])
                if box is not None:
                    box.deliver(message)
            elif op == ALIAS_SEND:
                box = local.aliases.get(control[2])
                if box is not None:
                    box.deliver(message)
            elif op == LINK:
                box = local.mailboxes.get(control[2])
                if box is None:
                    self._send_exit(control[2], control[1], A_NOPROC)
                else:
                    box.links.add(control[1])
            elif op in (UNLINK, UNLINK_ID):
                from_pid, to_pid = control[-2], control[-1]
                box = local.mailboxes.get(to_pid)
                if box is not None:
                    box.links.discard(from_pid)
                if op == UNLINK_ID:
                    self.conn.send((UNLINK_ID_ACK, control[1], to_pid, from_pid))
            elif op in (EXIT, EXIT2, PAYLOAD_EXIT, PAYLOAD_EXIT2):
                from_pid, to_pid = control[1], control[2]
                reason = control[3] if op in (EXIT, EXIT2) else message
                box = local.mailboxes.get(to_pid)
                if box is not None:
                    box.links.discard(from_pid)
                    box.deliver((A_EXIT, from_pid, reason))
            elif op == MONITOR_P:
                watcher, watched, ref = control[1], control[2], control[3]
                box = (local.mailboxes.get(watched) if isinstance(watched, Pid)
                       else local.registered.get(watched))
                if box is None or box.closed:
                    self._send_monitor_exit(watched, watcher, ref, A_NOPROC)
                else:
                    box.monitored_by[ref] = watcher
            elif op == DEMONITOR_P:
                watched, ref = control[2], control[3]
                box = (local.mailboxes.get(watched) if isinstance(watched, Pid)
                       else local.registered.get(watched))
                if box is not None:
                    box.monitored_by.pop(ref, None)
            elif op in (MONITOR_P_EXIT, PAYLOAD_MONITOR_P_EXIT):
                watched, watcher, ref = control[1], control[2], control[3]
                reason = control[4] if op == MONITOR_P_EXIT else message
                self._deliver_to_pid(watcher, (A_DOWN, ref, A_PROCESS, watched, reason))
            elif op == UNLINK_ID_ACK:
                pass
            else:
                log.debug("ignoring control message %r from %s", op, self.name)
        except (IndexError, TypeError, NodeDown) as exc:
            log.warning("could not handle control message %r from %s: %s", op, self.name, exc)

    def _deliver_to_pid(self, pid: Any, message: Any) -> None:
        if message is NO_MESSAGE:
            return
        box = self.local.mailboxes.get(pid)
        if box is not None:
            box.deliver(message)

    def _on_down(self, reason: str) -> None:
        # Like Erlang: links and monitors across the lost connection fire with noconnection.
        for box in list(self.local.mailboxes.values()):
            for linked in [p for p in box.links if str(p.node) == self.name]:
                box.links.discard(linked)
                box.deliver((A_EXIT, linked, A_NOCONNECTION))
            box.wake()
        if self.local.connections.get(self.name) is self:
            del self.local.connections[self.name]


def _ticktime_seconds(answer: Any) -> float:
    # An integer, or {ongoing_change_to, T} while the node changes it.
    if isinstance(answer, tuple) and len(answer) == 2:
        answer = answer[1]
    return float(answer) if isinstance(answer, int) and answer > 0 else 60.0

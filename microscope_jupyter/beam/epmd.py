"""EPMD client: find a node's distribution port (PORT_PLEASE2) and list names (NAMES).

Each request uses its own short-lived connection, as EPMD closes the socket
after answering. The port comes from ``ERL_EPMD_PORT`` when set, exactly as
``erl`` itself does, so a test or a container with a non-default EPMD works
unchanged. ``connect`` opens that connection (``socket.create_connection``
unless an SSH tunnel's, beam/ssh.py, is given).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import AttachError, EpmdUnreachable, NodeNotFound

__all__ = ["NodePort", "port_please", "names", "epmd_port", "DEFAULT_PORT"]

DEFAULT_PORT = 4369
PORT_PLEASE2_REQ = 122
PORT2_RESP = 119
NAMES_REQ = 110
_MAX_NAMES_REPLY = 1 << 20

Connect = Callable[..., Any]   # socket.create_connection's signature


@dataclass(frozen=True)
class NodePort:
    name: str
    port: int
    node_type: int       # 77 normal, 72 hidden
    protocol: int        # 0 = tcp/ipv4
    highest_version: int
    lowest_version: int


def epmd_port(explicit: int | None = None) -> int:
    if explicit is not None:
        return explicit
    env = os.environ.get("ERL_EPMD_PORT")
    return int(env) if env and env.isdigit() else DEFAULT_PORT


def _request(host: str, port: int, payload: bytes, timeout: float,
             connect: Connect | None = None) -> bytes:
    try:
        with (connect or socket.create_connection)((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">H", len(payload)) + payload)
            chunks = []
            total = 0
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > _MAX_NAMES_REPLY:
                    break
            return b"".join(chunks)
    except AttachError:   # the tunnel's own (an SSH host that will not forward)
        raise
    except OSError as exc:
        raise EpmdUnreachable(
            f"no EPMD answered on {host}:{port} ({exc.strerror or exc}); is a node running on "
            f"{host}? Start one with `erl -sname NAME` or set ERL_EPMD_PORT") from exc


def names(host: str, port: int | None = None, timeout: float = 5.0,
          connect: Connect | None = None) -> dict[str, int]:
    """Map of node name (the part before @) to distribution port, as EPMD lists them."""
    port = epmd_port(port)
    reply = _request(host, port, bytes([NAMES_REQ]), timeout, connect)
    if len(reply) < 4:
        raise EpmdUnreachable(f"EPMD on {host}:{port} sent a truncated NAMES reply; "
                              "is that port really EPMD?")
    found: dict[str, int] = {}
    for line in reply[4:].decode("utf-8", "replace").splitlines():
        # "name demo at port 40123"
        parts = line.split()
        if len(parts) == 5 and parts[0] == "name" and parts[2:4] == ["at", "port"] and parts[4].isdigit():
            found[parts[1]] = int(parts[4])
    return found


def port_please(alive: str, host: str, port: int | None = None, timeout: float = 5.0,
                connect: Connect | None = None) -> NodePort:
    """Ask EPMD on ``host`` where node ``alive`` (the name before @) listens."""
    port = epmd_port(port)
    raw = alive.encode("utf-8")
    reply = _request(host, port, bytes([PORT_PLEASE2_REQ]) + raw, timeout, connect)
    if len(reply) < 2 or reply[0] != PORT2_RESP:
        raise EpmdUnreachable(f"EPMD on {host}:{port} gave an unexpected reply; is that port "
                              "really EPMD?")
    if reply[1] != 0:
        known = sorted(names(host, port, timeout, connect))
        listing = ", ".join(f"{n}@{host}" for n in known) if known else "none"
        raise NodeNotFound(f"EPMD on {host} knows no node named {alive!r} (it knows: {listing}); "
                           "check the name, or start the node with -sname/-name",
                           known_names=[f"{n}@{host}" for n in known])
    if len(reply) < 12:
        raise EpmdUnreachable(f"EPMD on {host}:{port} sent a truncated PORT2 reply")
    dist_port, node_type, protocol, high, low, nlen = struct.unpack_from(">HBBHHH", reply, 2)
    name = reply[12:12 + nlen].decode("utf-8", "replace")
    return NodePort(name, dist_port, node_type, protocol, high, low)

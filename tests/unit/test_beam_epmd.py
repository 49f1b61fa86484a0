"""EPMD client against a scripted fake EPMD."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from microscope_jupyter.beam import epmd
from microscope_jupyter.errors import EpmdUnreachable, NodeNotFound


def fake_epmd(replies: dict[int, bytes]) -> int:
    """Serve each request with the canned reply for its request code; return the port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
                request = conn.recv(size, socket.MSG_WAITALL)
                conn.sendall(replies[request[0]])

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


NAMES_REPLY = struct.pack(">I", 4369) + b"name demo at port 40001\nname other_node at port 40002\n"


def test_port_please_success():
    body = struct.pack(">BBHBBHHH", 119, 0, 40001, 77, 0, 6, 5, 4) + b"demo" + b"\0\0"
    port = fake_epmd({epmd.PORT_PLEASE2_REQ: body})
    found = epmd.port_please("demo", "127.0.0.1", port)
    assert (found.name, found.port, found.highest_version, found.lowest_version) == ("demo", 40001, 6, 5)


def test_unknown_name_lists_known_ones():
    port = fake_epmd({epmd.PORT_PLEASE2_REQ: b"\x77\x01", epmd.NAMES_REQ: NAMES_REPLY})
    with pytest.raises(NodeNotFound) as info:
        epmd.port_please("nope", "127.0.0.1", port)
    assert info.value.known_names == ["demo@127.0.0.1", "other_node@127.0.0.1"]
    assert "knows: demo@127.0.0.1, other_node@127.0.0.1" in str(info.value)


def test_names():
    port = fake_epmd({epmd.NAMES_REQ: NAMES_REPLY})
    assert epmd.names("127.0.0.1", port) == {"demo": 40001, "other_node": 40002}


@pytest.mark.parametrize("reply", [b"", b"\x00", b"\x77\x00\x01"])
def test_garbage_replies_are_epmd_errors(reply):
    port = fake_epmd({epmd.PORT_PLEASE2_REQ: reply, epmd.NAMES_REQ: b""})
    with pytest.raises(EpmdUnreachable):
        epmd.port_please("demo", "127.0.0.1", port)


def test_erl_epmd_port_environment(monkeypatch):
    monkeypatch.setenv("ERL_EPMD_PORT", "4400")
    assert epmd.epmd_port() == 4400
    assert epmd.epmd_port(4500) == 4500
    monkeypatch.delenv("ERL_EPMD_PORT")
    assert epmd.epmd_port() == 4369

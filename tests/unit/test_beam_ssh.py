"""beam/ssh.py without a server: the destination grammar, the config it refuses,
and the ``connect`` seam that EPMD and the distribution connection dial through."""

from __future__ import annotations

import struct

import pytest

from microscope_jupyter.beam import epmd
from microscope_jupyter.beam.connection import Connection
from microscope_jupyter.beam.ssh import SshTunnel, split_destination
from microscope_jupyter.errors import ConnectRefused, EpmdUnreachable, SSHError


@pytest.mark.parametrize("text, parts", [
    ("deploy@bastion", ("deploy", "bastion", None)),
    ("bastion", (None, "bastion", None)),
    ("deploy@bastion:2222", ("deploy", "bastion", 2222)),
    ("me@corp.example@bastion", ("me@corp.example", "bastion", None)),
])
def test_destinations(text, parts):
    assert split_destination(text) == parts


@pytest.mark.parametrize("text", ["", "deploy@", "deploy@bastion:ssh", "@:22"])
def test_bad_destinations_are_one_line(text):
    with pytest.raises(SSHError, match="expected ssh='user@host'"):
        split_destination(text)


def test_a_proxyjump_in_the_config_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host inner\n    ProxyJump outer\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SSHError, match="ProxyJump") as raised:
        SshTunnel("inner")
    assert "\n" not in str(raised.value)


class Channel:
    """What an SSH channel offers: a socket's calls, no socket options."""

    def __init__(self, reply: bytes):
        self.reply, self.sent, self.closed = reply, b"", False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def sendall(self, data):
        self.sent += data

    def recv(self, n):
        chunk, self.reply = self.reply[:n], self.reply[n:]
        return chunk

    def settimeout(self, seconds):
        pass

    def shutdown(self, how):
        pass

    def close(self):
        self.closed = True


class Tunnel:
    """What an SshTunnel offers the transport: connect and close."""

    def __init__(self, reply: bytes = b"", refuse: bool = False):
        self.reply, self.refuse, self.dialled, self.closed = reply, refuse, [], False

    def connect(self, address, timeout=None):
        self.dialled.append(address)
        if self.refuse:
            raise ConnectionRefusedError(f"deploy@bastion could not connect to {address}")
        return Channel(self.reply)

    def close(self):
        self.closed = True


def test_epmd_and_the_node_are_dialled_through_the_tunnel_which_closes_with_the_connection():
    body = struct.pack(">BBHBBHHH", 119, 0, 40001, 77, 0, 6, 5, 4) + b"demo" + b"\0\0"
    tunnel = Tunnel(body)
    assert epmd.port_please("demo", "10.0.0.5", 4369, connect=tunnel.connect).port == 40001
    conn = Connection.open("10.0.0.5", 40001, "demo@10.0.0.5", 60, tunnel=tunnel)
    assert isinstance(conn.sock, Channel)               # no setsockopt asked of it
    assert tunnel.dialled == [("10.0.0.5", 4369), ("10.0.0.5", 40001)]
    assert not tunnel.closed
    conn.close()
    assert tunnel.closed and conn.sock.closed


def test_what_the_ssh_host_cannot_reach_maps_to_the_usual_errors():
    tunnel = Tunnel(refuse=True)
    with pytest.raises(EpmdUnreachable, match="deploy@bastion could not connect"):
        epmd.names("10.0.0.5", 4369, connect=tunnel.connect)
    with pytest.raises(ConnectRefused):
        Connection.open("10.0.0.5", 40001, "demo@10.0.0.5", 60, tunnel=tunnel)

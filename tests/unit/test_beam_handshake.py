"""Handshake v6 against scripted fake peers: every way it can go wrong."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading

import pytest

from microscope_jupyter.beam.connection import Connection
from microscope_jupyter.beam.handshake import (MANDATORY_25, OUR_FLAGS, Flags, client_handshake,
                                               digest, flag_names)
from microscope_jupyter.errors import AuthError, HandshakeError

COOKIE = "fake-peer-cookie"


def frame16(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def recv16(conn: socket.socket) -> bytes:
    size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
    return conn.recv(size, socket.MSG_WAITALL)


class FakePeer:
    """Accepts one connection and runs ``script(conn)`` on it."""

    def __init__(self, script):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.seen: dict = {}
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script):
        conn, _ = self.server.accept()
        with conn:
            try:
                script(conn, self.seen)
            except (OSError, struct.error):
                pass  # the client hung up, as it should in the error cases

    def handshake(self, cookie=COOKIE):
        conn = Connection.open("127.0.0.1", self.port, "fake@127.0.0.1", 60)
        conn.sock.settimeout(5)
        try:
            return client_handshake(conn, "microscope_t@127.0.0.1", cookie, 1234, "fake@127.0.0.1")
        finally:
            conn.close()


def honest_peer(flags=MANDATORY_25 | Flags.DIST_MONITOR, status=b"ok", challenge=987654321,
                ack_cookie=COOKIE):
    def script(conn, seen):
        name_msg = recv16(conn)
        seen["send_name"] = name_msg
        conn.sendall(frame16(b"s" + status))
        if status not in (b"ok", b"ok_simultaneous"):
            return
        name = b"fake@127.0.0.1"
        conn.sendall(frame16(b"N" + struct.pack(">QIIH", flags, challenge, 7, len(name)) + name))
        reply = recv16(conn)
        seen["reply"] = reply
        their_challenge = struct.unpack(">I", reply[1:5])[0]
        if reply[5:] != digest(challenge, COOKIE):
            return  # a real node just closes on a bad digest
        conn.sendall(frame16(b"a" + digest(their_challenge, ack_cookie)))
    return script


def test_successful_handshake_and_what_we_sent():
    peer = FakePeer(honest_peer())
    info = peer.handshake()
    assert info.name == "fake@127.0.0.1" and info.creation == 7
    sent = peer.seen["send_name"]
    assert sent[:1] == b"N"
    flags, creation, nlen = struct.unpack(">QIH", sent[1:15])
    assert flags == OUR_FLAGS and creation == 1234
    assert sent[15:] == b"microscope_t@127.0.0.1"
    assert not flags & Flags.PUBLISHED, "we must be a hidden node"
    assert not flags & (Flags.DIST_HDR_ATOM_CACHE | Flags.FRAGMENTS)
    assert peer.seen["reply"][5:] == hashlib.md5(COOKIE.encode() + b"987654321").digest()


def test_wrong_cookie_is_an_auth_error():
    peer = FakePeer(honest_peer())
    with pytest.raises(AuthError, match="rejected the cookie"):
        peer.handshake(cookie="wrong")


def test_peer_with_other_cookie_in_ack():
    peer = FakePeer(honest_peer(ack_cookie="something-else"))
    with pytest.raises(AuthError, match="different cookie"):
        peer.handshake()


def test_missing_flags_are_named():
    peer = FakePeer(honest_peer(flags=MANDATORY_25 & ~Flags.MAP_TAG & ~Flags.UTF8_ATOMS))
    with pytest.raises(HandshakeError) as info:
        peer.handshake()
    assert set(info.value.missing_flags) == {"MAP_TAG", "UTF8_ATOMS", "DIST_MONITOR"}
    assert "MAP_TAG" in str(info.value) and "OTP 25" in str(info.value)


def test_digest_flag_stands_for_the_mandatory_set():
    peer = FakePeer(honest_peer(flags=Flags.MANDATORY_25_DIGEST | Flags.HANDSHAKE_23))
    assert peer.handshake().name == "fake@127.0.0.1"


@pytest.mark.parametrize("status, fragment", [
    (b"not_allowed", "does not allow connections"),
    (b"alive", "already has a connection"),
    (b"nok", "try again"),
])
def test_refusal_statuses(status, fragment):
    peer = FakePeer(honest_peer(status=status))
    with pytest.raises(HandshakeError, match=fragment):
        peer.handshake()


def test_something_that_is_not_an_erlang_node():
    def http_server(conn, seen):
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    peer = FakePeer(http_server)
    with pytest.raises(HandshakeError, match="Erlang distribution port"):
        peer.handshake()


def test_peer_that_says_nothing_times_out_cleanly():
    def silent(conn, seen):
        conn.recv(100)
        threading.Event().wait(10)

    peer = FakePeer(silent)
    conn = Connection.open("127.0.0.1", peer.port, "fake@127.0.0.1", 60)
    conn.sock.settimeout(0.3)
    with pytest.raises(HandshakeError, match="stopped answering"):
        client_handshake(conn, "microscope_t@127.0.0.1", COOKIE, 1, "fake@127.0.0.1")
    conn.close()


def test_flag_names():
    assert flag_names(Flags.MAP_TAG | Flags.V4_NC) == ["MAP_TAG", "V4_NC"]

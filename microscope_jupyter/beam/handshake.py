"""Distribution handshake, version 6 (OTP 23+), client side.

    us                                   them
    send_name   'N' flags creation name  ->
                                         <-  recv_status  's' "ok"
                                         <-  challenge    'N' flags challenge creation name
    reply       'r' our_challenge digest ->
                                         <-  ack          'a' digest

digest = MD5(cookie ++ decimal(challenge)). Handshake frames carry a 2-byte
length. We are a hidden node (no PUBLISHED flag) so we never join the
target's global name space or show up in ``nodes()``. We leave out the atom
cache and fragments: every frame is then one pass-through control message
plus an optional payload, which keeps the reader simple and the decoder the
only place that parses terms.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from dataclasses import dataclass
from typing import Protocol

from ..errors import AuthError, HandshakeError

__all__ = ["Flags", "OUR_FLAGS", "REQUIRED_PEER_FLAGS", "PeerInfo", "client_handshake",
           "flag_names", "digest"]


class Flags:
    PUBLISHED = 0x01
    ATOM_CACHE = 0x02
    EXTENDED_REFERENCES = 0x04
    DIST_MONITOR = 0x08
    FUN_TAGS = 0x10
    DIST_MONITOR_NAME = 0x20
    HIDDEN_ATOM_CACHE = 0x40
    NEW_FUN_TAGS = 0x80
    EXTENDED_PIDS_PORTS = 0x100
    EXPORT_PTR_TAG = 0x200
    BIT_BINARIES = 0x400
    NEW_FLOATS = 0x800
    UNICODE_IO = 0x1000
    DIST_HDR_ATOM_CACHE = 0x2000
    SMALL_ATOM_TAGS = 0x4000
    UTF8_ATOMS = 0x10000
    MAP_TAG = 0x20000
    BIG_CREATION = 0x40000
    SEND_SENDER = 0x80000
    BIG_SEQTRACE_LABELS = 0x100000
    EXIT_PAYLOAD = 0x400000
    FRAGMENTS = 0x800000
    HANDSHAKE_23 = 0x1000000
    UNLINK_ID = 0x2000000
    MANDATORY_25_DIGEST = 0x4000000
    SPAWN = 1 << 32
    NAME_ME = 1 << 33
    V4_NC = 1 << 34
    ALIAS = 1 << 35


# The flags OTP 25 insists on (kernel/include/dist.hrl MANDATORY_DFLAGS_25).
MANDATORY_25 = (Flags.EXTENDED_REFERENCES | Flags.FUN_TAGS | Flags.NEW_FUN_TAGS
                | Flags.EXTENDED_PIDS_PORTS | Flags.EXPORT_PTR_TAG | Flags.BIT_BINARIES
                | Flags.NEW_FLOATS | Flags.UTF8_ATOMS | Flags.MAP_TAG | Flags.BIG_CREATION
                | Flags.HANDSHAKE_23)

# What we offer. OTP 26+ also insists on V4_NC and UNLINK_ID. No PUBLISHED
# (hidden), no DIST_HDR_ATOM_CACHE, no FRAGMENTS, no SPAWN (we run no code
# for the peer).
OUR_FLAGS = (MANDATORY_25 | Flags.MANDATORY_25_DIGEST | Flags.DIST_MONITOR
             | Flags.DIST_MONITOR_NAME | Flags.SMALL_ATOM_TAGS | Flags.SEND_SENDER
             | Flags.BIG_SEQTRACE_LABELS | Flags.EXIT_PAYLOAD | Flags.UNLINK_ID
             | Flags.V4_NC | Flags.ALIAS | Flags.UNICODE_IO)

# What we need from the peer: everything our decoder and control-message
# handling assume. Either the individual OTP 25 bits or the digest bit that
# stands for them.
REQUIRED_PEER_FLAGS = MANDATORY_25 | Flags.DIST_MONITOR


def flag_names(mask: int) -> list[str]:
    return [name for name, value in vars(Flags).items()
            if name.isupper() and value & mask]


def digest(challenge: int, cookie: str) -> bytes:
    return hashlib.md5(cookie.encode("utf-8") + str(challenge).encode("ascii")).digest()


class FrameIO(Protocol):
    """A length-prefixed handshake message each call (the prefix is the transport's)."""

    def send_handshake(self, payload: bytes) -> None: ...
    def recv_handshake(self) -> bytes: ...


@dataclass(frozen=True)
class PeerInfo:
    name: str
    flags: int
    creation: int


def _missing_peer_flags(flags: int) -> int:
    # OTP 25+ may set only the digest bit, which stands for all of MANDATORY_25
    # (and DIST_MONITOR, mandatory since OTP 21).
    if flags & Flags.MANDATORY_25_DIGEST:
        return 0
    return REQUIRED_PEER_FLAGS & ~flags


_STATUS_MESSAGES = {
    "nok": "the node is already setting up a connection to us; try again",
    "not_allowed": "the node does not allow connections from {us} "
                   "(net_kernel:allow/1 or a long/short name mismatch); use the node's name style",
    "alive": "the node already has a connection from a node named {us}; "
             "detach the other session first",
}


def client_handshake(io: FrameIO, our_name: str, cookie: str, creation: int,
                     target: str, flags: int = OUR_FLAGS) -> PeerInfo:
    """Run the v6 handshake over ``io``; return what the peer told us."""
    name = our_name.encode("utf-8")
    io.send_handshake(struct.pack(">cQIH", b"N", flags, creation, len(name)) + name)

    status = _expect(io, b"s", target, "status").decode("latin-1")
    if status not in ("ok", "ok_simultaneous"):
        template = _STATUS_MESSAGES.get(status, "the node answered the handshake with {status!r}")
        raise HandshakeError(f"{target} refused the connection: " +
                             template.format(us=our_name, status=status))

    body = _expect(io, b"N", target, "challenge")
    if len(body) < 18:
        raise HandshakeError(f"{target} sent a truncated challenge; is it an Erlang node?")
    peer_flags, their_challenge, peer_creation, nlen = struct.unpack_from(">QIIH", body, 0)
    peer_name = bytes(body[18:18 + nlen]).decode("utf-8", "replace")

    missing = _missing_peer_flags(peer_flags)
    if missing:
        names = flag_names(missing)
        raise HandshakeError(f"{target} lacks distribution capabilities we need: "
                             f"{', '.join(names)}; it is older than OTP 25, which is not supported",
                             missing_flags=names)

    our_challenge = secrets.randbits(32)
    io.send_handshake(b"r" + struct.pack(">I", our_challenge) + digest(their_challenge, cookie))

    try:
        ack = _expect(io, b"a", target, "challenge ack")
    except HandshakeError as exc:
        if "closed" in str(exc):
            # The peer closes without a word when our digest is wrong.
            raise AuthError(f"{target} rejected the cookie; pass the node's cookie with "
                            "cookie=..., MICROSCOPE_COOKIE or ~/.erlang.cookie") from None
        raise
    if ack != digest(our_challenge, cookie):
        raise AuthError(f"{target} answered with a digest for a different cookie; "
                        "it may not be the node you meant")
    return PeerInfo(peer_name, peer_flags, peer_creation)


def _expect(io: FrameIO, kind: bytes, target: str, what: str) -> bytes:
    try:
        frame = io.recv_handshake()
    except EOFError:
        raise HandshakeError(f"{target} closed the connection during the handshake "
                             f"(waiting for {what}); is that port an Erlang distribution port "
                             "of OTP 25 or later? (A node started with -proto_dist inet_tls "
                             "needs tls=...)") from None
    if not frame or frame[:1] != kind:
        got = frame[:1] if frame else b"nothing"
        raise HandshakeError(f"{target} sent {got!r} where the handshake expects {what}; "
                             "is that port an Erlang distribution port?")
    return frame[1:]

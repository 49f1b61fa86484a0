"""What an OTP message is, from its shape: one answer for every layer above.

    message_kind((Atom("$gen_call"), (pid, tag), Atom("get")))   # "call"
    message_kind((Atom("$gen_cast"), Atom("reset")))             # "cast"
    message_kind((ImproperList((Atom("alias"),), ref), 42))      # "reply"
    message_kind((Atom("io_reply"), ref, Atom("ok")))            # "service_reply"
    message_kind((Atom("update"), 1))                            # "info"

A ``reply`` answers a gen call (``{Ref, Reply}`` or ``{[alias | Ref], Reply}``);
a ``service_reply`` answers an io or code server request. Either is taken
at once by the caller's selective receive, so neither waits in a mailbox.
``may_be_reply`` answers the same question from the encoded bytes, without
decoding, so an index over a million receives stays cheap.
"""

from __future__ import annotations

from typing import Any

from ..beam.terms import Atom, ImproperList, Reference

__all__ = ["message_kind", "is_reply", "may_be_reply"]

_GEN_CALL, _GEN_CAST, _ALIAS = Atom("$gen_call"), Atom("$gen_cast"), Atom("alias")
_SERVICE_TAGS = {Atom("code_server"), Atom("io_reply"), Atom("io_request")}


def message_kind(term: Any) -> str:
    """"call", "cast", "reply", "service_reply" or "info"."""
    if not (isinstance(term, tuple) and term):
        return "info"
    head = term[0]
    if head == _GEN_CALL:
        return "call"
    if head == _GEN_CAST:
        return "cast"
    if isinstance(head, Reference) or (isinstance(head, ImproperList)
                                       and head.items == (_ALIAS,)):
        return "reply"
    if isinstance(head, Atom) and head in _SERVICE_TAGS and len(term) in (2, 3):
        return "service_reply"
    return "info"


def is_reply(term: Any) -> bool:
    """A reply to a call the receiver made itself (gen, io or code server)."""
    return (isinstance(term, tuple) and len(term) in (2, 3)
            and message_kind(term) in ("reply", "service_reply"))


def _atom_spellings(name: bytes) -> tuple[bytes, ...]:
    """Every way ETF writes a short atom: UTF-8 or Latin-1, 1- or 2-byte length."""
    n = bytes([len(name)])
    return (b"w" + n + name, b"s" + n + name, b"v\x00" + n + name, b"d\x00" + n + name)


_ALIAS_HEADS = tuple(b"l\x00\x00\x00\x01" + atom for atom in _atom_spellings(b"alias"))
_SERVICE_HEADS = tuple(atom for name in (b"code_server", b"io_reply", b"io_request")
                       for atom in _atom_spellings(name))


def may_be_reply(payload: bytes) -> bool:
    """False when the encoded term cannot be a reply; True means: decode and ask ``is_reply``."""
    if payload[:2] != b"\x83h" or len(payload) < 4 or payload[2] not in (2, 3):
        return False
    first = payload[3:]
    return ((payload[2] == 2 and first[:1] in (b"Z", b"r")) or first.startswith(_ALIAS_HEADS)
            or first.startswith(_SERVICE_HEADS))

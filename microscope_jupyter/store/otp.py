"""What the OTP protocols look like in a trace: one answer for every layer above.

Messages (``message_kind``, ``is_reply``, ``may_be_reply``, ``call_tag``),
GenServer transitions as the agent's hook reports them (``transition``, and
the placeholders for states it did not copy), and exit reasons (a normal
exit, a call that timed out, a callback with no clause for its message).

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

import functools
from typing import Any

from ..beam.etf import decode_from
from ..beam.terms import Atom, ImproperList, Pid, Reference
from ..render.elixir import render

__all__ = ["message_kind", "is_reply", "may_be_reply", "call_tag", "TIMEOUT_PAYLOADS",
           "CONTINUE_HEADS", "TIMEOUT_ATOMS", "GEN_CALL_HEADS", "DOWN_HEADS", "SYSTEM_HEADS", "ALIAS_HEADS",
           "transition", "STATE_UNKNOWN", "STATE_LARGE", "ABSENT", "map_sizes", "state_recorded",
           "normal_exit", "is_call_timeout", "call_target", "unmatched_callback", "crash_site",
           "MESSAGE_ARG", "call_tag_bytes", "reply_tag_bytes", "term_bytes_at", "message_shape",
           "state_heading", "payload_shape"]

# -- messages

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


# How a state event's message starts (after the event tuple's own header):
# {continue, _} (a handle_continue) and the bare atom timeout.
CONTINUE_HEADS = tuple(b"h\x02" + atom for atom in _atom_spellings(b"continue"))
# How a payload starts when it is a gen call ({'$gen_call', From, Request}).
GEN_CALL_HEADS = tuple(b"\x83h\x03" + atom for atom in _atom_spellings(b"$gen_call"))
# ...and a gen call or cast inside another term (a state event's message).
GEN_CALL_BODIES = tuple(head[1:] for head in GEN_CALL_HEADS)
GEN_CAST_BODIES = tuple(b"h\x02" + atom for atom in _atom_spellings(b"$gen_cast"))
# {'DOWN', Ref, Type, Object, Info} and sys's {system, From, Request}.
DOWN_HEADS = tuple(b"\x83h\x05" + atom for atom in _atom_spellings(b"DOWN"))
SYSTEM_HEADS = tuple(b"\x83h\x03" + atom for atom in _atom_spellings(b"system"))
TIMEOUT_ATOMS = _atom_spellings(b"timeout")
ALIAS_HEADS = tuple(b"l\x00\x00\x00\x01" + atom for atom in _atom_spellings(b"alias"))
_SERVICE_HEADS = tuple(atom for name in (b"code_server", b"io_reply", b"io_request")
                       for atom in _atom_spellings(name))


def may_be_reply(payload: bytes) -> bool:
    """False when the encoded term cannot be a reply; True means: decode and ask ``is_reply``."""
    if payload[:2] != b"\x83h" or len(payload) < 4 or payload[2] not in (2, 3):
        return False
    first = payload[3:]
    return ((payload[2] == 2 and first[:1] in (b"Z", b"r")) or first.startswith(ALIAS_HEADS)
            or first.startswith(_SERVICE_HEADS))


# term_to_binary(timeout), however the node spells the atom: a `receive ... after`
# that fired looks, in the trace, like the arrival of this message.
TIMEOUT_PAYLOADS = frozenset(b"\x83" + a for a in _atom_spellings(b"timeout"))


def call_tag_bytes(payload: bytes) -> bytes | None:
    """The reply tag of a gen call, as the bytes it is encoded with, read off
    the payload without decoding the request; None if it is no gen call.
    A reply to it, ``{Tag, Reply}``, starts with the same bytes at offset 3
    (see ``reply_tag_bytes``): calls and replies pair by bytes."""
    if not payload.startswith(GEN_CALL_HEADS):
        return None
    tag = payload[3]
    atom = {119: 2 + payload[4], 115: 2 + payload[4]}.get(tag)
    if atom is None:   # 118 ATOM_UTF8 / 100 ATOM: a two-byte length
        atom = 3 + int.from_bytes(payload[4:6], "big")
    start = 3 + atom
    if payload[start:start + 2] != b"h\x02":
        return None
    return term_bytes_at(payload, _term_end(payload, start + 2))


def reply_tag_bytes(payload: bytes) -> bytes | None:
    """The tag of a ``{Tag, Reply}`` message as its bytes (any 2-tuple's first element)."""
    if payload[:3] != b"\x83h\x02":
        return None
    return term_bytes_at(payload, 3)


def _term_end(payload: bytes, i: int) -> int:
    """Where the term at ``i`` ends: pids, references, atoms and an alias list
    by their lengths alone (what a call's From holds); the rest decoded."""
    tag = payload[i]
    if tag in (119, 115):                         # SMALL_ATOM(_UTF8)
        return i + 2 + payload[i + 1]
    if tag in (118, 100):                         # ATOM(_UTF8)
        return i + 3 + int.from_bytes(payload[i + 1:i + 3], "big")
    if tag == 88:                                 # NEW_PID_EXT: node, id, serial, creation
        return _term_end(payload, i + 1) + 12
    if tag == 103:                                # PID_EXT
        return _term_end(payload, i + 1) + 9
    if tag in (90, 114):                          # NEWER_/NEW_REFERENCE_EXT
        words = int.from_bytes(payload[i + 1:i + 3], "big")
        return _term_end(payload, i + 3) + (4 if tag == 90 else 1) + 4 * words
    if tag in (104, 105):                         # SMALL_/LARGE_TUPLE_EXT: each element
        arity, j = (payload[i + 1], i + 2) if tag == 104 else \
            (int.from_bytes(payload[i + 1:i + 5], "big"), i + 5)
        for _ in range(arity):
            j = _term_end(payload, j)
        return j
    if tag == 108:                                # LIST_EXT: [alias | Ref] since OTP 24
        j = i + 5
        for _ in range(int.from_bytes(payload[i + 1:i + 5], "big") + 1):   # elements, tail
            j = _term_end(payload, j)
        return j
    return i + decode_from(b"\x83" + payload[i:])[1] - 1


def term_bytes_at(payload: bytes, start: int) -> bytes:
    """The bytes of the term that starts at ``start`` of an encoded payload."""
    return payload[start:_term_end(payload, start)]


def message_shape(message: Any) -> str:
    """A message's shape: its tag and arity, ``{:tick, _}``; gen calls and casts unwrapped."""
    if isinstance(message, tuple) and message and message[0] in (_GEN_CAST, _GEN_CALL):
        message = message[-1]
    if isinstance(message, tuple) and message and isinstance(message[0], Atom):
        return "{" + ", ".join([render(message[0], "elixir", 40)] + ["_"] * (len(message) - 1)) + "}"
    return render(message, "elixir", 40) if isinstance(message, Atom) else type(message).__name__


def state_heading(payload: bytes, statem: bool) -> tuple[str, str]:
    """(callback, message shape) of a state event's payload, read off its first
    element (the message) without decoding the states: what a comparison of
    two recordings lines up, at a million transitions. ``statem``: the
    process is a gen_statem (its transitions' last element says so)."""
    start = 3                                  # after 131, SMALL_TUPLE_EXT, arity
    body = payload[start:start + 14]
    if statem:
        callback, message = "handle_event", _element(payload, start, 1, 2)
    elif body.startswith(GEN_CALL_BODIES):
        callback, message = "handle_call", _element(payload, start, 2, 3)
    elif body.startswith(GEN_CAST_BODIES):
        callback, message = "handle_cast", _element(payload, start, 1, 2)
    elif body.startswith(CONTINUE_HEADS):
        callback, message = "handle_continue", _element(payload, start, 1, 2)
    else:
        callback, message = "handle_info", start
    if message is None:
        return callback, message_shape(_decode(payload, start))
    return callback, _shape_at(payload, message)


def payload_shape(payload: bytes) -> str:
    """``message_shape`` of an encoded message, read off its bytes as ``state_heading`` reads."""
    body = payload[1:15]
    at = (_element(payload, 1, 2, 3) if body.startswith(GEN_CALL_BODIES) else
          _element(payload, 1, 1, 2) if body.startswith(GEN_CAST_BODIES) else 1)
    return _shape_at(payload, 1 if at is None else at) if payload else "none"


def _element(payload: bytes, start: int, index: int, arity: int) -> int | None:
    """Where element ``index`` of the tuple at ``start`` begins; None if no such tuple."""
    if payload[start] != 104 or payload[start + 1] != arity:
        return None
    j = start + 2
    for _ in range(index):
        j = _term_end(payload, j)
    return j


def _shape_at(payload: bytes, start: int) -> str:
    """``message_shape`` of the term at ``start``, decoding only its tag atom."""
    tag = payload[start]
    if tag in (104, 105):
        arity, j = (payload[start + 1], start + 2) if tag == 104 else \
            (int.from_bytes(payload[start + 1:start + 5], "big"), start + 5)
        if not (arity and payload[j] in (119, 115, 118, 100)):
            return "tuple"                         # as message_shape names it
        shape = _tuple_shape(arity, payload[j:_term_end(payload, j)])
        if shape is not None:
            return shape
    elif tag in (119, 115, 118, 100):
        return _atom_shape(payload[start:_term_end(payload, start)])
    return message_shape(_decode(payload, start))


# Shapes repeat: a million transitions have a few dozen. By the tag atom's bytes.
@functools.lru_cache(maxsize=4096)
def _tuple_shape(arity: int, atom: bytes) -> str | None:
    first = decode_from(b"\x83" + atom)[0]
    if first in (_GEN_CAST, _GEN_CALL):          # those unwrap: the whole term's shape
        return None
    return "{" + ", ".join([render(first, "elixir", 40)] + ["_"] * (arity - 1)) + "}"


@functools.lru_cache(maxsize=4096)
def _atom_shape(atom: bytes) -> str:
    return render(decode_from(b"\x83" + atom)[0], "elixir", 40)


def _decode(payload: bytes, start: int, end: int | None = None) -> Any:
    return decode_from(b"\x83" + payload[start:end])[0]


def call_tag(term):
    """The reply tag of a gen call message {'$gen_call', {From, Tag}, Request}."""
    if (isinstance(term, tuple) and len(term) == 3 and term[0] == Atom("$gen_call")
            and isinstance(term[1], tuple) and len(term[1]) == 2):
        return term[1][1]
    return None



# -- GenServer transitions

# Where a state transition holds one of these instead of a state, the agent
# did not record it: before the hook had a base (UNKNOWN), or too large to
# copy out of the process on every callback (LARGE; its changes are kept).
STATE_UNKNOWN = Atom("$microscope_unknown")
STATE_LARGE = Atom("$microscope_large")
ABSENT = Atom("$microscope_absent")   # in a change: the key went away
_MAP = Atom("$microscope_map")        # in a change: a big map, {_, size before, size after}


def map_sizes(value: Any) -> tuple[int, int] | None:
    """(size before, size after) where a change holds a big map the hook did
    not walk (a cache gaining a key per call costs it nothing); else None."""
    if isinstance(value, tuple) and len(value) == 3 and value[0] == _MAP:
        return int(value[1]), int(value[2])
    return None


def state_recorded(state: Any) -> bool:
    """False for the placeholders of a state the agent did not copy."""
    return not (isinstance(state, Atom) and state in (STATE_UNKNOWN, STATE_LARGE))


def transition(term: Any) -> dict:
    """{Msg, Before, After, Reply, Kind[, Extra]} from the sys hook, unwrapped for people.

    Extra (agents from version 10): ``n`` (the callback's number since the
    hook went in), ``tool`` (ns the hook itself took), ``changes`` (the
    fields that changed, as the hook found them by identity, or None).
    """
    extra: dict = {}
    if isinstance(term, tuple) and len(term) == 6 and isinstance(term[5], dict):
        extra = {str(k): v for k, v in term[5].items()}
        term = term[:5]
    try:
        message, before, after, reply, kind = term
    except (TypeError, ValueError):
        return {"callback": None, "message": term, "before": None, "after": None, "reply": None,
                "tool_ns": 0, "changes": None}
    callback, statem = "handle_info", None
    if kind == Atom("gen_statem"):
        # {EventType, Content}; before/after are the state names. Agents from
        # v31 report {statem, consume | postpone, FromMailbox, [{From, Reply}]}.
        callback, event_type = "handle_event", None
        if isinstance(message, tuple) and len(message) == 2:
            event_type, message = message
        how, mailbox, replies = ((str(reply[1]), reply[2] is True, reply[3])
                                 if isinstance(reply, tuple) and len(reply) == 4 else
                                 ("consume", None, []))
        statem = {"event_type": event_type, "how": how, "from_mailbox": mailbox,
                  "replies": replies}
        caller = event_type[1] if isinstance(event_type, tuple) and event_type[0] == Atom("call") else None
        reply = next((r for f, r in replies if f == caller), None)
    elif isinstance(message, tuple) and message:
        tag = message[0]
        if tag == Atom("$gen_call") and len(message) == 3:
            callback, message = "handle_call", message[2]
        elif tag == Atom("$gen_cast") and len(message) == 2:
            callback, message = "handle_cast", message[1]
        elif tag == Atom("continue") and len(message) == 2:
            callback, message = "handle_continue", message[1]
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == Atom("reply"):
        reply = reply[1]
    elif reply == Atom("noreply"):
        reply = None
    changes = extra.get("changes")
    return {"callback": callback, "message": message, "before": before, "after": after,
            "reply": reply, "tool_ns": int(extra.get("tool", 0) or 0),
            "changes": None if not isinstance(changes, tuple) else _changes(changes),
            **({"statem": statem} if statem else {})}


def _changes(found: tuple) -> list[tuple[tuple, Any]]:
    """[(path, value)] from the hook's ([{Path, Value}], Complete); a path is a
    tuple of ("key", map key) and ("elem", 1-based position); value STATE_LARGE when too
    large to copy, ``Atom('$microscope_absent')`` for a key that went away."""
    items, _complete = found
    out = []
    for path, value in items if isinstance(items, list) else []:
        out.append((tuple((str(step[0]), step[1]) for step in path), value))
    return out



# -- exit reasons

_NORMAL = {Atom("normal"), Atom("shutdown")}


def normal_exit(reason) -> bool:
    """An exit that is no failure: normal, shutdown, {shutdown, _}, or a
    result carried out by the exit itself: erpc's worker ends with
    ``{Ref, return, Result}`` and OTP 25's ``gen_server:multi_call``
    middleman with ``{self(), Tag, Result}``."""
    if isinstance(reason, Atom) and reason in _NORMAL:
        return True
    if isinstance(reason, tuple) and len(reason) == 3 and (
            (isinstance(reason[0], Reference) and reason[1] == Atom("return"))
            or (isinstance(reason[0], Pid) and isinstance(reason[1], Reference))):
        return True
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == Atom("shutdown")


def is_call_timeout(reason) -> bool:
    # exit reason {timeout, {gen_server, call, [...]}} (also GenServer.call in Elixir)
    return (isinstance(reason, tuple) and len(reason) == 2 and reason[0] == Atom("timeout")
            and isinstance(reason[1], tuple) and len(reason[1]) == 3
            and reason[1][1] == Atom("call"))


def call_target(reason) -> Any:
    """The server a caller called, when ``reason`` is the exit of a gen call
    (``{Why, {Module, call, [Server | _]}}``: a timeout, or the server's own
    crash reason when it died with the call unanswered); else None."""
    if (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], tuple)
            and len(reason[1]) == 3 and reason[1][1] == Atom("call")
            and isinstance(reason[1][2], list) and reason[1][2]):
        return reason[1][2][0]
    return None


# Callbacks that take a message, and where the message is among their arguments.
MESSAGE_ARG = {("handle_info", 2): 0, ("handle_cast", 2): 0, ("handle_call", 3): 0,
                ("handle_event", 4): 1}
_FUNCTION_CLAUSE_STRUCT = Atom("Elixir.FunctionClauseError")


def unmatched_callback(reason):
    """(module, function, args, location) when ``reason`` is a callback's function_clause.

    The VM raises ``function_clause`` with the actual arguments as the top
    frame of the stacktrace; an Elixir ``raise FunctionClauseError`` exits
    with the exception struct instead of the atom.
    """
    if not (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)
            and reason[1]):
        return None
    error, (top, *_) = reason
    is_clause = error == Atom("function_clause") or (
        isinstance(error, dict) and error.get(Atom("__struct__")) == _FUNCTION_CLAUSE_STRUCT)
    if not (is_clause and isinstance(top, tuple) and len(top) == 4 and isinstance(top[2], list)):
        return None
    module, function, args, location = top
    if (str(function), len(args)) not in MESSAGE_ARG:
        return None
    return module, function, args, location


_CALLBACK_KINDS = {"handle_call": "call", "handle_cast": "cast", "handle_info": "info",
                   "handle_event": None}


def crash_site(reason):
    """(error, frame, message kind) when ``reason`` is an exception raised in a
    message callback (``{Error, [{M, F, A, Location} | _]}`` with a frame of
    handle_call/cast/info/event): which kind of message it was handling
    ("call", "cast", "info", or None for gen_statem's handle_event); else None."""
    if not (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)):
        return None
    for frame in reason[1][:8]:
        if not (isinstance(frame, tuple) and len(frame) == 4):
            return None
        if str(frame[1]) in _CALLBACK_KINDS:
            return reason[0], frame, _CALLBACK_KINDS[str(frame[1])]
    return None


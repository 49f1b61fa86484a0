"""Calls a caller stopped waiting for: the gen calls that timed out, read
from what the caller did, not from how it ended.

    for wait in gave_up_waiting(facts): wait.caller, wait.callee, wait.waited_ms

A caller blocked in ``gen_server:call`` (or ``gen_statem:call``, or
``receive ... after`` on a request it sent) does nothing until the answer
comes or its timeout fires; the trace shows the fired ``after`` as a
``timeout`` event. So a gen call whose caller's very next act is such an
event is a call it gave up on, whether or not it then crashed (a caller
that catches the exit lives on, and only this shows its timeout). The reply,
found by its tag, tells whether the callee answered later (a late reply) or
never.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.otp import GEN_CALL_HEADS, call_tag_bytes, reply_tag_bytes
from ..store.schema import KIND_CODES
from .facts import Facts
from .lifecycle import acts_of, prev_act, receives_of

__all__ = ["GaveUp", "gave_up_waiting", "reply_to", "waited_out"]

_TIMEOUT, _SEND = KIND_CODES["timeout"], KIND_CODES["send"]


@dataclass
class GaveUp:
    call_seq: int
    caller: str
    callee: str | None       # the pid it called (a name resolved to its holder then)
    tag: bytes
    gave_up_seq: int          # the caller's timeout event
    waited_ms: float
    reply_seq: int | None     # the callee's reply, if it ever sent one
    relayed: bool = False     # not a timeout of its own: the callee gave up below and
                              # answered at once, passing the failure up (see timeouts)


def gave_up_waiting(facts: Facts) -> list[GaveUp]:
    return facts.cached("gave up waiting", lambda: _build(facts))


def _build(facts: Facts) -> list[GaveUp]:
    store = facts.store
    raw = store.raw()
    timeouts = np.flatnonzero(raw.kind == _TIMEOUT)
    if not len(timeouts):
        return []
    texts = store.id_texts()
    names = store.names()
    received = receives_of(facts)
    out = []
    for seq in timeouts.tolist():
        gid = int(raw.pid[seq])
        before = prev_act(facts, gid, seq)
        if before is None or raw.kind[before] != _SEND:
            continue
        payload = raw.payload(before)
        if not payload.startswith(GEN_CALL_HEADS):
            continue
        tag = call_tag_bytes(payload)
        if tag is None or _answered(raw, received.get(gid), tag, before, seq):
            continue    # the answer came first: that timeout ended another wait
        callee = _callee(store, raw, texts, names, before)
        reply = reply_to(facts, callee, tag, before) if callee else None
        out.append(GaveUp(before, texts[gid], callee, tag, seq,
                          (int(raw.ts_ns[seq]) - int(raw.ts_ns[before])) / 1e6, reply))
    return out


def _answered(raw, receives, tag: bytes, start: int, end: int) -> bool:
    """Whether a reply tagged ``tag`` reached the caller between two of its seqs."""
    if receives is None:
        return False
    window = receives[np.searchsorted(receives, start):np.searchsorted(receives, end)]
    for seq in window.tolist():
        payload = raw.payload(seq)
        if payload[:3] == b"\x83h\x02" and reply_tag_bytes(payload) == tag:
            return True
    return False


def _callee(store, raw, texts, names, seq: int) -> str | None:
    peer = int(raw.peer[seq])
    text = texts[peer] if peer > 0 else None
    if not isinstance(text, str):
        return None
    if text.startswith("<"):
        return text
    node = store.frame()["node"].iloc[seq]
    holder = names.holder_at(text, seq, str(node))
    return texts[holder] if holder > 0 else None


def reply_to(facts: Facts, callee: str, tag: bytes, after: int) -> int | None:
    """The seq of ``callee``'s first send after ``after`` that answers the call
    tagged ``tag`` (``{Tag, Reply}``), or None."""
    found = [seq for seq in _replies_of(facts, callee).get(tag, ()) if seq > after]
    return found[0] if found else None


def _replies_of(facts: Facts, callee: str) -> dict[bytes, list[int]]:
    """tag -> seqs of the ``{Tag, Reply}`` messages ``callee`` sent: one pass
    over its sends, kept for every call to it that timed out."""
    def build() -> dict[bytes, list[int]]:
        try:
            gids = facts.pids(callee)
        except Exception:   # a pid the recording never saw act
            return {}
        raw = facts.store.raw()
        acts = acts_of(facts)
        out: dict[bytes, list[int]] = {}
        for gid in gids:
            seqs = acts.get(gid)
            if seqs is None:
                continue
            for seq in seqs[raw.kind[seqs] == _SEND].tolist():
                payload = raw.payload(seq)
                if payload[:3] == b"\x83h\x02" and (tag := reply_tag_bytes(payload)):
                    out.setdefault(tag, []).append(seq)
        return out
    return facts.cached(f"replies of {callee}", build)


def waited_out(facts: Facts, caller_gid: int, sent_seq: int) -> int | None:
    """The seq of the timeout that ended ``caller_gid``'s wait for what it sent
    at ``sent_seq`` (its very next act), or None if it did something else first."""
    acts = acts_of(facts).get(caller_gid)
    if acts is None:
        return None
    k = int(np.searchsorted(acts, sent_seq, side="right"))
    if k < len(acts) and facts.store.raw().kind[acts[k]] == _TIMEOUT:
        return int(acts[k])
    return None

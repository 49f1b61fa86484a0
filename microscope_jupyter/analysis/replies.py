"""Which gen calls got their reply: calls and replies paired by their tags,
as bytes. What the detectors of calls left unanswered read (a ``{noreply, S}``
that never replies, a request postponed for good).

    calls = call_receives(facts, gid)     # (receive seqs, tags) of gen calls gid took
    answered(facts, [tag, ...])           # tag -> seq of the first reply carrying it

A call is ``{'$gen_call', {Pid, Tag}, Request}``; its reply, ``{Tag, Reply}``,
starts with the same bytes (``store.otp.call_tag_bytes``, ``reply_tag_bytes``),
sent by whoever answers and received by the caller: a reply counts whether the
recording saw it leave (a traced server, or a worker it handed ``From`` to)
or arrive (a traced caller). Nothing is decoded.

Only the tags asked about are looked for: every reply's tag bytes are read
and hashed at once, in numpy (the whole tag: OTP 28's references share
their last bytes), and the few rows that match are compared in full. A recording of a million calls and
replies costs a few column reads, not a loop over its replies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..store.columns import starts_with
from ..store.otp import GEN_CALL_HEADS, call_tag_bytes, is_call_timeout, term_bytes_at
from ..store.schema import ACTS, KIND_CODES
from .facts import Facts

__all__ = ["gen_call_rows", "reply_rows", "call_receives", "answered", "request_bytes",
           "gave_up_waiting", "leading_bytes",
           "REPLY_FIRST"]

_RECEIVE, _SEND = KIND_CODES["receive"], KIND_CODES["send"]
_TIMEOUT, _EXIT = KIND_CODES["timeout"], KIND_CODES["exit"]
# The first bytes of a reply: a 2-tuple headed by a reference (Z, r) or an
# [alias | Ref] list (l): what a gen reply looks like (OTP 24+ sends the latter).
REPLY_FIRST = np.frombuffer(b"Zrl", dtype=np.uint8)
_CALL_WIDTH = max(len(h) for h in GEN_CALL_HEADS)     # enough to tell a gen call


def leading_bytes(raw, rows: np.ndarray, width: int, offset: Any = 0) -> np.ndarray:
    """``width`` bytes of each row's payload from ``offset`` (one for all, or one
    per row), zero-padded: a narrow ``RawColumns.heads``, for the many rows
    where a tag and an arity decide."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), width), dtype=np.uint8)
    if not len(rows):
        return out
    start = np.broadcast_to(np.asarray(offset, dtype=np.int64), rows.shape)
    span = np.arange(width, dtype=np.int64)
    chunks = raw.chunk[rows]
    order = np.argsort(chunks, kind="stable")
    bounds = np.flatnonzero(np.diff(chunks[order])) + 1
    for at in np.split(order, bounds):
        buf = np.frombuffer(raw.blobs[int(chunks[at[0]])], dtype=np.uint8)
        if not len(buf):
            continue
        offs = raw.pay_off[rows[at]].astype(np.int64) + start[at]
        lens = raw.pay_len[rows[at]].astype(np.int64) - start[at]
        index = offs[:, None] + span[None, :]
        inside = span[None, :] < lens[:, None]
        out[at] = np.where(inside, buf[np.minimum(index, len(buf) - 1)], 0)
    return out


def gen_call_rows(facts: Facts) -> np.ndarray:
    """The receive seq of every gen call a traced process received (memoised)."""
    def build() -> np.ndarray:
        raw = facts.store.raw()
        rows = np.flatnonzero(raw.kind == _RECEIVE)
        return rows[starts_with(leading_bytes(raw, rows, _CALL_WIDTH), GEN_CALL_HEADS)]
    return facts.cached("gen call receives", build)


def call_receives(facts: Facts, gid: int) -> tuple[np.ndarray, list]:
    """(receive seqs, reply tags as bytes) of the gen calls process ``gid`` received."""
    raw = facts.store.raw()
    calls = gen_call_rows(facts)
    mine = calls[raw.pid[calls] == gid]
    return mine, [call_tag_bytes(p) for p in raw.payloads(mine)]


def reply_rows(facts: Facts) -> np.ndarray:
    """Every send and receive shaped like a reply ({Ref | [alias | Ref], _}) (memoised)."""
    def build() -> np.ndarray:
        raw = facts.store.raw()
        rows = np.flatnonzero((raw.kind == _RECEIVE) | (raw.kind == _SEND))
        heads = leading_bytes(raw, rows, 4)
        return rows[(heads[:, 0] == 0x83) & (heads[:, 1] == ord("h")) & (heads[:, 2] == 2)
                    & np.isin(heads[:, 3], REPLY_FIRST)]
    return facts.cached("reply rows", build)


def answered(facts: Facts, tags: list) -> dict[bytes, int]:
    """tag -> the seq of the first reply that carries it, for those of ``tags``
    that any reply in the recording carries."""
    wanted = {t for t in tags if t}
    if not wanted:
        return {}
    raw = facts.store.raw()
    rows = reply_rows(facts)
    out: dict[bytes, int] = {}
    for length in sorted({len(t) for t in wanted}):
        # The whole tag, hashed in numpy: OTP 28's references share their last
        # bytes, so no suffix of a tag tells it apart.
        mine = [t for t in wanted if len(t) == length]
        fits = rows[raw.pay_len[rows] >= 3 + length]
        keys = _row_keys(leading_bytes(raw, fits, length, 3))
        hit = np.isin(keys, _row_keys(np.frombuffer(b"".join(mine), dtype=np.uint8)
                                      .reshape(-1, length)))
        for seq in fits[hit].tolist():
            tag = raw.payload(seq)[3:3 + length]
            if tag in wanted and tag not in out:
                out[tag] = seq
    return out


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per row of bytes: equal rows, equal keys."""
    key = np.full(len(rows), rows.shape[1], dtype=np.uint64)
    for column in range(rows.shape[1]):
        key = (key ^ rows[:, column].astype(np.uint64)) * np.uint64(0x100000001B3)
    return key.view(np.int64)


def request_bytes(payload: bytes) -> bytes | None:
    """The request of a gen call's payload, as its bytes (equal requests, equal
    bytes), without decoding it; None if it is no gen call."""
    if not payload.startswith(GEN_CALL_HEADS):
        return None
    at = 3 + len(term_bytes_at(payload, 3))          # after the '$gen_call' atom
    at += len(term_bytes_at(payload, at))            # after From
    return payload[at:]


def gave_up_waiting(facts: Facts, call: Any, seq: int) -> bool:
    """Whether the caller of the gen call ``call`` (a decoded ``$gen_call``
    message received at ``seq``) gave up on it: the first thing it did after
    was a ``receive ... after`` that fired (the call's own timeout), or it
    exited of a call timeout. False for a caller outside the recording."""
    if not (isinstance(call, tuple) and len(call) == 3 and isinstance(call[1], tuple)
            and call[1]):
        return False
    try:
        ids = facts.pids(str(call[1][0]))
    except Exception:       # a caller the recording never saw act
        return False
    raw = facts.store.raw()
    by_gid = facts.cached("processes by id",
                          lambda: {p.gid: p for p in facts.history().processes()})
    for gid in ids:
        proc = by_gid.get(gid)
        if proc is None or not len(proc.event_seqs):
            continue
        later = proc.event_seqs[proc.event_seqs > seq]
        acts = later[ACTS[raw.kind[later]]]
        if not len(acts):
            continue
        first = int(acts[0])
        if raw.kind[first] == _TIMEOUT:
            return True
        if raw.kind[first] == _EXIT and is_call_timeout(raw.term(first)):
            return True
    return False

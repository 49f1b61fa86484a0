"""How each message a process received left its queue: what time travel's
mailbox, its count and the lost-message findings read.

    handled, direct = taken(raw, proc, recvs, handler, demonitored)

``handled`` holds, per receive, the seq at which the message left the queue
(``NEVER`` while it was still there when the recording ended); ``direct``
the receives that left as they arrived, which a GenServer's count takes off
besides its callbacks. In order of the rules:

- a callback handled it: paired by bytes, first in first out, in time order;
- a reply to a call the process made (gen, erpc, Task, io and code server
  replies: a tuple headed by a reference or an alias) left when the call's
  selective receive took it: at the ``demonitor`` of its reference that
  follows (gen calls and ``Task.await`` remove the call's monitor right
  after the receive), else at once. The node's own count, sampled while a
  callback waits on three Tasks, holds their replies until then;
- a ``DOWN`` whose monitor the process removed with ``demonitor`` left at
  the demonitor: ``flush`` takes it out of the queue, and no event shows it
  (every gen call, ``Task.await`` and ``Task.yield`` do this);
- a GenServer's system message (``sys:get_state``, ``sys:statistics``) left
  at once: sys handles it between callbacks, with no callback of its own;
- a GenServer's ``DOWN`` that came in while a callback ran, and that no
  callback handled, was taken inside that callback (a selective receive);
- a GenServer's message that a later callback overtook left some other way
  (first in first out), at once;
- any other message of a GenServer stays until it exits (unread) or the
  recording ends;
- a plain process, with no callbacks to go by, takes a message by its next
  act (a send, a link, an exit).
"""

from __future__ import annotations

import numpy as np

from ..store.otp import ALIAS_HEADS, DOWN_HEADS, SYSTEM_HEADS, is_reply, may_be_reply, term_bytes_at
from ..store.schema import ACTS

__all__ = ["taken", "NEVER", "down_ref", "ref_bytes", "removed_refs"]

NEVER = np.iinfo(np.int64).max


def down_ref(payload: bytes) -> bytes | None:
    """The monitor reference of a ``{'DOWN', Ref, Type, Object, Info}``, as its
    bytes (the same bytes a demonitor event carries, after the version byte)."""
    for head in DOWN_HEADS:
        if payload.startswith(head):
            return term_bytes_at(payload, len(head))
    return None


def ref_bytes(payload: bytes) -> bytes:
    """A demonitor event's reference as bytes comparable with ``down_ref``'s."""
    return payload[1:]


def removed_refs(raw, removed: np.ndarray) -> dict[int, dict[bytes, int]]:
    """Per process, the monitors it removed at ``removed`` (seqs of ``demonitor``
    events, in order): their reference bytes (``ref_bytes``) -> the seq."""
    out: dict[int, dict[bytes, int]] = {}
    for seq in removed.tolist():
        out.setdefault(int(raw.pid[seq]), {})[ref_bytes(raw.payload(seq))] = seq
    return out


def taken(raw, proc, recvs: np.ndarray, handler: np.ndarray,
          demonitored: dict[bytes, int]) -> tuple[np.ndarray, list[int]]:
    """``handled`` and ``direct`` for the receives ``recvs`` (seq order) of
    ``proc``; ``handler`` holds the state seq that handled each (-1: none);
    ``demonitored`` maps a monitor's reference bytes to the seq this process
    removed it at."""
    paired = handler >= 0
    handled = np.where(paired, handler, recvs)
    taken_later = recvs[paired]   # in seq order: arrivals a callback took
    gen = bool(proc.state_seqs)
    own = proc.event_seqs[ACTS[raw.kind[proc.event_seqs]]] if len(proc.event_seqs) else []
    direct: list[int] = []
    ts_in, ts_out = np.asarray(proc.state_ts_in), np.asarray(proc.state_ts_out)
    for idx in np.flatnonzero(~paired).tolist():
        r = int(recvs[idx])
        payload = raw.payload(r)
        # a tag that is a reference makes it a reply: only the others are decoded
        ref = _reply_ref(payload) if may_be_reply(payload) else None
        if ref is not None or (may_be_reply(payload) and is_reply(raw.term(r))):
            took = demonitored.get(ref, -1) if ref is not None else -1
            handled[idx] = took if took > r else r
            direct.append(int(handled[idx]))
            continue
        ref = down_ref(payload)
        if ref is not None and demonitored.get(ref, -1) > r:
            handled[idx] = demonitored[ref]
            if gen:
                direct.append(demonitored[ref])
            continue
        if gen:
            if payload.startswith(SYSTEM_HEADS):
                direct.append(r)
                continue
            if ref is not None and _during_a_callback(int(raw.ts_ns[r]), ts_in, ts_out):
                direct.append(r)
                continue
            if np.searchsorted(taken_later, r, side="right") < len(taken_later):
                direct.append(r)   # overtaken by a later one: it left some other way
                continue
            handled[idx] = proc.exit_seq if proc.exit_seq is not None else NEVER
        else:
            k = int(np.searchsorted(own, r, side="right"))
            handled[idx] = int(own[k]) if k < len(own) else NEVER
    return handled, direct


def _reply_ref(payload: bytes) -> bytes | None:
    """The monitor reference a reply's tag carries (``Ref`` or ``[alias | Ref]``),
    as the bytes ``ref_bytes`` gives its ``demonitor``; None for other tags."""
    tag = payload[3:4]
    if tag in (b"Z", b"r"):
        return term_bytes_at(payload, 3)
    for head in ALIAS_HEADS:
        if payload.startswith(head, 3):
            start = 3 + len(head)
            return term_bytes_at(payload, start) if payload[start:start + 1] in (b"Z", b"r") else None
    return None


def _during_a_callback(ts: int, ts_in: np.ndarray, ts_out: np.ndarray) -> bool:
    k = int(np.searchsorted(ts_out, ts, side="left"))
    return k < len(ts_out) and ts_in[k] <= ts

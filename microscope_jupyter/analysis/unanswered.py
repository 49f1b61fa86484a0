"""Calls a GenServer took and never answered: ``handle_call`` returned
``{noreply, State}`` and no ``gen_server:reply`` ever came for that caller.

    unanswered_calls(facts)   # [Cause("no_reply", ...)]

A deferred reply is an idiom (keep ``From``, reply when the work is done);
the bug is the branch that returns ``noreply`` and keeps ``From`` nowhere.
The evidence, per call: its reply tag never appears in any reply the
recording saw (``replies``); the callback that took it returned ``noreply``;
and, for a call whose ``From`` was dropped, that callback left the state
without the tag (the state event's payload holds it only in the message)
and sent nothing carrying it, nor spawned a process that could have it. A
call whose ``From`` was kept but never answered counts once its caller gave
up (its call timed out in the recording). Requests equal to one still in
progress from another caller are said so: the dedup branch is the usual
culprit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..beam.etf import decode
from ..beam.terms import Atom
from ..render.elixir import render
from ..render.names import known_as
from ..store.otp import call_tag_bytes, map_sizes, state_recorded, transition
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .replies import answered, gave_up_waiting, gen_call_rows, reply_rows, request_bytes

__all__ = ["unanswered_calls"]

_SEND, _SPAWN = KIND_CODES["send"], KIND_CODES["spawn"]
_STATE = KIND_CODES["state"]
MIN_WAIT_NS = 100_000_000     # a call this old at the end, with no reply, is no race with the end
LOOK_BACK = 5000              # earlier calls to the same server searched for an equal request


def unanswered_calls(facts: Facts) -> list[Cause]:
    raw = facts.store.raw()
    candidates = _not_answered_at_once(facts)
    if not candidates:
        return []
    end = int(raw.ts_ns[-1])
    tags = {r: call_tag_bytes(raw.payload(r)) for r, _ in candidates}
    replied = answered(facts, list(tags.values()))
    found: dict[int, dict[str, list]] = {}
    for r, state_seq in candidates:
        tag = tags[r]
        if tag is None or tag in replied or end - int(raw.ts_ns[r]) < MIN_WAIT_NS:
            continue
        payload = raw.payload(state_seq)
        raw_step = decode(payload)
        step = transition(raw_step)
        if step["callback"] != "handle_call" or step["reply"] is not None:
            continue
        fate = _fate(facts, state_seq, payload, tag, raw_step)
        found.setdefault(int(raw.pid[r]), {}).setdefault(fate, []).append((r, state_seq))
    out = []
    for gid, fates in found.items():
        cause = _cause(facts, gid, fates, end)
        if cause is not None:
            out.append(cause)
    return out


def _not_answered_at_once(facts: Facts) -> list[tuple[int, int]]:
    """(receive seq, state seq) of the gen calls a callback took and that its
    process did not answer while the callback ran ({reply, R, S} sends the
    reply before the callback's report): the candidates for a noreply."""
    raw = facts.store.raw()
    calls = gen_call_rows(facts)
    if not len(calls):
        return []
    handler = facts.history().handled_seqs()[calls]
    calls, handler = calls[handler >= 0], handler[handler >= 0]
    if not len(calls):
        return []
    replies = reply_rows(facts)
    sent = replies[raw.kind[replies] == _SEND]
    t_out = raw.ts_ns[handler].astype(np.int64)
    t_in = t_out - raw.aux[handler].astype(np.int64)
    out = []
    pids = raw.pid[handler]
    for gid in np.unique(pids).tolist():
        mine = np.flatnonzero(pids == gid)
        ts = np.sort(raw.ts_ns[sent[raw.pid[sent] == gid]].astype(np.int64))
        during = (np.searchsorted(ts, t_out[mine], side="right")
                  - np.searchsorted(ts, t_in[mine], side="left"))
        out += [(int(calls[i]), int(handler[i])) for i in mine[during == 0].tolist()]
    return out


def _fate(facts: Facts, state_seq: int, payload: bytes, tag: bytes, raw_step: Any) -> str:
    """What became of the caller's From: "passed" (sent on, or a process was
    spawned that may hold it), "kept" (the new state holds it), "dropped", or
    "unknown" (a state too large to copy, its changes not all known)."""
    raw = facts.store.raw()
    gid = int(raw.pid[state_seq])
    t_out = int(raw.ts_ns[state_seq])
    t_in = t_out - int(raw.aux[state_seq])
    by_gid = facts.cached("processes by id",
                          lambda: {p.gid: p for p in facts.history().processes()})
    own = by_gid[gid].event_seqs
    ts = raw.ts_ns[own]
    during = own[(ts >= t_in) & (ts <= t_out)]
    for seq in during[np.isin(raw.kind[during], [_SEND, _SPAWN])].tolist():
        if raw.kind[seq] == _SPAWN or tag in raw.payload(seq):
            return "passed"
    # The message holds the tag once; any other copy is in the state or its changes.
    if payload.count(tag) > 1:
        return "kept"
    return "dropped" if _state_known(raw_step) else "unknown"


def _state_known(raw_step: Any) -> bool:
    """Whether the state event shows all of the new state or of its changes
    (so a From it does not hold was kept nowhere in the state): a state
    copied whole, or changes complete with every value copied."""
    if not (isinstance(raw_step, tuple) and len(raw_step) >= 3):
        return False
    if state_recorded(raw_step[1]) and state_recorded(raw_step[2]):
        return True
    extra = raw_step[5] if len(raw_step) > 5 and isinstance(raw_step[5], dict) else {}
    changes = extra.get(Atom("changes"))
    if not (isinstance(changes, tuple) and len(changes) == 2 and changes[1] is True
            and isinstance(changes[0], list)):
        return False
    return all(state_recorded(value) and map_sizes(value) is None
               for _, value in (c for c in changes[0] if isinstance(c, tuple) and len(c) == 2))


def _cause(facts: Facts, gid: int, fates: dict, end: int) -> Cause | None:
    raw, syntax = facts.store.raw(), facts.store.syntax
    dropped = fates.get("dropped", [])
    # a kept or handed-on From that was never answered counts once a caller gave up
    stranded = [(r, s) for fate in ("kept", "passed", "unknown") for r, s in fates.get(fate, [])
                if gave_up_waiting(facts, raw.term(r), r)]
    calls = sorted(dropped + stranded)
    if not calls:
        return None
    name = next((n for _, n in reversed(facts.store.names().spans(gid)) if n), None)
    who = known_as(name, facts.store.id_text(gid) or "?")
    noreply = "{:noreply, state}" if syntax == "elixir" else "{noreply, State}"
    requests = [raw.term(r)[2] for r, _ in calls[:50]]
    shown = sorted({render(q, syntax, 60) for q in requests})
    waited = (end - int(raw.ts_ns[calls[0][0]])) / 1e9
    gave_up = sum(gave_up_waiting(facts, raw.term(r), r) for r, _ in calls[:200])
    summary = (f"{who} took {len(calls)} call(s) ({', '.join(shown[:3])}"
               f"{', ...' if len(shown) > 3 else ''}) with handle_call returning {noreply} "
               f"and never replied to them: no reply to their From in the {waited:.1f} s "
               "that followed")
    summary += (f", and {gave_up} of their callers gave up at their call timeout." if gave_up
                else " (their callers wait until gen_server:call times out, 5 s by default).")
    if dropped:
        which = "each of them" if len(dropped) == len(calls) else f"{len(dropped)} of them"
        summary += (f" For {which} the callback left the state as it was and "
                    "sent nothing that carries the caller's From: the From was not stored "
                    "anywhere, so nothing can ever reply.")
    if stranded:
        summary += (f" {len(stranded)} had their From kept or handed on, and still no reply "
                    "came before the caller gave up.")
    dup = _duplicates(facts, gid, [r for r, _ in calls])
    if dup:
        summary += " " + dup
    summary += (f" Keep every From you return {noreply} for (a waiting list, one per caller) "
                "and gen_server:reply to each, or reply at once.")
    evidence = sorted({s for pair in calls[:25] for s in pair})
    return Cause("no_reply", 0.85 if dropped else 0.6, summary, evidence, [who])


def _duplicates(facts: Facts, gid: int, unanswered: list[int]) -> str:
    """Whether the unanswered calls repeat a request still in progress from
    another caller (received before, answered after): the dedup branch."""
    raw = facts.store.raw()
    calls = gen_call_rows(facts)
    mine = calls[raw.pid[calls] == gid]
    first = int(np.searchsorted(mine, unanswered[0]))
    window = mine[max(0, first - LOOK_BACK):int(np.searchsorted(mine, unanswered[-1], "right"))]
    lost = set(unanswered)
    wanted = {request_bytes(raw.payload(r)) for r in unanswered}
    earlier: dict[bytes, list[int]] = {}
    hits: list[tuple[int, int]] = []
    for r in window.tolist():
        request = request_bytes(raw.payload(r))
        if request is None:
            continue
        if r in lost:
            hits += [(r, other) for other in earlier.get(request, [])[-1:]]
        elif request in wanted:
            earlier.setdefault(request, []).append(r)
    if not hits:
        return ""
    tags = {o: call_tag_bytes(raw.payload(o)) for _, o in hits}
    replied = answered(facts, list(tags.values()))
    hits = [(r, o) for r, o in hits if replied.get(tags[o], r + 1) > r]   # still in progress
    if not hits:
        return ""
    r, other = hits[0]
    call = raw.term(other)
    caller = call[1][0] if isinstance(call, tuple) and isinstance(call[1], tuple) else "?"
    seq = replied.get(tags[other])
    state = (f"answered at seq {seq}" if seq is not None else "itself never answered")
    which = f"All {len(hits)}" if len(hits) == len(unanswered) else f"{len(hits)} of them"
    return (f"{which} came while the same request from another caller ({caller}, "
            f"seq {other}) was still in progress ({state}): each was a duplicate of a "
            "request in flight, and the branch that handles a request already in progress "
            "drops the new caller instead of adding it to the waiting list.")


"""Timeouts that travel: one slow call that timed out at every layer of a chain
of calls, and a reply that came after its caller stopped waiting and crashed
the caller.

    cascading_timeouts(facts)   # [Cause("cascading_timeout", ...)]
    late_replies(facts)         # [Cause("late_reply", ...)]

Both start from the calls a caller gave up on (``waits``). A call is nested
in another when the process it was made by had the other in hand (received,
not yet answered; the oldest such, as a server takes its calls in order): a
chain of nested calls that all timed out is a cascade, and the innermost
callee, slow to answer, is where it began. A late reply is a ``{Ref, _}`` the
caller's callback no longer waits for: it stays in the mailbox, and a
gen_server hands it to ``handle_info``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..render.elixir import render
from ..store.otp import MESSAGE_ARG, message_kind, reply_tag_bytes, unmatched_callback
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .lifecycle import (Lives, abnormal_exits, acts_of, lifecycle, next_act, receives_of,
                        restart_text)
from .replies import call_receives
from .waits import GaveUp, gave_up_waiting, waited_out

__all__ = ["cascading_timeouts", "late_replies"]

_SEND, _STATE = KIND_CODES["send"], KIND_CODES["state"]
_MAX_WAITS = 5000       # timed-out calls looked at for nesting (the first ones)


# -- cascades -----------------------------------------------------------------

def cascading_timeouts(facts: Facts) -> list[Cause]:
    waits = gave_up_waiting(facts)[:_MAX_WAITS]
    if not waits:
        return []
    # A layer whose own timeout did not fire first: its callee gave up and answered
    # at once (an error reply), so the failure came up the chain as a reply.
    waits = waits + _relayed(facts, waits)
    if len(waits) < 2:
        return []
    by_callee: dict[str, list[GaveUp]] = {}
    for w in waits:
        if w.callee:
            by_callee.setdefault(w.callee, []).append(w)
    outer_of: dict[int, GaveUp] = {}
    for w in waits:
        held = [o for o in by_callee.get(w.caller, ())
                if o.call_seq < w.call_seq and (o.reply_seq is None or w.call_seq < o.reply_seq)]
        if held:
            outer_of[w.call_seq] = min(held, key=lambda o: o.call_seq)
    if not outer_of:
        return []
    inner = set(o.call_seq for o in outer_of.values())
    chains: dict[str, list[GaveUp]] = {}
    for w in waits:
        if w.call_seq in inner or w.call_seq not in outer_of:
            continue      # not the innermost of a chain
        chain = [w]
        while chain[-1].call_seq in outer_of and len(chain) < 20:
            chain.append(outer_of[chain[-1].call_seq])
        procs = [c.callee for c in chain] + [chain[-1].caller]
        if len(set(procs)) < len(procs):
            continue      # a cycle: the callers wait on each other (a deadlock)
        if not _cascades(chain, waits):
            continue
        best = chains.get(w.callee)
        if best is None or len(chain) > len(best):
            chains[w.callee] = chain
    lives = lifecycle(facts)
    return [_cascade_cause(facts, lives, chain, waits) for chain in chains.values()]


def _cascade_cause(facts: Facts, lives: Lives, chain: list[GaveUp], waits: list[GaveUp]) -> Cause:
    raw = facts.store.raw()
    terms = facts.store.frame()["term"]
    syntax = facts.syntax
    first = chain[0]
    slow = lives.who(first.callee, first.call_seq)
    request = _request(terms.iloc[first.call_seq], syntax)
    if first.reply_seq is not None:
        took = (int(raw.ts_ns[first.reply_seq]) - int(raw.ts_ns[first.call_seq])) / 1e6
        answer = f"took {took:,.0f} ms to answer {request} (seq {first.call_seq})"
        ran = _callback_after(facts, lives, first.callee, first.reply_seq)
        if ran is not None:
            answer += f", its callback running {ran[1]:,.0f} ms (seq {ran[0]})"
    else:
        answer = f"never answered {request} (seq {first.call_seq})"
    text = (f"One slow call timed out at every layer of a chain of calls: {slow} {answer}. "
            f"{lives.who(first.caller, first.call_seq)} was waiting for it inside its own "
            f"callback and gave up after {first.waited_ms:,.0f} ms (seq {first.gave_up_seq})")
    evidence = [first.call_seq, first.gave_up_seq]
    for lower, upper in zip(chain, chain[1:]):
        text += (f"; {lives.who(upper.caller, upper.call_seq)}, calling "
                 f"{lives.who(upper.callee, upper.call_seq)}, "
                 + (f"got the failure back as the answer {upper.waited_ms:,.0f} ms later, "
                    f"just as its own timeout was due (seq {upper.gave_up_seq})" if upper.relayed
                    else f"gave up after {upper.waited_ms:,.0f} ms (seq {upper.gave_up_seq})"))
        evidence += [upper.call_seq, upper.gave_up_seq]
    text += "."
    outer = [c.waited_ms for c in chain[1:]]
    if outer and max(outer) <= first.waited_ms * 1.1:
        text += (" Each layer waits with the same timeout as the one below it (or less), so "
                 "when the innermost call is slow every layer times out together: a cascade, "
                 "and the error reaches the outermost caller as a timeout from each hop.")
    in_chain = {first.callee} | {c.caller for c in chain} | {c.callee for c in chain}
    stall_end = first.reply_seq or first.gave_up_seq
    chained = {c.call_seq for c in chain}
    behind = [w for w in waits if w.call_seq not in chained and w.callee in in_chain
              and w.call_seq < stall_end and w.gave_up_seq > first.call_seq]
    if behind:
        callers = sorted({lives.who(w.caller) for w in behind})
        text += (f" {len(behind)} more call(s) to the processes of the chain, queued behind the "
                 f"stall, timed out too (callers: {', '.join(callers[:5])}"
                 f"{' ...' if len(callers) > 5 else ''}).")
        evidence += [w.gave_up_seq for w in behind[:10]]
    late = _late_arrival(facts, lives, first)
    if late:
        text += " " + late[0]
        evidence += late[1]
    text += (f" Make {slow} answer fast (move the slow work out of its callback, or reply later "
             "with gen_server:reply), and give each layer a shorter timeout than its caller's, "
             "so the innermost call fails first and its error comes back up in time.")
    procs = [slow] + [lives.who(c.caller) for c in chain]
    return Cause("cascading_timeout", 0.85, text, sorted(set(evidence)), procs)


def _cascades(chain: list[GaveUp], waits: list[GaveUp]) -> bool:
    """Two layers timed out; or one did and passed the failure up, and other
    callers of a layer above timed out meanwhile (the same timeout all the way
    up). One timeout caught and answered with an error is handling, not a cascade."""
    if sum(not c.relayed for c in chain) >= 2:
        return True
    relaying = {c.callee for c in chain if c.relayed}
    chained = {c.call_seq for c in chain}
    return any(not w.relayed and w.callee in relaying and w.call_seq not in chained
               for w in waits)


def _relayed(facts: Facts, waits: list[GaveUp]) -> list[GaveUp]:
    """The calls answered right after their callee gave up on a call of its own:
    the callee's very next act is the reply. Followed up the chain (the caller
    that got it may pass it on the same way)."""
    raw = facts.store.raw()
    out: list[GaveUp] = []
    frontier = [(w.caller, w.gave_up_seq) for w in waits]
    seen: set[int] = set()
    timed_out = {w.tag for w in waits}      # a call its caller gave up on is no relay
    while frontier and len(out) < _MAX_WAITS:
        callee, after = frontier.pop()
        ids = facts.store.pid_ids(callee)
        gid = max(ids) if ids else None
        reply = next_act(facts, gid, after) if gid is not None else None
        if reply is None or raw.kind[reply] != _SEND or reply in seen:
            continue
        tag = reply_tag_bytes(raw.payload(reply))
        if tag is None or tag in timed_out:
            continue
        calls, tags = call_receives(facts, gid)
        took = [int(r) for r, t in zip(calls.tolist(), tags) if t == tag and r < reply]
        if not took:
            continue
        seen.add(reply)
        call = facts.store.frame()["term"].iloc[took[-1]]
        caller = call[1][0] if isinstance(call, tuple) and len(call) == 3 else None
        if caller is None:
            continue
        waited = (int(raw.ts_ns[reply]) - int(raw.ts_ns[took[-1]])) / 1e6
        out.append(GaveUp(took[-1], str(caller), callee, tag, reply, waited, reply, True))
        frontier.append((str(caller), reply))
    return out


def _request(message: Any, syntax: str) -> str:
    if isinstance(message, tuple) and len(message) == 3:
        return render(message[2], syntax, 80)
    return render(message, syntax, 80)


def _callback_after(facts: Facts, lives: Lives, pid: str, seq: int) -> tuple[int, float] | None:
    """The callback (state event) that sent the reply at ``seq``: (seq, ms it ran)."""
    gid = lives.gid.get(pid)
    acts = acts_of(facts).get(gid) if gid is not None else None
    if acts is None:
        return None
    raw = facts.store.raw()
    k = int(np.searchsorted(acts, seq, side="right"))
    for nxt in acts[k:k + 50].tolist():
        if raw.kind[nxt] == _STATE:
            return nxt, int(raw.aux[nxt]) / 1e6
    return None


def _late_arrival(facts: Facts, lives: Lives, wait: GaveUp) -> tuple[str, list[int]] | None:
    """What became of the innermost reply sent after its caller gave up."""
    if wait.reply_seq is None or wait.reply_seq < wait.gave_up_seq:
        return None
    raw = facts.store.raw()
    late = (int(raw.ts_ns[wait.reply_seq]) - int(raw.ts_ns[wait.gave_up_seq])) / 1e6
    caller = lives.who(wait.caller, wait.reply_seq)
    text = (f"{lives.who(wait.callee)}'s reply came {late:,.0f} ms after {caller} had stopped "
            f"waiting (seq {wait.reply_seq})")
    arrival = _arrival(facts, lives, wait.caller, wait.tag, wait.reply_seq)
    if arrival is None:
        return text + ", and was dropped.", [wait.reply_seq]
    handled = int(facts.history().handled_seqs()[arrival])
    text += f": it landed in {caller}'s mailbox (seq {arrival})"
    if handled >= 0 and raw.kind[handled] == _STATE:
        step = facts.store.frame()["term"].iloc[handled]
        if isinstance(step, dict) and step.get("callback") == "handle_info":
            text += f" as an unexpected message, handled by handle_info (seq {handled})"
    return text + ".", [wait.reply_seq, arrival]


def _arrival(facts: Facts, lives: Lives, pid: str, tag: bytes, after: int) -> int | None:
    gid = lives.gid.get(pid)
    if gid is None:
        try:
            gid = min(facts.pids(pid))
        except Exception:    # never seen receiving
            return None
    seqs = receives_of(facts).get(gid)
    if seqs is None:
        return None
    raw = facts.store.raw()
    k = int(np.searchsorted(seqs, after))
    for seq in seqs[k:k + 2000].tolist():
        payload = raw.payload(seq)
        if payload[:3] == b"\x83h\x02" and reply_tag_bytes(payload) == tag:
            return seq
    return None


# -- late replies that crash a callback -----------------------------------------

def late_replies(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    if not lives.exit_seq:
        return []
    terms = facts.store.frame()["term"]
    raw = facts.store.raw()
    out = []
    for pid, seq in abnormal_exits(facts).items():
        payload = raw.payload(seq)
        if b"function_clause" not in payload and b"FunctionClauseError" not in payload:
            continue      # decided on the bytes
        found = unmatched_callback(terms.iloc[seq])
        if found is None or str(found[1]) != "handle_info":
            continue
        args = found[2]
        message = args[MESSAGE_ARG[(str(found[1]), len(args))]]
        if message_kind(message) != "reply":
            continue
        cause = _late_reply_cause(facts, lives, terms, pid, seq, message)
        if cause is not None:
            out.append(cause)
    return out


def _late_reply_cause(facts: Facts, lives: Lives, terms, pid: str, exit_seq: int,
                      message: Any) -> Cause | None:
    raw = facts.store.raw()
    syntax = facts.syntax
    gid = lives.gid.get(pid)
    received = receives_of(facts).get(gid) if gid is not None else None
    if received is None:
        return None
    mine = received[received < exit_seq]
    arrival = next((s for s in mine[::-1][:500].tolist() if terms.iloc[s] == message), None)
    if arrival is None:
        return None
    tag = reply_tag_bytes(raw.payload(arrival))
    who = lives.who(pid, exit_seq)
    shown = render(message, syntax, 100)
    request = _request_with(facts, gid, tag, arrival) if tag else None
    evidence = [arrival, exit_seq]
    if request is None:
        text = (f"{who} crashed on {shown} (seq {arrival}), a reply ({{Ref, Reply}}) that no "
                "callback was waiting for any more: most likely a late reply to a request that "
                "timed out. gen_server hands such a stray message to handle_info/2, which has no "
                f"clause for it: function_clause (seq {exit_seq}).")
        confidence = 0.7
    else:
        gave_up = waited_out(facts, gid, request)
        to = facts.store.id_texts()[int(raw.peer[request])]
        total = (int(raw.ts_ns[arrival]) - int(raw.ts_ns[request])) / 1e6
        text = (f"{who} crashed on a late reply: it sent "
                f"{render(terms.iloc[request], syntax, 90)} to {to} (seq {request})")
        evidence.append(request)
        if gave_up is not None:
            waited = (int(raw.ts_ns[gave_up]) - int(raw.ts_ns[request])) / 1e6
            text += (f" and stopped waiting after {waited:,.0f} ms (its receive ... after "
                     f"fired, seq {gave_up})")
            evidence.append(gave_up)
        text += (f"; the reply {shown} arrived {total:,.0f} ms after the request (seq {arrival}), "
                 "after the timeout, when nothing was waiting for it, so it stayed in the "
                 "mailbox and gen_server handed it to handle_info/2, which has no clause for "
                 f"it: function_clause (seq {exit_seq}).")
        confidence = 0.9
    restart = restart_text(facts, lives, pid)
    if restart:
        text += " " + restart[0]
        evidence.append(restart[1])
    text += (" Give handle_info a catch-all clause that drops stray replies (or flush the "
             "late reply after the timeout), or make the request with gen_server:call or "
             "send_request, whose replies after a timeout are discarded.")
    return Cause("late_reply", confidence, text, sorted(set(evidence)), [who])


def _request_with(facts: Facts, gid: int, tag: bytes, before: int) -> int | None:
    """The last send of process ``gid`` before ``before`` that carries ``tag``."""
    acts = acts_of(facts).get(gid)
    if acts is None:
        return None
    raw = facts.store.raw()
    mine = acts[acts < before]
    for seq in mine[::-1][:5000].tolist():
        if raw.kind[seq] == _SEND and tag in raw.payload(seq):
            return seq
    return None

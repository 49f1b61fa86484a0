"""Messages from two senders taken in the wrong order: a process that crashed
on a message about a key it did not know yet, while the message that would
have introduced the key, from another sender, arrived just after.

    overtaken_messages(facts)   # [Cause("sender_ordering", ...)]

Erlang orders messages only between one sender and one receiver. When one
process sends {created, Id, ...} through an intermediary and another sends
{updated, Id, ...} straight to the same receiver, nothing makes the create
arrive first. The crash names the key (``{badkey, K}`` from a map lookup);
the message it was handling (``unread.crash_messages``) carries K, and a
later message to the same process (or to its next incarnation) carries K
too, from a different sender.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..beam.terms import Atom
from ..render.elixir import render
from .detector_kit import Cause
from .facts import Facts
from .lifecycle import Lives, lifecycle, receives_of
from .unread import crash_messages

__all__ = ["overtaken_messages"]

_WINDOW_NS = 2 * 10**9      # the counterpart arrives within this of the crash
_BADKEY = Atom("badkey")


def overtaken_messages(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    if not lives.exit_seq:
        return []
    terms = facts.store.frame()["term"]
    raw = facts.store.raw()
    candidates = {pid: seq for pid, seq in lives.exit_seq.items()
                  if b"badkey" in raw.payload(seq)}
    if not candidates:
        return []
    fatal = crash_messages(facts)
    found: dict[str, list[tuple[int, Cause]]] = {}
    for pid, exit_seq in sorted(candidates.items(), key=lambda kv: kv[1]):
        key = _missing_key(terms.iloc[exit_seq])
        handling = fatal.get(pid)
        if key is None or handling is None or not _carries(terms.iloc[handling], key):
            continue
        later = _counterpart(facts, lives, terms, pid, handling, key)
        if later is None:
            continue
        cause = _cause(facts, lives, terms, pid, exit_seq, handling, later, key)
        if cause is not None:
            found.setdefault(cause.processes[0], []).append((exit_seq, cause))
    out = []
    for races in found.values():
        first = races[0][1]
        if len(races) > 1:      # the same race again: one cause, counted
            seqs = ", ".join(str(seq) for seq, _ in races[1:6])
            first.summary = first.summary.replace(
                " Erlang keeps", f" The same happened {len(races) - 1} more time(s) (crashes "
                f"at seqs {seqs}). Erlang keeps", 1)
            first.evidence = sorted({e for _, c in races for e in c.evidence})
        out.append(first)
    return out


def _missing_key(reason: Any) -> Any:
    """K of ``{{badkey, K}, Stack}`` (or a bare ``{badkey, K}``)."""
    error = reason[0] if isinstance(reason, tuple) and len(reason) == 2 and isinstance(
        reason[1], list) else reason
    if isinstance(error, tuple) and len(error) == 2 and error[0] == _BADKEY:
        return error[1]
    return None


def _carries(term: Any, key: Any, depth: int = 0) -> bool:
    if term == key:
        return True
    if depth > 3 or not isinstance(term, (tuple, list)):
        return False
    return any(_carries(t, key, depth + 1) for t in term[:12])


def _counterpart(facts: Facts, lives: Lives, terms, pid: str, handling: int,
                 key: Any) -> int | None:
    """The first message after the fatal one, to this process or the next under
    its name, that carries the same key and is no copy of the fatal one."""
    raw = facts.store.raw()
    received = receives_of(facts)
    gids = [lives.gid[pid]] if pid in lives.gid else []
    name = lives.name(pid)
    if name:
        gids = sorted(set(gids) | set(lives.names.pids_named({name})))
    end = int(raw.ts_ns[handling]) + _WINDOW_NS
    shown = terms.iloc[handling]
    found = []
    for gid in gids:
        seqs = received.get(gid)
        if seqs is None:
            continue
        after = seqs[np.searchsorted(seqs, handling, side="right"):]
        for seq in after[:500].tolist():
            if int(raw.ts_ns[seq]) > end:
                break
            term = terms.iloc[seq]
            if term != shown and _carries(term, key):
                found.append(seq)
                break
    return min(found) if found else None


def _cause(facts: Facts, lives: Lives, terms, pid: str, exit_seq: int, handling: int,
           later: int, key: Any) -> Cause | None:
    syntax = facts.syntax
    raw = facts.store.raw()
    table = facts.messages(receivers=[pid] + ([lives.name(pid)] if lives.name(pid) else []))
    senders = {}
    for seq in (handling, later):
        row = table[table["receive_seq"] == seq]
        sender = None
        if len(row):
            name, who = row["sender_name"].iloc[0], row["sender"].iloc[0]
            sender = name if isinstance(name, str) else who if isinstance(who, str) else None
        senders[seq] = (sender, int(row["send_seq"].iloc[0]) if len(row) and
                        row["send_seq"].notna().iloc[0] else None)
    first_from, later_from = senders[handling][0], senders[later][0]
    if first_from is not None and first_from == later_from:
        return None     # one sender: its messages arrive in the order it sent them
    who = lives.who(pid, exit_seq)
    gap = (int(raw.ts_ns[later]) - int(raw.ts_ns[handling])) / 1e6
    source = first_from or "a process outside the trace"
    via = later_from or "another process"
    text = (f"{who} crashed with {{badkey, {render(key, syntax, 60)}}} handling "
            f"{_shown(terms.iloc[handling], syntax)} (seq {handling}, from {source}), a message "
            f"about {render(key, syntax, 60)} before it knew that key; the message that "
            f"introduces it, {_shown(terms.iloc[later], syntax)}, came from a different sender, "
            f"{via}, and arrived {gap:,.1f} ms later (seq {later}).")
    sent = senders[later][1]
    if sent is not None and later_from:
        held = _held_since(facts, lives, terms, later_from, key, sent)
        if held is not None and held < handling:
            text += (f" {via} had it since seq {held}, before the update arrived, "
                     f"and passed it on only at seq {sent}: the update overtook it.")
    text += (" Erlang keeps messages in order only per pair of sender and receiver: nothing "
             "orders two senders' messages, so an update sent straight to it can arrive before "
             "the create that goes through another process. Handle an update for an unknown "
             "key (buffer it until the create arrives, or fetch the record), or send both "
             "through the same process so their order holds.")
    evidence = [handling, later, exit_seq] + ([sent] if sent is not None else [])
    procs = [who] + [p for p in (later_from, first_from) if p]
    return Cause("sender_ordering", 0.85, text, sorted(set(evidence)), procs)


def _shown(term: Any, syntax: str) -> str:
    if isinstance(term, tuple) and len(term) == 2 and str(term[0]) == "$gen_cast":
        return f"the cast {render(term[1], syntax, 80)}"
    if isinstance(term, tuple) and len(term) == 3 and str(term[0]) == "$gen_call":
        return f"the call {render(term[2], syntax, 80)}"
    return f"the message {render(term, syntax, 80)}"


def _held_since(facts: Facts, lives: Lives, terms, proc: str, key: Any, before: int) -> int | None:
    """The first message carrying ``key`` that ``proc`` received before ``before``."""
    try:
        gids = facts.pids(proc)
    except Exception:    # not a process the recording knows
        return None
    received = receives_of(facts)
    raw = facts.store.raw()
    for gid in gids:
        seqs = received.get(gid)
        if seqs is None:
            continue
        window = seqs[seqs < before][-200:]
        start = int(raw.ts_ns[before]) - _WINDOW_NS
        for seq in window.tolist():
            if int(raw.ts_ns[seq]) >= start and _carries(terms.iloc[seq], key):
                return seq
    return None

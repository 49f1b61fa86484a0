"""Exits that travelled over links: a process that died of a linked process's
crash, with the very same reason, because it does not trap exits.

    exit_propagation(facts)   # [Cause("exit_propagation", ...)]

A link carries an exit signal both ways. A process that does not trap exits
and gets one with an abnormal reason dies at once with that same reason, and
passes it on over its own links; one that traps exits gets an
``{'EXIT', Pid, Reason}`` message instead and lives on (a supervisor does).
So the abnormal exit of X, followed right after by the exit of a process
linked to X with an identical reason, is that signal at work, and the first
to exit with the reason is where it was raised. Links are the ones the trace
saw made (``spawn_link`` shows as a spawn and a link) and those held when it
began.
"""

from __future__ import annotations

from .detector_kit import Cause
from .facts import Facts
from .lifecycle import Lives, abnormal_exits, lifecycle, reason_text, restart_text

__all__ = ["exit_propagation"]

_SIGNAL_NS = 10**9    # an exit signal arrives within this (a busy scheduler included)


def exit_propagation(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    if not lives.links or not lives.exit_seq:
        return []
    terms = facts.store.frame()["term"]
    ts = facts.store.raw().ts_ns
    crashes = sorted((seq, pid) for pid, seq in abnormal_exits(facts).items()
                     if pid in lives.links)
    if len(crashes) < 2:
        return []
    taken: dict[str, str] = {}      # victim -> the linked process whose exit took it down
    for seq, pid in crashes:
        reason = terms.iloc[seq]
        for other in lives.linked(pid):
            later = lives.exit_seq.get(other)
            if (later is None or later <= seq or other in taken
                    or int(ts[later]) - int(ts[seq]) > _SIGNAL_NS):
                continue
            if terms.iloc[later] == reason:
                taken[other] = pid
    if not taken:
        return []
    origins: dict[str, list[str]] = {}
    for victim in sorted(taken, key=lambda v: lives.exit_seq[v]):
        origin = taken[victim]
        while origin in taken:
            origin = taken[origin]
        origins.setdefault(origin, []).append(victim)
    return [_cause(facts, lives, terms, origin, victims, taken)
            for origin, victims in origins.items()]


def _cause(facts: Facts, lives: Lives, terms, origin: str, victims: list[str],
           taken: dict[str, str]) -> Cause:
    syntax = facts.syntax
    raw = facts.store.raw()
    start = lives.exit_seq[origin]
    # where the fix goes: the named victim the origin's signal reached first
    direct = [v for v in victims if taken[v] == origin]
    keeper = next((v for v in direct if lives.name(v)), direct[0] if direct else victims[0])
    who = lives.who(keeper, lives.exit_seq[keeper])
    origin_who = lives.who(origin, start)
    linked_how = ("spawned and linked by" if lives.parent.get(origin) == keeper
                  else "linked to")
    after = (int(raw.ts_ns[lives.exit_seq[keeper]]) - int(raw.ts_ns[start])) / 1e6
    text = (f"{origin_who} ({linked_how} {who}) crashed: "
            f"{reason_text(terms.iloc[start], syntax, 120)} (seq {start}); its exit signal "
            f"went over the link and killed {who} with the same reason {after:.2f} ms later "
            f"(seq {lives.exit_seq[keeper]}): {who} does not trap exits, so a crash of a "
            "process linked to it is its own crash.")
    others = [v for v in victims if v != keeper]
    if others:
        shown = ", ".join(f"{lives.who(v, lives.exit_seq[v])} (seq {lives.exit_seq[v]})"
                          for v in others[:6])
        text += (f" The signal went on over the links and took down {len(others)} more with "
                 f"the same reason: {shown}{' ...' if len(others) > 6 else ''}.")
    evidence = [start] + [lives.exit_seq[v] for v in victims]
    restart = restart_text(facts, lives, keeper)
    if restart:
        text += " " + restart[0]
        evidence.append(restart[1])
    text += (f" Trap exits in {who} (process_flag(trap_exit, true)) and handle "
             "{'EXIT', Pid, Reason} for the process that failed, or start such work with "
             "spawn_monitor (or under a Task.Supervisor), so that one job's crash stays its own.")
    return Cause("exit_propagation", 0.9, text, sorted(set(evidence)),
                 [who] + [lives.who(v) for v in others[:4]] + [origin_who])

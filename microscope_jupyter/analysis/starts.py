"""Process starts gone wrong: an init that crashes on every start, restarted
again and again; an init so slow that its starter and its callers wait; and
concurrent starts of one registered name, all but one losing the race.

    init_crash_loops(facts)   # [Cause("init_crash_loop", ...)]
    slow_inits(facts)         # [Cause("blocking_init", ...)]
    name_races(facts)         # [Cause("name_race", ...)]

Both read proc_lib's start protocol (``lifecycle``): the starter spawns the
process and waits in ``start_link`` until its init returns and it sends
``{ack, Self, {ok, Self}}``; a start that exits before that crashed in its
init. A crash loop is the same process (the same name, or the same starter
and entry point) failing its start again and again with the same reason,
while its starter keeps going (a starter that gave up after a few is a
supervisor's restart intensity, told by ``supervision``). A slow init is a
long span from the spawn to the ack during which calls to the process, or to
its starter (a supervisor stuck in start_child), wait and time out. A name
race is OTP's own word for it: starts that returned
``{error, {already_started, Pid}}`` to callers that did not expect it and
crashed on it, all within moments of each other.
"""

from __future__ import annotations

import numpy as np

from ..beam.terms import Atom, Pid

from ..render.elixir import render
from ..store.otp import GEN_CALL_HEADS
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .lifecycle import Lives, abnormal_exits, in_frames, lifecycle, reason_text, receives_of
from .waits import waited_out

__all__ = ["init_crash_loops", "slow_inits", "name_races"]

LOOP_STARTS = 3          # failed starts in a row that make a loop
SLOW_INIT_MS = 250.0     # an init this long, with callers timing out on it, is a finding
LONG_INIT_MS = 1000.0    # ...and this long, with callers waiting on it at all
_RECEIVE = KIND_CODES["receive"]


# -- crash loops in init ------------------------------------------------------

def init_crash_loops(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    # a start that ended normally with no ack is a proc_lib process that never
    # acks (an Elixir Task, a spawned worker) doing its job, not a failed init
    abnormal = abnormal_exits(facts)
    failed = [pid for pid in lives.exit_seq if lives.start_failed(pid) and pid in abnormal]
    if len(failed) < LOOP_STARTS:
        return []
    terms = facts.store.frame()["term"]
    groups: dict[tuple, list[str]] = {}
    for pid in sorted(failed, key=lambda p: lives.exit_seq[p]):
        key = (lives.name(pid) or lives.spawn_mfa.get(pid), lives.parent.get(pid),
               _same(terms.iloc[lives.exit_seq[pid]], facts.syntax))
        groups.setdefault(key, []).append(pid)
    out = []
    for (_, starter, _), pids in groups.items():
        if len(pids) < LOOP_STARTS or starter is None:
            continue
        last = lives.exit_seq[pids[-1]]
        ended = lives.exit_seq.get(starter)
        if ended is not None and ended > last and not any(
                last < lives.spawn_seq.get(k, -1) < ended for k in lives.children.get(starter, [])):
            continue    # its starter stopped after them: a supervisor that gave up
        out.append(_loop_cause(facts, lives, terms, starter, pids))
    return out


def _same(reason, syntax: str) -> str:
    """A reason with its pids and references left out: equal for the same failure."""
    return reason_text(reason, syntax, 200)


def _loop_cause(facts: Facts, lives: Lives, terms, starter: str, pids: list[str]) -> Cause:
    syntax = facts.syntax
    raw = facts.store.raw()
    first, last = pids[0], pids[-1]
    name = lives.name(first)
    who = name or f"the process {lives.who(starter)} starts ({lives.spawn_mfa.get(first)})"
    reason = terms.iloc[lives.exit_seq[last]]
    frame = in_frames(reason, "init", 1)
    where = (f"in its init/1 ({reason_text(reason, syntax, 120)})" if frame is not None
             else f"during its start, before its init returned ({reason_text(reason, syntax, 120)})")
    t0, t1 = (int(raw.ts_ns[lives.spawn_seq[p]]) for p in (first, last))
    every = (t1 - t0) / 1e6 / max(len(pids) - 1, 1)
    text = (f"{who} crashes {where} on every start: {len(pids)} starts in "
            f"{(t1 - t0) / 1e9:.1f} s, about one every {every:,.0f} ms, each a new pid "
            f"({first} ... {last}) that failed the same way and never got past init, so no "
            f"callback ever ran. {lives.who(starter)} starts it again each time and never gives "
            "up: a restart loop, and every call to it meanwhile fails (noproc, or a timeout).")
    before = _last_good(lives, name, lives.spawn_seq[first]) if name else None
    evidence = [lives.spawn_seq[first], lives.exit_seq[first], lives.exit_seq[last]]
    if before is not None:
        pid, seq = before
        gap = (t0 - int(raw.ts_ns[seq])) / 1e6
        text += (f" The last start that worked was {pid}; it ended "
                 f"({render(terms.iloc[seq], syntax, 60)}, seq {seq}) {gap:,.0f} ms before "
                 "the loop began: what changed in between (its configuration, a dependency) "
                 "is what its init now fails on.")
        evidence.append(seq)
    text += (" Restarting cannot fix an init that fails on what it reads: fix that (the reason "
             "says what it did not find), or have init return {:stop, reason} with a clear "
             "message and back off longer.")
    if frame is not None:
        text += (f" s.trace(modules=[\"{frame[0]}:init/1\"]) shows each init's argument and "
                 "the exception it raised.")
    return Cause("init_crash_loop", 0.85, text, sorted(set(evidence)),
                 [name or lives.who(first), lives.who(starter)])


def _last_good(lives: Lives, name: str, before: int) -> tuple[str, int] | None:
    """The last process under ``name`` that did get past its start and ended
    before ``before``: (pid, exit seq)."""
    texts = {g: p for p, g in lives.gid.items()}
    good = [(lives.exit_seq[p], p) for g in lives.names.pids_named({name})
            if (p := texts.get(g)) and p in lives.exit_seq and lives.exit_seq[p] < before
            and not lives.start_failed(p)]
    if not good:
        return None
    seq, pid = max(good)
    return pid, seq


# -- slow init ----------------------------------------------------------------

def slow_inits(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    raw = facts.store.raw()
    out = []
    for pid, (ack, ok) in lives.ack.items():
        spawned = lives.spawn_seq.get(pid)
        if not ok or spawned is None:
            continue
        took = (int(raw.ts_ns[ack]) - int(raw.ts_ns[spawned])) / 1e6
        if took < SLOW_INIT_MS:
            continue
        starter = lives.parent[pid]
        waiting = {p: _calls_during(facts, lives, p, spawned, ack) for p in (pid, starter)}
        calls = [c for found in waiting.values() for c in found]
        if not calls or (took < LONG_INIT_MS and not any(c[2] is not None for c in calls)):
            continue      # nobody waited, or waited a little and got the answer
        out.append(_slow_cause(facts, lives, pid, starter, spawned, ack, took, waiting))
    return out


def _calls_during(facts: Facts, lives: Lives, pid: str, start: int, end: int) -> list[tuple]:
    """(receive seq, caller, timed out at seq or None) of the gen calls that
    reached ``pid`` between two seqs: they waited at least until ``end``."""
    gid = lives.gid.get(pid)
    seqs = receives_of(facts).get(gid) if gid is not None else None
    if seqs is None:
        return []
    raw = facts.store.raw()
    window = seqs[np.searchsorted(seqs, start):np.searchsorted(seqs, end)]
    out = []
    frame = facts.store.frame()
    for seq in window.tolist():
        if not raw.payload(seq).startswith(GEN_CALL_HEADS):
            continue
        message = frame["term"].iloc[seq]
        caller = message[1][0] if isinstance(message[1], tuple) and message[1] else None
        caller = str(caller) if caller is not None else None
        gave_up = None
        cgid = lives.gid.get(caller) if caller else None
        if cgid is None and caller:
            try:
                cgid = min(facts.pids(caller))
            except Exception:   # a caller outside the trace
                cgid = None
        if cgid is not None:
            sent = _last_send_before(raw, cgid, seq)
            if sent is not None:
                gave_up = waited_out(facts, cgid, sent)
        out.append((seq, caller, gave_up))
    return out


def _last_send_before(raw, gid: int, seq: int) -> int | None:
    lo = max(0, seq - 5000)
    mine = np.flatnonzero((raw.pid[lo:seq] == gid) & (raw.kind[lo:seq] == KIND_CODES["send"]))
    return int(lo + mine[-1]) if len(mine) else None


def _slow_cause(facts: Facts, lives: Lives, pid: str, starter: str, spawned: int, ack: int,
                took: float, waiting: dict) -> Cause:
    raw = facts.store.raw()
    who, sup = lives.who(pid, ack), lives.who(starter)
    crashed_before = [p for p in lives.children.get(starter, [])
                      if p != pid and lives.name(p) == lives.name(pid) and p in lives.exit_seq
                      and lives.exit_seq[p] < spawned]
    restart = (f"after the previous {lives.who(crashed_before[-1])} ({crashed_before[-1]}) "
               f"exited (seq {lives.exit_seq[crashed_before[-1]]}), " if crashed_before else "")
    text = (f"{who} spent {took:,.0f} ms in its init: {restart}{sup} started it (seq {spawned}) "
            f"and it acknowledged the start only at seq {ack}. Its starter waits in start_link "
            f"for all of that, and the process is registered but answers nothing until init "
            "returns.")
    evidence = [spawned, ack]
    for target, calls in waiting.items():
        if not calls:
            continue
        timed = [c for c in calls if c[2] is not None]
        callers = sorted({c[1] for c in calls if c[1]})
        if target == pid:
            text += f" {len(calls)} call(s) reached {who} while it was in init and waited"
        else:
            text += (f" {len(calls)} call(s) to {sup} waited as well: a supervisor in "
                     "start_child answers nothing")
        if timed:
            waited = [(int(raw.ts_ns[c[2]]) - int(raw.ts_ns[c[0]])) / 1e6 for c in timed]
            text += (f"; {len(timed)} of them timed out after ~{np.median(waited):,.0f} ms "
                     f"(callers {', '.join(callers[:4])}{' ...' if len(callers) > 4 else ''})")
        text += "."
        evidence += [c[0] for c in calls[:10]] + [c[2] for c in timed[:10]]
    text += (" Do the slow part after init returns (return {ok, State, {continue, connect}} "
             "and connect in handle_continue, or with a retry timer), so that a "
             f"restart of {who} is instant and its callers get an answer (an error while it "
             "connects) instead of a timeout.")
    return Cause("blocking_init", 0.85, text, sorted(set(evidence)), [who, sup])


# -- concurrent starts of one name --------------------------------------------

_ALREADY = Atom("already_started")


def name_races(facts: Facts) -> list[Cause]:
    crashed = abnormal_exits(facts)
    if not crashed:
        return []
    raw = facts.store.raw()
    terms = facts.store.frame()["term"]
    lost: dict[str, list[tuple[int, str]]] = {}     # winner -> (exit seq, loser)
    for pid, seq in crashed.items():
        if b"already_started" not in raw.payload(seq):
            continue      # decided on the bytes
        winner = _already_started(terms.iloc[seq])
        if winner is not None:
            lost.setdefault(str(winner), []).append((seq, pid))
    lives = lifecycle(facts)
    return [_race_cause(facts, lives, terms, winner, sorted(losers))
            for winner, losers in lost.items()]


def _already_started(term, depth: int = 0):
    """The Pid in an ``{already_started, Pid}`` anywhere in an exit reason."""
    if isinstance(term, tuple) and len(term) == 2 and term[0] == _ALREADY and isinstance(
            term[1], Pid):
        return term[1]
    if depth > 4 or not isinstance(term, (tuple, list)):
        return None
    for item in term[:8]:
        found = _already_started(item, depth + 1)
        if found is not None:
            return found
    return None


def _race_cause(facts: Facts, lives: Lives, terms, winner: str, losers: list) -> Cause:
    raw = facts.store.raw()
    name = lives.name(winner)
    target = name or winner
    first, last = losers[0][0], losers[-1][0]
    spread = (int(raw.ts_ns[last]) - int(raw.ts_ns[first])) / 1e6
    when = (f"at the same time ({spread:,.1f} ms apart)" if len(losers) > 1
            else "while another start of it won")
    text = (f"{len(losers)} process(es) crashed on {{error, {{already_started, {winner}}}}} "
            f"starting {target} {when}: "
            f"{reason_text(terms.iloc[first], facts.syntax, 100)} (seq {first}). Each checked "
            f"that {target} was not running (a whereis or a registry lookup), then started it; "
            f"the first start registered the name and the others got already_started, which "
            "their code matched as {ok, Pid}. A check-then-act race on a registered name: the "
            "check and the start are not atomic. Treat {error, {already_started, Pid}} as "
            "success and use Pid, or start it through one process that serialises the starts.")
    evidence = [seq for seq, _ in losers[:20]]
    return Cause("name_race", 0.85, text, evidence,
                 [target] + [lives.who(p, s) for s, p in losers[:3]])

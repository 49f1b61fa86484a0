"""Processes and monitors that pile up: made at a steady pace, never ended.

    process_leaks(facts)   # [Cause("process_leak", ...)]
    monitor_leaks(facts)   # [Cause("monitor_leak", ...)]

- ``process_leaks``: a process spawns helpers of one kind (its spawn's MFA),
  most finish within a short time, yet a steady share never does: each sits
  idle from its last act to the end of the recording, many times longer
  than its finished siblings lived. What it last did (usually a request to
  another process, whose answer its siblings got) says what it waits for.
- ``monitor_leaks``: a process monitors the same live processes again and
  again and removes none of its monitors (no demonitor, no 'DOWN'): the
  monitors it holds grow with every request, not with what it watches.

Both read the lifecycle events of the default trace (spawn, exit, monitor,
demonitor): no payload is decoded but for the few shown.
"""

from __future__ import annotations

import numpy as np

from ..render.names import known_as
from ..store.otp import message_shape, term_bytes_at
from ..store.schema import ACTS, KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .replies import answered

__all__ = ["process_leaks", "monitor_leaks"]

K = KIND_CODES
MIN_LEAKED = 20           # helpers stuck, at least, for a leak
MIN_FINISHED = 10         # siblings that finished: what "short-lived" means here
IDLE_FACTOR = 10          # stuck: idle this many times longer than a finished sibling lived
MIN_IDLE_NS = 500_000_000
MIN_MONITORS = 50         # monitors piled up on processes already monitored, at least


def _who(facts: Facts, gid: int) -> str:
    name = next((n for _, n in reversed(facts.store.names().spans(gid)) if n), None)
    return known_as(name, facts.store.id_text(gid) or "?")


def _quarters(ts: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """How many of ``ts`` fall in each quarter of [lo, hi]."""
    return np.histogram(ts, bins=4, range=(lo, max(hi, lo + 1)))[0]


# -- processes ---------------------------------------------------------------

def process_leaks(facts: Facts) -> list[Cause]:
    raw = facts.store.raw()
    spawns = np.flatnonzero(raw.kind == K["spawn"])
    if len(spawns) < MIN_LEAKED + MIN_FINISHED:
        return []
    exits = np.flatnonzero(raw.kind == K["exit"])
    exit_ts = dict(zip(raw.pid[exits].tolist(), raw.ts_ns[exits].tolist()))
    end = int(raw.ts_ns[-1])
    groups: dict[tuple[int, int], list[int]] = {}
    for seq, parent, mfa in zip(spawns.tolist(), raw.pid[spawns].tolist(),
                                raw.mfa[spawns].tolist()):
        groups.setdefault((parent, mfa), []).append(seq)
    out = []
    for (parent, mfa), seqs in groups.items():
        if len(seqs) < MIN_LEAKED + MIN_FINISHED:
            continue
        children = raw.peer[seqs].astype(np.int64)
        born = raw.ts_ns[seqs].astype(np.int64)
        died = np.array([exit_ts.get(c, -1) for c in children.tolist()], dtype=np.int64)
        finished = died >= 0
        if finished.sum() < MIN_FINISHED:
            continue
        lived = np.percentile(died[finished] - born[finished], 90)
        threshold = max(IDLE_FACTOR * lived, MIN_IDLE_NS)
        cutoff = end - threshold
        last = _last_acts(facts, children[~finished], born[~finished])
        stuck_at = np.flatnonzero(~finished)[(end - last) >= threshold]
        if len(stuck_at) < MIN_LEAKED:
            continue
        # steadily: in every quarter of the time before the cutoff
        older = born[born <= cutoff]
        if not len(older):
            continue
        per_quarter = _quarters(born[stuck_at], int(older.min()), int(cutoff))
        if (per_quarter == 0).any():
            continue
        out.append(_process_cause(facts, parent, mfa, seqs, children, born, died, stuck_at,
                                  per_quarter, lived, int(older.min()), int(cutoff), end))
    return out


def _last_acts(facts: Facts, children: np.ndarray, born: np.ndarray) -> np.ndarray:
    """When each process last did or received something (its spawn if nothing
    since): a process that still receives messages is in use, not stuck."""
    raw = facts.store.raw()
    by_gid = facts.cached("processes by id",
                          lambda: {p.gid: p for p in facts.history().processes()})
    out = born.copy()
    for i, gid in enumerate(children.tolist()):
        proc = by_gid.get(gid)
        if proc is None or not len(proc.event_seqs):
            continue
        kinds = raw.kind[proc.event_seqs]
        acts = proc.event_seqs[ACTS[kinds] | (kinds == K["receive"])]
        if len(acts):
            out[i] = max(out[i], int(raw.ts_ns[int(acts[-1])]))
    return out


def _process_cause(facts: Facts, parent: int, mfa: int, seqs: list, children: np.ndarray,
                   born: np.ndarray, died: np.ndarray, stuck_at: np.ndarray,
                   per_quarter: np.ndarray, lived: float, lo: int, cutoff: int,
                   end: int) -> Cause:
    who = _who(facts, parent)
    what = facts.store.id_text(mfa) or "a function"
    span = (cutoff - lo) / 1e9
    rate = len(stuck_at) / max(span, 1e-3)
    eligible = int((born <= cutoff).sum())
    finished = int((died >= 0).sum())
    summary = (f"{who} leaks processes: of the {len(seqs)} it spawned running {what}, "
               f"{finished} finished (90% within {lived / 1e6:.1f} ms), but {len(stuck_at)} of "
               f"the {eligible} spawned more than {max(IDLE_FACTOR * lived, MIN_IDLE_NS) / 1e9:.1f}"
               f" s before the end ({len(stuck_at) / max(eligible, 1):.0%}) never exited and "
               f"sat idle to the end of the recording, piling up at about {rate:.0f} per second "
               f"({', '.join(str(int(n)) for n in per_quarter)} per quarter of it): the number of "
               "processes on the node keeps growing.")
    waits = _waiting_for(facts, children[stuck_at][:200], children[died >= 0])
    if waits:
        summary += " " + waits
    quiet = _no_guard(facts, children[stuck_at][:200])
    if quiet:
        summary += " " + quiet
    pid = facts.store.id_text(int(children[stuck_at[0]])) or "?"
    summary += (" Give the wait a timeout (receive ... after) or a monitor on whoever must "
                f"answer, and answer on every path. On the live node s.process('{pid}') shows "
                "where one of them waits.")
    evidence = sorted([int(seqs[i]) for i in stuck_at[:20].tolist()])
    return Cause("process_leak", 0.8, summary, evidence, [who])


def _waiting_for(facts: Facts, stuck: np.ndarray, done: np.ndarray) -> str:
    """What the stuck ones last sent, to whom, and whether their finished
    siblings got an answer from that process."""
    raw = facts.store.raw()
    by_gid = facts.cached("processes by id",
                          lambda: {p.gid: p for p in facts.history().processes()})
    shapes: dict[tuple[str, int], int] = {}
    for gid in stuck.tolist():
        proc = by_gid.get(gid)
        if proc is None:
            continue
        sends = proc.event_seqs[raw.kind[proc.event_seqs] == K["send"]]
        if len(sends):
            seq = int(sends[-1])
            key = (message_shape(raw.term(seq)), int(raw.peer[seq]))
            shapes[key] = shapes.get(key, 0) + 1
    if not shapes:
        return ""
    (shape, peer), n = max(shapes.items(), key=lambda kv: kv[1])
    text = facts.store.id_text(peer)
    target = (_who(facts, peer) if text.startswith("<") else text) if text else "another process"
    answered = 0
    for gid in done.tolist():
        proc = by_gid.get(gid)
        if proc is not None and len(proc.recv_seqs):
            answered += 1
    text = (f"{n} of them last sent {shape} to {target} and have waited since for an answer "
            "that never comes")
    if answered:
        text += f"; {answered} of their finished siblings received theirs and exited"
    return text + "."


def _no_guard(facts: Facts, stuck: np.ndarray) -> str:
    """Whether the stuck ones wait with no timeout and no monitor, by the trace."""
    raw = facts.store.raw()
    by_gid = facts.cached("processes by id",
                          lambda: {p.gid: p for p in facts.history().processes()})
    guarded = 0
    for gid in stuck.tolist():
        proc = by_gid.get(gid)
        if proc is not None and np.isin(raw.kind[proc.event_seqs],
                                        [K["monitor"], K["timeout"]]).any():
            guarded += 1
    if guarded:
        return ""
    return ("None of them monitors anything, and no receive timeout fired in any: they wait "
            "forever, with no timeout and no monitor.")


# -- monitors ----------------------------------------------------------------

def monitor_leaks(facts: Facts) -> list[Cause]:
    raw = facts.store.raw()
    rows = np.flatnonzero(((raw.kind == K["monitor"]) | (raw.kind == K["demonitor"]))
                          & (raw.peer > 0))
    if len(rows) < MIN_MONITORS:
        return []
    out = []
    watchers = raw.pid[rows]
    for gid in np.unique(watchers).tolist():
        mine = rows[watchers == gid]
        made = mine[raw.kind[mine] == K["monitor"]]
        if len(made) < MIN_MONITORS:
            continue
        # a monitor made with {alias, reply_demonitor} ends when a reply to its
        # alias arrives ({Ref, Reply}): no demonitor shows it
        refs = [term_bytes_at(p, 3) for p in raw.payloads(made)]
        replied = answered(facts, refs)
        if replied:
            ended = {r for r in refs if r in replied}
            made = made[[r not in ended for r in refs]]
            mine = np.sort(np.concatenate([made, mine[raw.kind[mine] == K["demonitor"]]]))
            if len(made) < MIN_MONITORS:
                continue
        sign = np.where(raw.kind[mine] == K["monitor"], 1, -1)
        targets = raw.peer[mine].astype(np.int64)
        # per target, monitors held after each event: how many of the monitors
        # made found one on the same process already held
        held: dict[int, int] = {}
        again = 0
        for t, s in zip(targets.tolist(), sign.tolist()):
            now = held.get(t, 0)
            if s > 0 and now > 0:
                again += 1
            held[t] = max(0, now + s)
        open_total = sum(held.values())
        if again < MIN_MONITORS or again < 0.5 * len(made) or open_total < 0.8 * len(made):
            continue
        level = np.cumsum(sign)
        quarters = [int(level[min(len(level) - 1, int(q * len(level)) - 1)])
                    for q in (0.25, 0.5, 0.75, 1.0)]
        if any(b <= a for a, b in zip(quarters, quarters[1:])):
            continue
        out.append(_monitor_cause(facts, gid, made, held, again, open_total, mine))
    return out


def _monitor_cause(facts: Facts, gid: int, made: np.ndarray, held: dict, again: int,
                   open_total: int, mine: np.ndarray) -> Cause:
    raw = facts.store.raw()
    who = _who(facts, gid)
    targets = [t for t, n in held.items() if n]
    span = (int(raw.ts_ns[made[-1]]) - int(raw.ts_ns[made[0]])) / 1e9
    removed = len(mine) - len(made)
    summary = (f"{who} leaks monitors: it made {len(made)} monitors in {span:.1f} s on only "
               f"{len(targets)} processes and removed {removed or 'none'} of them (no "
               f"demonitor, no 'DOWN'), so it now holds {open_total} monitors, about "
               f"{open_total / max(len(targets), 1):.0f} per process it watches; {again} "
               "of them were made on a process it already monitored.")
    where = _made_in(facts, gid, made)
    if where:
        summary += f" They are made in {where}: one more on every request, never released."
    summary += (f" The monitors held grow at about {len(made) / max(span, 1e-3):.0f} per second, "
                "and each watched process's exit will deliver that many 'DOWN's. Monitor a "
                "process once (keep its ref, and check before monitoring again), or "
                "erlang:demonitor(OldRef, [flush]) before replacing it.")
    evidence = sorted(made[:20].tolist())
    return Cause("monitor_leak", 0.8, summary, evidence, [who])


def _made_in(facts: Facts, gid: int, made: np.ndarray) -> str:
    """The callbacks the monitors were made in: "handle_call of {:join, _, _} (791)"."""
    tt = facts.history()
    by_gid = facts.cached("processes by id", lambda: {p.gid: p for p in tt.processes()})
    proc = by_gid.get(gid)
    if proc is None or not proc.state_seqs:
        return ""
    raw = facts.store.raw()
    ts_out = np.asarray(proc.state_ts_out)
    found: dict[str, int] = {}
    for seq in made[:2000].tolist():
        k = int(np.searchsorted(ts_out, int(raw.ts_ns[seq])))
        if k < len(ts_out) and proc.state_ts_in[k] <= int(raw.ts_ns[seq]):
            step = proc.states[k]
            key = f"{step['callback']} of {message_shape(step['message'])}"
            found[key] = found.get(key, 0) + 1
    top = sorted(found.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} ({n} of them)" for k, n in top)

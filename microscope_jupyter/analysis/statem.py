"""gen_statem misuse that the transitions show: a state_timeout taken for an
idle timeout, and requests postponed in a state the machine never leaves.

    statem_timeouts(facts)   # [Cause("statem_timeout", ...)]
    postponed_calls(facts)   # [Cause("postponed_calls", ...)]

A gen_statem's state hook reports each event it consumed as a transition
``{{EventType, Content}, StateBefore, StateAfter, ...}``: the event type says
what drove it (``{call, From}``, ``cast``, ``info``, ``state_timeout``, an
event ``timeout``, a generic ``{timeout, Name}``), before and after are the
state names. An event it postpones (reply ``{statem, postpone, ..}``) is taken
off the queue and kept aside until the state changes: no handling of its call. Both detectors read the types
and states off the payloads' bytes (``statem_steps``), decoding only atoms.

- ``statem_timeouts``: a state left on its state_timeout visit after visit, a
  fixed time after entering it, while requests kept being handled in it: a
  state_timeout runs from the state's entry until the state changes, so
  traffic never resets it (an event timeout is what resets on every event).
- ``postponed_calls``: calls a gen_statem took off its queue and never
  handled nor answered, while it stayed in one state to the end: postponed
  events come back only on a state change, and that state never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..beam.etf import decode, decode_from
from ..beam.terms import Atom
from ..render.elixir import render
from ..render.names import known_as
from ..store.otp import message_shape, term_bytes_at
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .replies import answered, call_receives, gave_up_waiting

__all__ = ["statem_timeouts", "postponed_calls", "statem_steps", "Steps"]

_STATE, _MAILBOX = KIND_CODES["state"], KIND_CODES["mailbox"]
_STATEM = Atom("gen_statem")
REQUESTS = ("call", "cast", "info")     # what a client sends, not what the machine arms

# A state_timeout taken for an idle timeout: visits it ended, at least, and the
# share of them in which requests kept coming until shortly before it fired.
MIN_VISITS = 3
MIN_REQUESTS = 3          # handled in a visit, on average, for it to count as busy
# Calls postponed for good: how many, and how long the oldest waited.
MIN_POSTPONED = 3
MIN_WAIT_NS = 500_000_000
PATIENCE_S = 5.0          # gen_statem:call's default timeout: waiting longer is no reconnect


@dataclass
class Steps:
    """One gen_statem's recorded transitions, in order: each one's seq, when
    its callback returned, event type ("call", "cast", "info", "state_timeout",
    "timeout", "generic_timeout", "internal"...), content and states as bytes,
    and a call's reply tag."""

    pid: str
    seqs: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    types: list = field(default_factory=list)
    contents: list = field(default_factory=list)
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    postponed: list = field(default_factory=list)


def statem_steps(facts: Facts) -> dict[int, Steps]:
    """pid id -> its transitions, for every gen_statem with any (memoised)."""
    return facts.cached("statem steps", lambda: _read_steps(facts))


def _read_steps(facts: Facts) -> dict[int, Steps]:
    raw = facts.store.raw()
    rows = np.flatnonzero(raw.kind == _STATE)
    out: dict[int, Steps] = {}
    statem: dict[int, bool] = {}
    atoms: dict[bytes, str] = {}
    for seq, gid in zip(rows.tolist(), raw.pid[rows].tolist()):
        if gid not in statem:   # {Msg, Before, After, Reply, Kind[, Extra]}: one decode per process
            term = decode(raw.payload(seq))
            statem[gid] = isinstance(term, tuple) and len(term) >= 5 and term[4] == _STATEM
        if not statem[gid]:
            continue
        step = _step(raw.payload(seq), atoms)
        if step is None:
            continue
        steps = out.get(gid)
        if steps is None:
            steps = out[gid] = Steps(facts.store.id_text(gid) or "?")
        kind, content, before, after, tag, postponed = step
        steps.seqs.append(seq)
        steps.ts.append(int(raw.ts_ns[seq]))
        steps.types.append(kind)
        steps.contents.append(content)
        steps.before.append(before)
        steps.after.append(after)
        steps.tags.append(tag)
        steps.postponed.append(postponed)
    return out


def _step(payload: bytes, atoms: dict[bytes, str]) -> tuple | None:
    """(event type, content, before, after, call tag, postponed) of one transition's payload."""
    if payload[:2] != b"\x83h" or payload[3:5] != b"h\x02":
        return None
    etype = term_bytes_at(payload, 5)
    at = 5 + len(etype)
    content = term_bytes_at(payload, at)
    at += len(content)
    before = term_bytes_at(payload, at)
    after = term_bytes_at(payload, at + len(before))
    reply = term_bytes_at(payload, at + len(before) + len(after))
    head = term_bytes_at(reply, 2) if reply[:2] == b"h\x04" else b""  # {statem, How, In, Replies}
    postponed = bool(head) and _atom(term_bytes_at(reply, 2 + len(head)), atoms) == "postpone"
    tag = None
    if etype[:2] == b"h\x02":                      # {call, From} or {timeout, Name}
        head = term_bytes_at(etype, 2)
        kind = _atom(head, atoms)
        if kind == "call" and etype[2 + len(head):4 + len(head)] == b"h\x02":
            start = 4 + len(head)
            start += len(term_bytes_at(etype, start))          # the caller's pid
            tag = term_bytes_at(etype, start)
        elif kind == "timeout":
            kind = "generic_timeout"
    else:
        kind = _atom(etype, atoms)
    return kind, content, before, after, tag, postponed


def _atom(term: bytes, atoms: dict[bytes, str]) -> str:
    found = atoms.get(term)
    if found is None:
        value = decode_from(b"\x83" + term)[0]
        found = atoms[term] = str(value) if isinstance(value, Atom) else "?"
    return found


def _term(blob: bytes) -> Any:
    return decode_from(b"\x83" + blob)[0]


def _shown(blob: bytes, syntax: str, limit: int = 60) -> str:
    return render(_term(blob), syntax, limit)


def _name(facts: Facts, gid: int, pid: str) -> str:
    spans = facts.store.names().spans(gid)
    return known_as(next((n for _, n in reversed(spans) if n), None), pid)


# -- a state_timeout taken for an idle timeout --------------------------------

@dataclass
class _Visit:
    entered: int                       # ts the state was entered at
    requests: dict = field(default_factory=dict)
    last_request: int | None = None
    left: int | None = None            # ts it was left at, by ...
    left_type: str | None = None
    left_content: bytes | None = None
    left_seq: int | None = None


def statem_timeouts(facts: Facts) -> list[Cause]:
    out = []
    syntax = facts.store.syntax
    for gid, steps in statem_steps(facts).items():
        visits = _visits(steps)
        # the state it works in: most of the time and of the requests; a
        # backoff or handshake state left on a timer is no finding
        time_in = {st: sum(v.left - v.entered for v in seen if v.left is not None)
                   for st, seen in visits.items()}
        total = sum(time_in.values())
        if not total:
            continue
        main = max(time_in, key=time_in.get)
        if time_in[main] < 0.5 * total:
            continue
        deferred = _postponed_in(facts, gid, steps)
        by_timeout: dict[bytes, list[_Visit]] = {}
        for v in visits[main]:
            if v.left_type == "state_timeout" and not _holds(deferred, v):
                by_timeout.setdefault(v.left_content, []).append(v)
        fired_in: dict[bytes, set] = {}
        for i, kind in enumerate(steps.types):
            if kind == "state_timeout" and steps.before[i] != steps.after[i]:
                fired_in.setdefault(steps.contents[i], set()).add(steps.before[i])
        for content, group in by_timeout.items():
            if len(fired_in.get(content, ())) > 1:
                continue    # the same timeout seen leaving two states: a transition went unseen
            cause = _idle_timeout(facts, gid, steps, main, content, group, syntax)
            if cause is not None:
                out.append(cause)
    return out


def _visits(steps: Steps) -> dict[bytes, list[_Visit]]:
    """Each state's visits, from entering it to leaving it; a visit whose end
    the recording did not show (a transition the hook never saw, such as one
    made with postpone) is left out."""
    visits: dict[bytes, list[_Visit]] = {}
    current: _Visit | None = None
    state = None
    for i, seq in enumerate(steps.seqs):
        before, after, kind, ts = steps.before[i], steps.after[i], steps.types[i], steps.ts[i]
        if before != state and current is not None:
            visits[state].pop()          # it left unseen: this visit's end is unknown
            current = None
        if before != after:
            if current is not None:
                current.left, current.left_type = ts, kind
                current.left_content, current.left_seq = steps.contents[i], seq
            current = _Visit(ts)
            visits.setdefault(after, []).append(current)
        elif current is not None and kind in REQUESTS:
            current.requests[kind] = current.requests.get(kind, 0) + 1
            current.last_request = ts
        state = after
    if current is not None:
        visits[state].pop()              # still in it at the end
    return visits


def _postponed_in(facts: Facts, gid: int, steps: Steps) -> tuple[np.ndarray, np.ndarray]:
    """(arrival ts, state changes it waited through) of each call to this
    gen_statem, by arrival. A call queued behind the event that left a state is
    taken right after that one change; a call that waited through two or more
    was postponed, and the visit may have ended by that very postpone
    ({next_state, S, D, [postpone]}), a transition the hook does not see: the
    change reported next then carries a stale state, and the visit's end is
    unsure."""
    recv, tags = call_receives(facts, gid)
    raw = facts.store.raw()
    taken = {t: ts for t, ts, p in zip(steps.tags, steps.ts, steps.postponed) if t and not p}
    never = int(raw.ts_ns[-1]) + 1 if len(raw) else 0
    arrived = raw.ts_ns[recv].astype(np.int64)
    took = np.array([taken.get(t, never) for t in tags], dtype=np.int64)
    changes = np.sort(np.array([ts for ts, b, a in zip(steps.ts, steps.before, steps.after)
                                if b != a], dtype=np.int64))
    crossed = np.searchsorted(changes, took) - np.searchsorted(changes, arrived)
    order = np.argsort(arrived, kind="stable")
    return arrived[order], crossed[order]


def _holds(deferred: tuple[np.ndarray, np.ndarray], v: _Visit) -> bool:
    """A call came in during visit ``v`` and was held through two state changes."""
    arrived, crossed = deferred
    lo, hi = np.searchsorted(arrived, [v.entered, v.left or 0])
    return bool(hi > lo) and int(crossed[lo:hi].max()) >= 2


def _idle_timeout(facts: Facts, gid: int, steps: Steps, state: bytes, content: bytes,
                  group: list[_Visit], syntax: str) -> Cause | None:
    if len(group) < MIN_VISITS:
        return None
    dwell = np.array([(v.left - v.entered) / 1e6 for v in group])
    busy = [v for v, d in zip(group, dwell) if sum(v.requests.values()) >= MIN_REQUESTS
            and v.last_request is not None and (v.left - v.last_request) / 1e6 < d / 4]
    typical = float(np.median(dwell))
    # The same delay from the entry every time (a timer armed on entering),
    # and busy to the end in most visits.
    if len(busy) < max(MIN_VISITS, 0.6 * len(group)) or typical <= 0 \
            or float(np.std(dwell)) > 0.25 * typical:
        return None
    who = _name(facts, gid, steps.pid)
    name, fired = _shown(state, syntax), _shown(content, syntax)
    handled: dict[str, int] = {}
    for v in busy:
        for k, n in v.requests.items():
            handled[k] = handled.get(k, 0) + n
    per = sum(handled.values()) / len(busy)
    kinds = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(
        handled.items(), key=lambda kv: -kv[1]))
    gap = float(np.median([(v.left - v.last_request) / 1e6 for v in busy]))
    span = (group[-1].left - group[0].entered) / 1e9
    low, high = f"{dwell.min():.0f}", f"{dwell.max():.0f}"
    spread = "" if low == high else f" ({low}-{high} ms)"
    summary = (f"{who} left the state {name} on its state_timeout {fired} {len(group)} times "
               f"in {span:.1f} s, each time {typical:.0f} ms after entering it{spread}, "
               "although it was busy there: "
               f"{per:.0f} requests handled per visit ({kinds} in all), the last one about "
               f"{gap:.0f} ms before the timeout fired.")
    elsewhere = _between(steps, state, group)
    if elsewhere:
        summary += f" {elsewhere}"
    summary += (f" A state_timeout runs from entering the state until the state changes (or "
                f"another state_timeout is set): requests handled with keep_state do not reset "
                f"it, so {fired} fires {typical:.0f} ms after every entry however busy {name} "
                f"is. If it is meant as an idle timeout, arm it again with every request "
                f"handled there (return the same state_timeout action from those clauses: "
                f"setting it again restarts it), or use an event timeout, which any event "
                f"cancels, so it too must be set again with each request.")
    evidence = sorted({v.left_seq for v in group if v.left_seq is not None})
    return Cause("statem_timeout", 0.8, summary, evidence[:50], [who])


def _between(steps: Steps, state: bytes, group: list[_Visit]) -> str:
    """Where it went when it left ``state``, for how long, and what came in there."""
    first, last = group[0].entered, group[-1].left or group[-1].entered
    away: dict[bytes, int] = {}
    for i, ts in enumerate(steps.ts):
        if (first <= ts <= last and steps.before[i] == steps.after[i] != state
                and steps.types[i] in REQUESTS):
            away[steps.before[i]] = away.get(steps.before[i], 0) + 1
    gaps = []
    for v in group:
        k = int(np.searchsorted(np.asarray(steps.ts), v.left or 0, side="right"))
        back = next((steps.ts[i] for i in range(k, len(steps.ts)) if steps.after[i] == state
                     and steps.before[i] != state), None)
        if back is not None:
            gaps.append((back - (v.left or 0)) / 1e6)
    if not away:
        return ""
    where = max(away, key=away.get)
    out = f"Out of it, in {_shown(where, 'elixir')}"
    if gaps:
        out += f" for about {float(np.median(gaps)):.0f} ms each time"
    return out + f", it took {sum(away.values())} requests that its busy state would have served."


# -- calls postponed in a state never left ------------------------------------

def postponed_calls(facts: Facts) -> list[Cause]:
    raw = facts.store.raw()
    out = []
    for gid, steps in statem_steps(facts).items():
        consumed = {t for t, p in zip(steps.tags, steps.postponed) if t is not None and not p}
        first_step = steps.seqs[0]
        recv, tags = call_receives(facts, gid)
        waiting = [(r, t) for r, t in zip(recv.tolist(), tags)
                   if t is not None and r > first_step and t not in consumed]
        if len(waiting) < MIN_POSTPONED:
            continue
        replied = answered(facts, [t for _, t in waiting])
        pending = [(r, t) for r, t in waiting if t not in replied]
        if len(pending) < MIN_POSTPONED:
            continue
        first = pending[0][0]
        # the state it was in when the first of them arrived, and ever after
        k = int(np.searchsorted(np.asarray(steps.seqs), first)) - 1
        state = steps.after[k] if k >= 0 else steps.before[0]
        later = range(k + 1, len(steps.seqs))
        if any(steps.before[i] != state or steps.after[i] != state for i in later):
            continue
        end = int(raw.ts_ns[-1])
        if end - int(raw.ts_ns[first]) < MIN_WAIT_NS:
            continue
        cause = _postponed(facts, gid, steps, state, k, pending, end)
        if cause is not None:
            out.append(cause)
    return out


def _postponed(facts: Facts, gid: int, steps: Steps, state: bytes, k: int,
               pending: list, end: int) -> Cause | None:
    raw, syntax = facts.store.raw(), facts.store.syntax
    seqs = np.array([r for r, _ in pending], dtype=np.int64)
    # Not in its queue: the node's own count stayed below what had arrived, or
    # it went on taking later events: gen_statem took them, and set them aside.
    samples = np.flatnonzero((raw.kind == _MAILBOX) & (raw.pid == gid))
    samples = samples[samples > seqs[0]]
    arrived = np.searchsorted(seqs, samples)
    below = bool(len(samples)) and bool((raw.aux[samples] < arrived).any())
    handled_after = [i for i in range(k + 1, len(steps.seqs)) if steps.seqs[i] > seqs[0]]
    if not below and not handled_after:
        return None
    who = _name(facts, gid, steps.pid)
    name = _shown(state, syntax)
    shapes: dict[str, int] = {}
    gave_up = 0
    for r in seqs[:200].tolist():
        call = raw.term(r)
        request = call[2] if isinstance(call, tuple) and len(call) == 3 else call
        shapes[message_shape(request)] = shapes.get(message_shape(request), 0) + 1
        gave_up += int(gave_up_waiting(facts, call, r))
    waited = (end - int(raw.ts_ns[seqs[0]])) / 1e9
    if not gave_up and waited < PATIENCE_S:
        return None     # a long reconnect, say: no caller gave up, none waited past a timeout
    since = steps.seqs[k] if k >= 0 else None
    summary = f"{who} stayed in the state {name}"
    if since is not None:
        summary += (f" from seq {since} (entered on {steps.types[k]} "
                    f"{_shown(steps.contents[k], syntax)}) to the end of the recording")
    summary += (f" and never left it, while {len(pending)} calls "
                f"({', '.join(f'{n} {s}' for s, n in shapes.items())}) reached it there and "
                "were never handled nor answered: no callback took them")
    if below:
        summary += (f", and the node's own count of its queue stayed at "
                    f"{int(raw.aux[samples].max())}")
    summary += (", so gen_statem took them off the queue and postponed them. Postponed events "
                f"are retried only on a state change, and {name} never changed: the oldest "
                f"waited {waited:.1f} s")
    summary += (f", and {gave_up} of their callers gave up at their call timeout." if gave_up
                else ".")
    if handled_after:
        seen: dict[str, int] = {}
        for i in handled_after:
            shape = _shown(steps.contents[i], syntax, 40)
            seen[shape] = seen.get(shape, 0) + 1
        events = ", ".join(f"{s} ({steps.types[handled_after[0]]})" if n == 1 else
                           f"{s} x{n}" for s, n in list(seen.items())[:4])
        summary += (f" In {name} it did handle {events}, none of which took it out of "
                    f"{name}: the event it waits for to leave never came.")
    summary += (f" Leave {name} on the event that does come, or arm a state_timeout to leave "
                "it, rather than postpone with no way out.")
    evidence = ([steps.seqs[k]] if k >= 0 else []) + seqs[:20].tolist()
    evidence += [steps.seqs[i] for i in handled_after[:5]]
    return Cause("postponed_calls", 0.85, summary, sorted(set(evidence)), [who])


